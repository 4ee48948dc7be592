// Channel ping-pong of the same shapes as benches/benches/chan.rs, for
// side-by-side numbers with gort, may and tokio (docs/performance.md).
//
// Run (GOMAXPROCS picks the number of Ps):
//
//	GOMAXPROCS=1 go test -run - -bench . -benchtime 2000000x
//
// One op = one hop: a value sent on one channel and received by the other
// goroutine.
package chan_test

import "testing"

func pingPong(b *testing.B, capacity int) {
	a := make(chan int, capacity)
	c := make(chan int, capacity)
	done := make(chan struct{})
	go func() {
		for v := range a {
			c <- v + 1
		}
		close(done)
	}()
	rounds := (b.N + 1) / 2
	b.ResetTimer()
	v := 0
	for i := 0; i < rounds; i++ {
		a <- v
		v = <-c
	}
	b.StopTimer()
	close(a)
	<-done
	if v != rounds {
		b.Fatalf("got %d after %d rounds", v, rounds)
	}
}

func BenchmarkPingPongRendezvous(b *testing.B) { pingPong(b, 0) }
func BenchmarkPingPongBuffered1(b *testing.B)  { pingPong(b, 1) }

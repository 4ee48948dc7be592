// Timers of the same shapes as benches/benches/time.rs, for side-by-side
// numbers with gort::time.
//
// Run (one P, as gort's):
//
//	GOMAXPROCS=1 go test -run - -bench .
package time_test

import (
	"testing"
	"time"
)

// One op = a timer made and stopped.
func BenchmarkTimerCreateStop(b *testing.B) {
	for i := 0; i < b.N; i++ {
		t := time.NewTimer(time.Hour)
		t.Stop()
	}
}

// One op = a send, a select whose channel arm wins, and one time.After.
func BenchmarkAfterSelect(b *testing.B) {
	c := make(chan int, 1)
	for i := 0; i < b.N; i++ {
		c <- i
		select {
		case v := <-c:
			if v != i {
				b.Fatal(v)
			}
		case <-time.After(time.Hour):
			b.Fatal("timer fired")
		}
	}
}

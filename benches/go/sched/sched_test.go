// Scheduler benchmarks of the same shapes as benches/benches/sched.rs, for
// side-by-side numbers with gort, may and tokio (docs/performance.md).
//
// Run (GOMAXPROCS picks the number of Ps):
//
//	GOMAXPROCS=2 go test -run - -bench . -benchtime 1000000x
//
// Every ns/op is per goroutine (spawn+join) or per Gosched (ping-pong), so
// -benchtime 1000000x means 1,000,000 goroutines (SpawnJoinAll: all alive at
// once before they are joined, the headline) or yields.
package sched

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Goroutines spawned before they are all joined, as in sched.rs.
const batch = 10_000

// spawnJoin spawns n goroutines in rounds of at most `round`, waiting for
// each round with a WaitGroup (Go's idiomatic join of many goroutines).
func spawnJoin(n, round int) {
	var wg sync.WaitGroup
	for n > 0 {
		k := min(n, round)
		wg.Add(k)
		for i := 0; i < k; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		n -= k
	}
}

// One op = one goroutine spawned and joined, in rounds of 10,000.
func BenchmarkSpawnJoin(b *testing.B) {
	spawnJoin(batch, batch) // warm: Gs and stacks to reuse, as the Rust side does
	b.ResetTimer()
	spawnJoin(b.N, batch)
}

// One op = one goroutine: all b.N goroutines are spawned, then all joined
// (-benchtime 1000000x is the 1,000,000 goroutines).
func BenchmarkSpawnJoinAll(b *testing.B) {
	spawnJoin(batch, batch)
	b.ResetTimer()
	spawnJoin(b.N, b.N)
}

// Two goroutines call runtime.Gosched in turn; one op = one Gosched, which
// switches to the other goroutine. Meant for GOMAXPROCS=1. A shared counter
// checks that they really alternate (repeats: how often one goroutine
// yielded twice in a row).
func BenchmarkYieldPingPong(b *testing.B) {
	var last atomic.Int64 // who yielded last
	var wg sync.WaitGroup
	var repeats atomic.Int64 // the same goroutine twice in a row
	per := (b.N + 1) / 2
	last.Store(-1)
	b.ResetTimer()
	wg.Add(2)
	for me := int64(0); me < 2; me++ {
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if last.Swap(me) == me {
					repeats.Add(1)
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	// Gosched puts the goroutine on the global queue, and every 61st
	// schedule takes the global queue first, so the yielder sometimes runs
	// again at once (about 3% of yields); that is still one trip through
	// the scheduler. Far more means the benchmark is not measuring switches.
	if runtime.GOMAXPROCS(0) == 1 && repeats.Load()*10 > int64(b.N) {
		b.Fatalf("the two goroutines did not alternate: %d repeats in %d yields", repeats.Load(), b.N)
	}
	b.ReportMetric(float64(repeats.Load()), "repeats")
}

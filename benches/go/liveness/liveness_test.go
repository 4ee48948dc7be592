// Liveness under CPU-bound goroutines, the same shapes as
// benches/benches/liveness.rs (docs/sched.md, "Liveness"):
//
//	GOMAXPROCS=1 go test -bench .
//	GOMAXPROCS=2 go test -bench .
//
// Each op's time is meaningless; the metrics are: worst-late-ms, the worst
// lateness of a 10 ms tick beside eight hashing workers (mean over ops),
// and timer-late-ms, how late a 50 ms sleep wakes beside a 300 ms CPU loop.
package liveness

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var sink atomic.Uint64

func hash(block []byte) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, b := range block {
		h ^= uint64(b)
		h *= 0x100000001b3
	}
	return h
}

func tickGap() time.Duration {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			block := make([]byte, 1<<20)
			for j := range block {
				block[j] = byte(i)
			}
			var h uint64
			for !stop.Load() {
				h ^= hash(block)
			}
			sink.Add(h)
		}(i)
	}
	var worst time.Duration
	last := time.Now()
	for i := 0; i < 30; i++ {
		time.Sleep(10 * time.Millisecond)
		now := time.Now()
		if late := now.Sub(last) - 10*time.Millisecond; late > worst {
			worst = late
		}
		last = now
	}
	stop.Store(true)
	wg.Wait()
	return worst
}

func BenchmarkTickGap(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += tickGap()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "worst-late-ms")
}

func timerBesideCPULoop() time.Duration {
	t := time.Now()
	done := make(chan struct{})
	go func() {
		start := time.Now()
		x := uint64(0)
		for time.Since(start) < 300*time.Millisecond {
			for i := uint64(0); i < 1000; i++ {
				x = x*31 + i
			}
		}
		sink.Add(x)
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	late := time.Since(t) - 50*time.Millisecond
	<-done
	return late
}

func BenchmarkTimerBesideCPULoop(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += timerBesideCPULoop()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "timer-late-ms")
}

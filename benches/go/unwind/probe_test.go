package unwind

import (
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// TestProbe times PanicAcrossC in batches and prints the fastest and the
// median batch per operation, as gort's examples/cgo_panic_probe does: on
// a loaded machine the fastest batch is the cost without preemption.
// GORT_PROBE=1 go test -run Probe -v
func TestProbe(t *testing.T) {
	if os.Getenv("GORT_PROBE") == "" {
		t.Skip("set GORT_PROBE=1 to run")
	}
	const batches, per = 300, 100
	for i := 0; i < per; i++ {
		PanicAcrossC()
	}
	times := make([]time.Duration, batches)
	for b := range times {
		t0 := time.Now()
		for i := 0; i < per; i++ {
			if PanicAcrossC() == nil {
				t.Fatal("not recovered")
			}
		}
		times[b] = time.Since(t0)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("  PanicAcrossC: min %7d ns  median %7d ns\n",
		times[0].Nanoseconds()/per, times[batches/2].Nanoseconds()/per)
}

// Handoff latency, the shape of benches/benches/handoff.rs, for
// side-by-side numbers with gort (docs/performance.md).
//
// With GOMAXPROCS=1, the test goroutine starts B (which only reads the
// clock), reads the clock (t0) and blocks 5 ms in a raw nanosleep system
// call (syscall.Syscall enters the syscall state as a cgo call would). B
// runs once sysmon retakes the P; latency = B's clock - t0. First call of
// the process, 20 calls in a row, and 20 calls each after 30 ms of
// computing (sysmon backs off to 10 ms sleeps when it finds nothing to
// retake for 1 ms: the ~20 ms handoffs).
//
// Run:
//
//	GOMAXPROCS=1 go test -run Handoff -v
package handoff

import (
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func block(d time.Duration) {
	ts := syscall.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
	syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func oneCall(d time.Duration) time.Duration {
	ran := make(chan time.Time, 1)
	go func() { ran <- time.Now() }()
	t0 := time.Now()
	block(d)
	return (<-ran).Sub(t0)
}

// busy computes (no blocking, no scheduling point it asks for) for d.
func busy(d time.Duration) {
	t := time.Now()
	x := uint64(0)
	for time.Since(t) < d {
		for i := uint64(0); i < 1000; i++ {
			x = x*31 + i
		}
	}
	sink = x
}

var sink uint64

func report(t *testing.T, name string, v []time.Duration) {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	t.Logf("handoff/%-10s n=%-3d median %9.1f us   max %9.1f us   min %8.1f us",
		name, len(v), float64(v[len(v)/2])/1e3, float64(v[len(v)-1])/1e3, float64(v[0])/1e3)
}

func TestHandoff(t *testing.T) {
	if runtime.GOMAXPROCS(0) != 1 {
		t.Skip("run with GOMAXPROCS=1")
	}
	d := 5 * time.Millisecond
	// First call of the process: sysmon has not backed off yet.
	first := oneCall(d)
	report(t, "first", []time.Duration{first})
	oneCall(d) // not counted, as on the Rust side
	var repeated []time.Duration
	for i := 0; i < 20; i++ {
		repeated = append(repeated, oneCall(d))
	}
	report(t, "repeated", repeated)
	// Each call after 30 ms of computing: sysmon found nothing to retake
	// for that long and backed off to 10 ms sleeps.
	var afterBusy []time.Duration
	for i := 0; i < 20; i++ {
		busy(30 * time.Millisecond)
		afterBusy = append(afterBusy, oneCall(d))
	}
	report(t, "after_busy", afterBusy)
}

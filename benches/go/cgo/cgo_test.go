package cgo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func BenchmarkCgoCall(b *testing.B) {
	s := 0
	for i := 0; i < b.N; i++ {
		s += CallC(i)
	}
	if s == 0 && b.N > 0 {
		b.Fatal("no calls")
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if RoundTrip(i) != i+1 {
			b.Fatal("wrong result")
		}
	}
}

func BenchmarkCallbackPthread(b *testing.B) {
	if ThreadCallbacks(b.N) != 0 {
		b.Fatal("pthread_create failed")
	}
}

// BenchmarkCallbackMainThread: a C program's main thread calls into a Go
// c-archive b.N times (Go's BenchmarkCgoCallbackMainThread shape). The
// C driver times the loop itself and prints ns per call.
func BenchmarkCallbackMainThread(b *testing.B) {
	prog := buildCArchive(b)
	b.ResetTimer()
	out, err := exec.Command(prog, strconv.Itoa(b.N)).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("%s: %v\n%s", prog, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "ns_per_call" {
		b.Fatalf("unexpected output %q", out)
	}
	ns, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ns, "c-ns/call")
}

var built string

func buildCArchive(b *testing.B) string {
	if built != "" {
		return built
	}
	// Not b.TempDir: it is removed after this benchmark's first run, and
	// the program serves every run of the process.
	dir, err := os.MkdirTemp("", "gort-carchive")
	if err != nil {
		b.Fatal(err)
	}
	lib := filepath.Join(dir, "libgo.a")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-buildmode=c-archive", "-o", lib, ".")
	cmd.Dir = "carchive"
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build c-archive: %v\n%s", err, out)
	}
	prog := filepath.Join(dir, "main10")
	cc := exec.Command("gcc", "-O2", "-I", dir, "-o", prog, "driver/main10.c", lib, "-lpthread")
	var stderr bytes.Buffer
	cc.Stderr = &stderr
	if err := cc.Run(); err != nil {
		b.Fatalf("gcc: %v\n%s", err, stderr.String())
	}
	built = prog
	return prog
}

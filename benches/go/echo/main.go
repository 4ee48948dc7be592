// The echo server and client of docs/performance.md's network row, Go's
// side (gort's is benches/examples/echo_probe.rs):
//
//	go run . server ADDR CONNS          exits after CONNS connections closed
//	go run . client ADDR CONNS ROUNDS   CONNS goroutines, ROUNDS round trips of 64 B
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func status(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			return strings.TrimSpace(l[len(field):])
		}
	}
	return ""
}

func server(addr string, conns int) {
	var peak atomic.Int64
	go func() {
		for {
			n, _ := strconv.Atoi(status("Threads:"))
			if int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		c, err := l.Accept()
		if err != nil {
			panic(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, err := c.Read(buf)
				if n == 0 || err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("server threads peak %d, VmHWM %s\n", peak.Load(), status("VmHWM:"))
}

func client(addr string, conns, rounds int) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				panic(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			back := make([]byte, 64)
			for r := 0; r < rounds; r++ {
				if _, err := c.Write(msg); err != nil {
					panic(err)
				}
				if _, err := io.ReadFull(c, back); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("client: %d connections x %d round trips in %.3f s\n", conns, rounds, time.Since(start).Seconds())
}

func main() {
	n, _ := strconv.Atoi(os.Args[3])
	switch os.Args[1] {
	case "server":
		server(os.Args[2], n)
	case "client":
		r, _ := strconv.Atoi(os.Args[4])
		client(os.Args[2], n, r)
	}
}

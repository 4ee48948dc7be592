module gort/benches/go/unwind

go 1.23

module gort/benches/time

go 1.23

module gort.invalid/benches/sched

go 1.23

module gort/benches/handoff

go 1.23

module gort/benches/chan

go 1.23

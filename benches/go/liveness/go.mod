module liveness

go 1.23

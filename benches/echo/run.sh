#!/usr/bin/env bash
# The echo server with a goroutine (Go: goroutine, tokio: task) per
# connection, ROUNDS round trips of 64 B each, for each CONNS: gort's,
# Go 1.23's and tokio's servers, each driven by gort's client (one client
# for all) and by its own system's client; the server and the client are
# separate processes on this machine. Prints and saves (for `cargo xtask
# bench`'s report, <target>/echo-bench.md) a table of the client's time,
# the server's peak thread count (sampled every millisecond, the sampler
# excluded) and its peak RSS (VmHWM).
#
# Usage: benches/echo/run.sh [ROUNDS [CONNS...]]   (defaults 100, 1000 10000)
# Needs Go (GO=..., else `go` on PATH, else /usr/lib/go-1.23).
set -euo pipefail
ROUNDS=${1:-100}
shift || true
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(1000 10000)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GO=${GO:-$(command -v go || echo /usr/lib/go-1.23/bin/go)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
T=$(mktemp -d /tmp/gort-echo.XXXXXX)
trap 'rm -rf "$T"' EXIT
# 10,000 connections are 10,000 fds in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "building (echo_probe, Go's echo) ..." >&2
(cd "$ROOT" && cargo build --quiet --release -p gort-benches --example echo_probe)
E="$TARGET/release/examples/echo_probe"
(cd "$ROOT/benches/go/echo" && GOTOOLCHAIN=local "$GO" build -o "$T/goecho" .)
port=7300
# run SERVER_LABEL CLIENT_LABEL CONNS SERVER_CMD... -- CLIENT_CMD...
one() {
    local slabel=$1 clabel=$2 n=$3 server=$4 client=$5
    port=$((port + 1))
    local addr=127.0.0.1:$port
    $server "$addr" "$n" >"$T/server.out" 2>&1 &
    local spid=$!
    sleep 0.5
    $client "$addr" "$n" "$ROUNDS" >"$T/client.out" 2>&1
    wait "$spid"
    local secs threads rss
    secs=$(grep -o 'in [0-9.]* s' "$T/client.out" | awk '{print $2}')
    threads=$(grep -o 'peak [0-9]*' "$T/server.out" | awk '{print $2}')
    rss=$(grep -o 'VmHWM *[0-9]*' "$T/server.out" | awk '{printf "%.1f", $2 / 1024}')
    printf '| %s | %s | %s client | %s s | %s | %s MiB |\n' \
        "$n" "$slabel" "$clabel" "$secs" "$threads" "$rss" | tee -a "$T/table"
}
for n in "${CONNS[@]}"; do
    one gort gort "$n" "$E server" "$E client"
    one "Go 1.23" gort "$n" "$T/goecho server" "$E client"
    one tokio gort "$n" "$E tokio-server" "$E client"
    one "Go 1.23" Go "$n" "$T/goecho server" "$T/goecho client"
    one tokio tokio "$n" "$E tokio-server" "$E tokio-client"
done
{
    echo "Measured by \`benches/echo/run.sh $ROUNDS ${CONNS[*]}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS round trips per connection."
    echo
    echo "| connections | server | client | time | server threads | server peak RSS |"
    echo "|---|---|---|---|---|---|"
    cat "$T/table"
} >"$TARGET/echo-bench.md"
echo "saved $TARGET/echo-bench.md" >&2

#!/usr/bin/env bash
# A C program's main thread calling a callback n times: gort's staticlib
# (built as a user's crate: its own workspace, cargo's default release
# profile) against Go 1.23's c-archive (benches/go/cgo/carchive), K runs
# of each interleaved per round. Prints each run's ns per call, then the
# fastest and median of each side and their ratio.
#
# Usage: benches/cprog/run.sh [ROUNDS [K [N]]]   (defaults 3, 5, 2000000)
# Needs gcc and Go (GO=..., else `go` on PATH, else /usr/lib/go-1.23).
set -euo pipefail
ROUNDS=${1:-3}
K=${2:-5}
N=${3:-2000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GO=${GO:-$(command -v go || echo /usr/lib/go-1.23/bin/go)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
T=$(mktemp -d /tmp/gort-cprog.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "building (the staticlib as a user crate, Go's c-archive, both drivers) ..." >&2
cargo build --quiet --release --manifest-path "$HERE/Cargo.toml" \
    --target-dir "$TARGET/cprog"
gcc -O2 -o "$T/gort_main" "$HERE/c/main.c" \
    "$TARGET/cprog/release/libgort_cprog_bench.a" -lpthread -ldl -lm
(cd "$ROOT/benches/go/cgo/carchive" && "$GO" build -buildmode=c-archive -o "$T/libgo.a" .)
gcc -O2 -I "$T" -o "$T/go_main" "$ROOT/benches/go/cgo/driver/main10.c" "$T/libgo.a" -lpthread

stats() { sort -g | awk '{v[NR]=$1} END {printf "%s %s\n", v[1], v[int((NR+1)/2)]}'; }
run() { for _ in $(seq "$K"); do "$1" "$N" | awk '{print $2}'; done; }

printf '%5s %10s %10s %10s %10s %7s\n' round "gort min" "gort med" "Go min" "Go med" "min/min"
all_gort=""
all_go=""
for r in $(seq "$ROUNDS"); do
    g=$(run "$T/gort_main")
    o=$(run "$T/go_main")
    all_gort+="$g"$'\n'
    all_go+="$o"$'\n'
    read -r gmin gmed < <(echo "$g" | stats)
    read -r omin omed < <(echo "$o" | stats)
    printf '%5s %10s %10s %10s %10s %7s\n' "$r" "$gmin" "$gmed" "$omin" "$omed" \
        "$(awk -v a="$gmin" -v b="$omin" 'BEGIN {printf "%.3f", a / b}')"
done
read -r gmin gmed < <(echo "$all_gort" | grep . | stats)
read -r omin omed < <(echo "$all_go" | grep . | stats)
echo
printf 'callback from a C main thread, ns per call over %s runs each: gort %s (median %s), Go %s (median %s)\n' \
    "$((ROUNDS * K))" "$gmin" "$gmed" "$omin" "$omed"
# For `cargo xtask bench`'s report (the medians, in go-bench's form).
mkdir -p "$TARGET/go-bench"
printf 'GortCallbackMainThread 1 %s\nGoCallbackMainThread 1 %s\n' "$gmed" "$omed" \
    >"$TARGET/go-bench/cprog.txt"
printf 'gort / Go: fastest %s, median %s\n' \
    "$(awk -v a="$gmin" -v b="$omin" 'BEGIN {printf "%.3f", a / b}')" \
    "$(awk -v a="$gmed" -v b="$omed" 'BEGIN {printf "%.3f", a / b}')"

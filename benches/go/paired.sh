#!/usr/bin/env bash
# gort-cgo against Go's cgo, paired and interleaved (the C bridge's ratios
# in docs/performance.md).
#
# This machine has slow spells of seconds to minutes that change every
# number by up to 2x, on both sides. One criterion run and one `go test`
# run a minute apart can land in different spells, so their ratio says
# little. Here every round runs Go's benchmark and gort's probe (cgo_probe;
# cgo_panic_probe for the panic) for one shape back to back (a few seconds
# in all), K batches each, and takes the
# ratio of the two fastest batches and of the two median batches. The
# summary is the median of those ratios over the rounds.
#
# Usage: benches/go/paired.sh [ROUNDS [K]]     (defaults 5 and 10)
# Needs Go (GO=..., else `go` on PATH, else Debian's /usr/lib/go-1.23) and
# gcc. Shapes (SHAPES=...): call round_trip main pthread panic.
set -euo pipefail

ROUNDS=${1:-5}
K=${2:-10}
SHAPES=${SHAPES:-call round_trip main pthread panic}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-$(command -v go || echo /usr/lib/go-1.23/bin/go)}
T=$(mktemp -d /tmp/gort-paired.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "building (gort probe, Go test binaries, Go c-archive driver) ..." >&2
(cd "$ROOT" && cargo build --quiet --release -p gort-benches --example cgo_probe \
    --example cgo_panic_probe)
PROBE=$ROOT/target/release/examples/cgo_probe
PANIC_PROBE=$ROOT/target/release/examples/cgo_panic_probe
(cd "$ROOT/benches/go/cgo" && "$GO" test -c -o "$T/cgo.test")
(cd "$ROOT/benches/go/unwind" && "$GO" test -c -o "$T/unwind.test")
(cd "$ROOT/benches/go/cgo/carchive" && "$GO" build -buildmode=c-archive -o "$T/libgo.a" .)
gcc -O2 -I "$T" -o "$T/main10" "$ROOT/benches/go/cgo/driver/main10.c" "$T/libgo.a" -lpthread

# min and median of the numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {printf "%s %s\n", v[1], v[int((NR+1)/2)]}'; }

# Go's K batches for a shape, ns per operation, one per line
go_batches() {
    local bench n
    case $1 in
        call) bench=CgoCall n=200000 ;;
        round_trip) bench=RoundTrip n=200000 ;;
        pthread) bench=CallbackPthread n=200000 ;;
        panic) bench=PanicAcrossC n=20000 ;;
        main)
            for _ in $(seq "$K"); do "$T/main10" 200000 | awk '{print $2}'; done
            return ;;
    esac
    local bin=$T/cgo.test
    [ "$1" = panic ] && bin=$T/unwind.test
    "$bin" -test.run '^$' -test.bench "^Benchmark$bench\$" -test.benchtime "${n}x" \
        -test.count "$K" | awk '/^Benchmark/ {print $3}'
}

# gort's K batches (the probes' rounds): "min median"
gort_stats() {
    if [ "$1" = panic ]; then
        "$PANIC_PROBE" recover_call "$K" 20000 2>/dev/null
    else
        GORT_PROBE_ROUNDS=$K "$PROBE" "$1" 2>&1 >/dev/null
    fi |
        awk '{for (i = 1; i < NF; i++) {if ($i == "min") a = $(i + 1); if ($i == "median") b = $(i + 1)}}
             END {print a, b}'
}

declare -A RMIN RMED FLOOR_GORT FLOOR_GO
printf '%-11s %5s %10s %10s %7s %10s %10s %7s\n' shape round "gort min" "Go min" ratio \
    "gort med" "Go med" ratio
for r in $(seq "$ROUNDS"); do
    for s in $SHAPES; do
        read -r gmin gmed < <(go_batches "$s" | stats)
        read -r rmin rmed < <(gort_stats "$s")
        qmin=$(awk -v a="$rmin" -v b="$gmin" 'BEGIN {printf "%.3f", a / b}')
        qmed=$(awk -v a="$rmed" -v b="$gmed" 'BEGIN {printf "%.3f", a / b}')
        RMIN[$s]+="$qmin "
        RMED[$s]+="$qmed "
        FLOOR_GORT[$s]+="$rmin "
        FLOOR_GO[$s]+="$gmin "
        printf '%-11s %5s %10s %10s %7s %10s %10s %7s\n' "$s" "$r" "$rmin" "$gmin" "$qmin" \
            "$rmed" "$gmed" "$qmed"
    done
done
echo
echo "gort / Go, median over $ROUNDS rounds (range), of K=$K batches per side per round:"
for s in $SHAPES; do
    # shellcheck disable=SC2086
    read -r lo mid hi < <(printf '%s\n' ${RMIN[$s]} | sort -g | awk '{v[NR]=$1} END {print v[1], v[int((NR+1)/2)], v[NR]}')
    # shellcheck disable=SC2086
    read -r lo2 mid2 hi2 < <(printf '%s\n' ${RMED[$s]} | sort -g | awk '{v[NR]=$1} END {print v[1], v[int((NR+1)/2)], v[NR]}')
    printf '%-11s fastest batches %s (%s-%s)   median batches %s (%s-%s)\n' "$s" "$mid" "$lo" "$hi" \
        "$mid2" "$lo2" "$hi2"
done
echo
echo "floors: each side's fastest batch over all $ROUNDS rounds (what each can do on this machine in this run):"
for s in $SHAPES; do
    # shellcheck disable=SC2086
    fg=$(printf '%s\n' ${FLOOR_GORT[$s]} | sort -g | head -1)
    # shellcheck disable=SC2086
    fo=$(printf '%s\n' ${FLOOR_GO[$s]} | sort -g | head -1)
    printf '%-11s gort %s ns   Go %s ns   gort / Go %s\n' "$s" "$fg" "$fo" \
        "$(awk -v a="$fg" -v b="$fo" 'BEGIN {printf "%.3f", a / b}')"
done

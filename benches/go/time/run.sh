#!/usr/bin/env bash
# gort::time and Go 1.23's time, same shapes, back to back (the machine is
# noisy: compare numbers taken in the same minutes). Prints ns per op.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
GO=${GO:-$(command -v go || echo /usr/lib/go-1.23/bin/go)}
ROUNDS=${1:-3}
for r in $(seq "$ROUNDS"); do
    echo "round $r"
    (cd "$ROOT/benches/go/time" && GOMAXPROCS=1 "$GO" test -run - -bench . -count 1 | grep Benchmark)
    (cd "$ROOT" && cargo bench -q -p gort-benches --bench time -- --noplot 2>/dev/null | grep -E "^timer/|time:")
done

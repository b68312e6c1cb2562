#!/usr/bin/env bash
# Compares two hub builds in one session, interleaved (A, B, A, B, ...), so both see
# the same machine noise: ROUNDS rounds of each scenario, one fresh hub per run.
#
#   BASE=/path/to/old/tidings loadtests/ab.sh steady2k steady10k
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?set BASE to the tidings binary to compare against}"
ROUNDS=${ROUNDS:-3}
ROOT=${OUT:-loadtests/out/ab-$(date -u +%Y%m%dT%H%M%SZ)}
cargo build --release -q -p tidings -p tidings-load
NEW=${CARGO_TARGET_DIR:-target}/release/tidings
for r in $(seq "$ROUNDS"); do
  for s in "$@"; do
    HUB=$BASE LABEL=base- RUNS=1 OUT=$ROOT/round$r loadtests/bench.sh "$s"
    HUB=$NEW LABEL=new- RUNS=1 OUT=$ROOT/round$r loadtests/bench.sh "$s"
  done
done
echo "results in $ROOT"

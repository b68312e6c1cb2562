#!/usr/bin/env bash
# Runs the benchmark set of loadtests/RESULTS.md: every scenario RUNS times (default 3),
# each against a fresh hub with a fresh SQLite database, hub pinned to core 0 and the
# load tool to core 1. Writes one JSON per run into OUT (default loadtests/out/DATE).
#
#   loadtests/bench.sh [scenario ...]      scenarios: steady2k steady10k ladder16 sweep idle-ws idle-sse storm burst
#   HUB=/path/to/tidings LABEL=base- OUT=dir loadtests/bench.sh ...   the same with another build
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=${OUT:-loadtests/out/$(date -u +%Y%m%dT%H%M%SZ)}
DURATION=${DURATION:-20}
PORT=${PORT:-18080}
mkdir -p "$OUT"
target=${CARGO_TARGET_DIR:-target}
[ -n "${HUB:-}" ] || cargo build --release -q -p tidings -p tidings-load
HUB=${HUB:-$target/release/tidings}   # HUB=path/to/other/tidings compares two builds
LOAD=$target/release/tidings-load
LABEL=${LABEL:-}

export TIDINGS_LOAD_URL=http://127.0.0.1:$PORT TIDINGS_LOAD_TENANT=bench
export TIDINGS_LOAD_API_KEY=bench-key-0123456789 TIDINGS_LOAD_JWT_SECRET=bench-secret-0123456789abcdef
# One key publishes 10,000–20,000/s here: request quotas far above that (the
# defaults, config/tidings.toml [rate_limits], suit a clinic, not a benchmark).
export TIDINGS_RATE_LIMITS__PER_KEY_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_KEY_BURST=1000000
export TIDINGS_RATE_LIMITS__PER_TENANT_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_TENANT_BURST=1000000
# The tool's thousands of sockets come from one or two loopback addresses: the
# per-address connection cap (512 by default, a defence measured by scripts/hostile)
# would refuse them, so it is lifted here like the request quotas above.
export TIDINGS_SERVER__MAX_CONNECTIONS_PER_IP=1000000

start_hub() {
  BENCH=$(mktemp -d)
  TIDINGS_LISTEN=127.0.0.1:$PORT TIDINGS_DATABASE_URL=sqlite://$BENCH/bench.db \
  TIDINGS_DEV_TENANT=bench TIDINGS_DEV_API_KEY=$TIDINGS_LOAD_API_KEY TIDINGS_DEV_JWT_SECRET=$TIDINGS_LOAD_JWT_SECRET \
  TIDINGS_LOG_LEVEL=warn taskset -c 0 "$HUB" serve >"$BENCH/hub.out" 2>"$BENCH/hub.log" &
  HUB_PID=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "hub did not start" >&2; cat "$BENCH/hub.log" >&2; return 1
}
stop_hub() { kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; rm -rf "$BENCH"; sleep 1; }

run() { # name, tool args...
  local name=$1; shift
  for i in $(seq "$RUNS"); do
    start_hub
    echo "== $name run $i"
    taskset -c 1 "$LOAD" "$@" --hub-pid "$HUB_PID" --json "$OUT/$LABEL$name-$i.json" | tail -n 12 || echo "run failed: $name $i"
    stop_hub
  done
}

want() { [ $# -eq 0 ] && return 0; local s; for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
SELECTED=("$@")
want_s() { [ ${#SELECTED[@]} -eq 0 ] || want "$1"; }

want_s steady2k && run steady2k steady --users 1000 --conns-per-user 2 --rate 2000 --duration "$DURATION" --grace 5
# 10,000/s with requests taking up to ~10 ms each needs ~100 in flight (Little's law): 128.
want_s steady10k && run steady10k steady --users 1000 --conns-per-user 2 --rate 10000 --publish-concurrency 128 --duration "$DURATION" --grace 5
# The rates a clinic backend really produces, with the handful of requests in flight a
# Celery or gunicorn pool keeps open (issue 13): CPU per delivery and p99 at each step.
want_s ladder16 && run ladder16 steady --users 1000 --conns-per-user 2 --sweep 100,500,2000 --sweep-all --publish-concurrency 16 --duration 15 --grace 5
want_s sweep && run sweep steady --users 1000 --conns-per-user 2 --sweep 10000,11000,12000,13000,14000,16000 --publish-concurrency 256 --duration 10 --grace 5
want_s idle-ws && run idle-ws idle --users 18000 --conns-per-user 1 --transport ws --procs 4 --source-ips 127.0.0.1,127.0.0.2
want_s idle-sse && run idle-sse idle --users 18000 --conns-per-user 1 --transport sse --procs 4 --source-ips 127.0.0.1,127.0.0.2
want_s storm && run storm storm --users 10000 --connect-concurrency 512
want_s burst && run burst burst --users 9950 --conns-per-user 2 --procs 2 --source-ips 127.0.0.1,127.0.0.2
echo "results in $OUT"

#!/usr/bin/env bash
# The outbound benchmark of loadtests/RESULTS.md (issue 4): 10,000 SMS enqueued with one
# bulk request, sent by the hub to a fake Twilio that the load tool serves itself and that
# answers in 50 ms. Each run gets a fresh hub and a fresh SQLite database; the hub is
# pinned to core 0, the tool to core 1. One JSON per run into OUT.
#
#   loadtests/outbound.sh                     default concurrency, then a concurrency sweep, then a rate-limited run
#   CONCURRENCY="16 64" RATES="" MESSAGES=2000 loadtests/outbound.sh    a short smoke run
#   HUB=path/to/tidings loadtests/outbound.sh  another build
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-loadtests/out/outbound-$(date -u +%Y%m%dT%H%M%SZ)}
PORT=${PORT:-18080}
FAKE=${FAKE:-127.0.0.1:18090}
MESSAGES=${MESSAGES:-10000}
DELAY_MS=${DELAY_MS:-50}
CONCURRENCY=${CONCURRENCY-16 32 64 128 256}   # 16 is the default (config/tidings.toml)
RATES=${RATES-200}                              # Twilio rate_limit.per_second for the rate-limited run(s)
RATE_CONCURRENCY=${RATE_CONCURRENCY:-64}
mkdir -p "$OUT"
target=${CARGO_TARGET_DIR:-target}
[ -n "${HUB:-}" ] || cargo build --release -q -p tidings -p tidings-load
HUB=${HUB:-$target/release/tidings}
LOAD=$target/release/tidings-load

export TIDINGS_LOAD_URL=http://127.0.0.1:$PORT TIDINGS_LOAD_TENANT=bench
export TIDINGS_LOAD_API_KEY=bench-key-0123456789 TIDINGS_LOAD_JWT_SECRET=bench-secret-0123456789abcdef
# One key publishes 10,000–20,000/s here: request quotas far above that (the
# defaults, config/tidings.toml [rate_limits], suit a clinic, not a benchmark).
export TIDINGS_RATE_LIMITS__PER_KEY_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_KEY_BURST=1000000
export TIDINGS_RATE_LIMITS__PER_TENANT_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_TENANT_BURST=1000000

start_hub() { # concurrency, rate (0 = unlimited)
  BENCH=$(mktemp -d)
  cat >"$BENCH/tidings.toml" <<TOML
body_limit_bytes = 8388608
[outbound]
concurrency = $1
claim_batch = 256
poll_interval_ms = 200
[outbound.tenants.bench.providers.twilio]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "bench-twilio-token"
from = "+14155550100"
base_url = "http://$FAKE"
timeout_ms = 10000
rate_limit = { per_second = $2, burst = $(( $2 > 0 ? $2 / 10 + 1 : 0 )) }
[outbound.tenants.bench.routes]
sms = ["twilio"]
whatsapp = ["log"]
email = ["log"]
TOML
  TIDINGS_LISTEN=127.0.0.1:$PORT TIDINGS_DATABASE_URL=sqlite://$BENCH/bench.db \
  TIDINGS_DEV_TENANT=bench TIDINGS_DEV_API_KEY=$TIDINGS_LOAD_API_KEY TIDINGS_DEV_JWT_SECRET=$TIDINGS_LOAD_JWT_SECRET \
  TIDINGS_LOG_LEVEL=warn taskset -c 0 "$HUB" serve --config "$BENCH/tidings.toml" >"$BENCH/hub.out" 2>"$BENCH/hub.log" &
  HUB_PID=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "hub did not start" >&2; cat "$BENCH/hub.log" >&2; return 1
}
stop_hub() { kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; rm -rf "$BENCH"; sleep 1; }

run() { # name, concurrency, rate
  start_hub "$2" "$3"
  echo "== $1 (concurrency $2, rate limit ${3:-0}/s)"
  local rate_arg=()
  [ "$3" -gt 0 ] && rate_arg=(--configured-rate "$3")
  taskset -c 1 "$LOAD" outbound --messages "$MESSAGES" --fake-listen "$FAKE" --fake-delay-ms "$DELAY_MS" \
    --concurrency "$2" "${rate_arg[@]}" --hub-pid "$HUB_PID" --json "$OUT/$1.json" | tail -n 16 || echo "run failed: $1"
  stop_hub
}

for c in $CONCURRENCY; do run "outbound-c$c" "$c" 0; done
for r in $RATES; do run "outbound-rate$r" "$RATE_CONCURRENCY" "$r"; done
echo "results in $OUT"

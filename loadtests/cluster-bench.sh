#!/usr/bin/env bash
# Issue #3's comparison, in one run: the steady scenario through an nginx round-robin load
# balancer (WebSocket upgrade, no buffering) in front of
#   A) 3 hub nodes on PostgreSQL + Redis,
#   B) 1 hub node on SQLite (in-process bus),
#   C) 1 hub node on PostgreSQL (in-process bus),
# interleaved A B C, ROUNDS times, fresh databases each run. Hubs are pinned over the two
# cores as evenly as the box allows (nodes on cores 0, 1, 0); the load tool on core 1;
# PostgreSQL, Redis and nginx unpinned. Writes JSON per run into OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-2000}
DURATION=${DURATION:-20}
OUT=${OUT:-loadtests/out/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tidings -p tidings-load
HUB=$target/release/tidings
LOAD=$target/release/tidings-load
command -v nginx >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
# shellcheck source=scripts/services.sh
source scripts/services.sh
services_start
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; services_stop; rm -rf "$WORK"; }
trap cleanup EXIT
export TIDINGS_LOAD_TENANT=bench TIDINGS_LOAD_API_KEY=bench-key-0123456789 TIDINGS_LOAD_JWT_SECRET=bench-secret-0123456789abcdef
# One key publishes 10,000–20,000/s here: request quotas far above that (the
# defaults, config/tidings.toml [rate_limits], suit a clinic, not a benchmark).
export TIDINGS_RATE_LIMITS__PER_KEY_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_KEY_BURST=1000000
export TIDINGS_RATE_LIMITS__PER_TENANT_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_TENANT_BURST=1000000
LB_PORT=$(services_free_port)
export TIDINGS_LOAD_URL=http://127.0.0.1:$LB_PORT

start_lb() { # ports...
  local upstreams=""; for p in "$@"; do upstreams+="server 127.0.0.1:$p; "; done
  cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
  upstream hubs { $upstreams keepalive 128; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:$LB_PORT;
    location / {
      proxy_pass http://hubs; proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade;
      proxy_buffering off; proxy_read_timeout 1h;
    }
  }
}
CONF
  nginx -c "$WORK/nginx.conf"
}
stop_lb() { kill "$(cat "$WORK/nginx.pid")"; sleep 0.5; }

start_hub() { # core db_url redis_url → sets HUB_PORT (not in a subshell: PIDS must be kept)
  local port; port=$(services_free_port)
  TIDINGS_LISTEN=127.0.0.1:$port TIDINGS_DATABASE_URL=$2 TIDINGS_REDIS_URL=$3 \
  TIDINGS_DEV_TENANT=bench TIDINGS_DEV_API_KEY=$TIDINGS_LOAD_API_KEY TIDINGS_DEV_JWT_SECRET=$TIDINGS_LOAD_JWT_SECRET \
  TIDINGS_LOG_LEVEL=warn taskset -c "$1" "$HUB" serve >"$WORK/hub-$port.out" 2>"$WORK/hub-$port.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && { HUB_PORT=$port; return 0; }; sleep 0.1; done
  echo "hub did not start" >&2; return 1
}
stop_hubs() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

fresh_pg() { local db="bench_$(date +%s%N)"; psql -q "$TIDINGS_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null; echo "${TIDINGS_TEST_POSTGRES_URL%/*}/$db"; }

run() { # name
  echo "== $1"
  taskset -c 1 "$LOAD" steady --users 1000 --conns-per-user 2 --rate "$RATE" --duration "$DURATION" --grace 5 \
    --json "$OUT/$1.json" | tail -n 4 || echo "run failed: $1"
}

for r in $(seq "$ROUNDS"); do
  pg=$(fresh_pg)
  start_hub 0 "$pg" "$TIDINGS_TEST_REDIS_URL"; p1=$HUB_PORT
  start_hub 1 "$pg" "$TIDINGS_TEST_REDIS_URL"; p2=$HUB_PORT
  start_hub 0 "$pg" "$TIDINGS_TEST_REDIS_URL"; p3=$HUB_PORT
  start_lb "$p1" "$p2" "$p3"; run "3nodes-pg-redis-$r"; stop_lb; stop_hubs

  start_hub 0 "sqlite://$WORK/s$r/bench.db" ""; start_lb "$HUB_PORT"; run "1node-sqlite-$r"; stop_lb; stop_hubs

  pg=$(fresh_pg)
  start_hub 0 "$pg" ""; start_lb "$HUB_PORT"; run "1node-pg-$r"; stop_lb; stop_hubs
done
echo "results in $OUT"

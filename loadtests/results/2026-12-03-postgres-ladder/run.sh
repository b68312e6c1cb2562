#!/usr/bin/env bash
set -euo pipefail
cd /work/main
source scripts/services.sh
services_start >/dev/null
# Durable, as in production (the test cluster runs with fsync off), and on core 1.
psql "$TIDINGS_TEST_POSTGRES_URL" -qc "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
for p in $(pgrep -u postgres); do taskset -cp 1 $p >/dev/null; done
psql "$TIDINGS_TEST_POSTGRES_URL" -tAc "SHOW fsync" -c "SHOW synchronous_commit"
PORT=18191; T=~/.cache/tidings/target/release
export TIDINGS_LOAD_URL=http://127.0.0.1:$PORT TIDINGS_LOAD_TENANT=bench
export TIDINGS_LOAD_API_KEY=bench-key-0123456789 TIDINGS_LOAD_JWT_SECRET=bench-secret-0123456789abcdef
export TIDINGS_RATE_LIMITS__PER_KEY_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_KEY_BURST=1000000
export TIDINGS_RATE_LIMITS__PER_TENANT_PER_SEC=1000000 TIDINGS_RATE_LIMITS__PER_TENANT_BURST=1000000
export TIDINGS_SERVER__MAX_CONNECTIONS_PER_IP=1000000
OUT=loadtests/results/2026-12-03-postgres-ladder; mkdir -p $OUT
for inflight in 16 128; do
 for run in 1 2 3; do
  DB=${TIDINGS_TEST_POSTGRES_URL%/*}/bench_${inflight}_$run
  psql "${TIDINGS_TEST_POSTGRES_URL}" -qc "CREATE DATABASE bench_${inflight}_$run" >/dev/null
  TIDINGS_LISTEN=127.0.0.1:$PORT TIDINGS_DATABASE_URL=$DB TIDINGS_DEV_TENANT=bench TIDINGS_DEV_API_KEY=$TIDINGS_LOAD_API_KEY TIDINGS_DEV_JWT_SECRET=$TIDINGS_LOAD_JWT_SECRET TIDINGS_LOG_LEVEL=warn taskset -c 0 $T/tidings serve >/tmp/pghub.out 2>/tmp/pghub.log &
  HP=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
  if [ $inflight = 16 ]; then SW=500,2000,5000; else SW=5000,10000; fi
  taskset -c 1 $T/tidings-load steady --users 1000 --conns-per-user 2 --sweep $SW --sweep-all --publish-concurrency $inflight --duration 15 --grace 5 --hub-pid $HP --json $OUT/pg-inflight$inflight-$run.json | grep -E "^\| [0-9]" || true
  kill $HP; wait $HP 2>/dev/null || true
 done
done
services_stop >/dev/null

#!/usr/bin/env bash
# Test services: installs (if missing) and starts a real PostgreSQL and Redis on free
# loopback ports in a temporary directory, and stops them. Sourced by scripts/test.
#
#   source scripts/services.sh; services_start; ...; services_stop
#
# Exports: TIDINGS_TEST_POSTGRES_URL (a superuser URL to an admin database; tests create
# a fresh database each), TIDINGS_TEST_REDIS_URL, and for fault tests that restart them:
# TIDINGS_TEST_PG_BIN (PostgreSQL's bin dir), TIDINGS_TEST_PG_DATA, TIDINGS_TEST_PG_PORT,
# TIDINGS_TEST_REDIS_SERVER (the redis-server binary).

services_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

services_install() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "installing ${pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
}

services_start() {
  services_install
  SERVICES_DIR=$(mktemp -d /tmp/tidings-services.XXXXXX)
  chmod 755 "$SERVICES_DIR"
  # PostgreSQL refuses to run as root: run it as the postgres user in our own cluster.
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local pgport; pgport=$(services_free_port)
  local pgdata=$SERVICES_DIR/pg
  mkdir -p "$pgdata" && chown postgres:postgres "$pgdata"
  local as_pg=(runuser -u postgres --)
  [ "$(id -u)" -eq 0 ] || as_pg=()
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres -A trust --no-sync >/dev/null
  cat >>"$pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$pgdata'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
CONF
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/log" -w start >/dev/null
  export TIDINGS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
  export TIDINGS_TEST_PG_BIN=$pgbin TIDINGS_TEST_PG_DATA=$pgdata TIDINGS_TEST_PG_PORT=$pgport

  local rport; rport=$(services_free_port)
  export TIDINGS_TEST_REDIS_SERVER=$(command -v redis-server)
  "$TIDINGS_TEST_REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
  export TIDINGS_TEST_REDIS_URL="redis://127.0.0.1:$rport"
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "services: postgres on $pgport, redis on $rport ($SERVICES_DIR)"
}

services_stop() {
  [ -n "${SERVICES_DIR:-}" ] || return 0
  if [ -f "$SERVICES_DIR/redis.pid" ]; then kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true; fi
  if [ -n "${TIDINGS_TEST_PG_DATA:-}" ] && [ -f "$TIDINGS_TEST_PG_DATA/postmaster.pid" ]; then
    local as_pg=(runuser -u postgres --); [ "$(id -u)" -eq 0 ] || as_pg=()
    "${as_pg[@]}" "$TIDINGS_TEST_PG_BIN/pg_ctl" -D "$TIDINGS_TEST_PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$SERVICES_DIR"
}

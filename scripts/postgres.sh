#!/usr/bin/env bash
# Starts (start DIR PORT) or stops (stop DIR) a private, throwaway PostgreSQL
# cluster listening on 127.0.0.1 only, for the test suite.
set -euo pipefail
cmd=${1:?usage: postgres.sh start DIR PORT | stop DIR}
dir=${2:?directory}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ]; then
  echo "postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi
case "$cmd" in
start)
  port=${3:?port}
  mkdir -p "$dir"
  chown postgres: "$dir" 2>/dev/null || true
  as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  as_pg "$PGBIN/initdb -D '$dir/data' -A trust -U postgres -E UTF8 --no-sync" >/dev/null
  as_pg "$PGBIN/pg_ctl -D '$dir/data' -l '$dir/log' -w -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c max_connections=200\" start" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  if [ -f "$dir/data/postmaster.pid" ]; then
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D '$dir/data' -m fast -w stop" >/dev/null || true
    else "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true; fi
  fi
  rm -rf "$dir"
  ;;
esac

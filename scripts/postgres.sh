#!/usr/bin/env bash
# Starts (start DIR PORT) or stops (stop DIR) a private, throwaway PostgreSQL
# cluster listening on 127.0.0.1 only, for the test suite.
#
#   scripts/postgres.sh start DIR PORT   prints the DSN on stdout
#   scripts/postgres.sh stop DIR         stops the cluster and removes DIR
#
# As root the server runs as the "postgres" user (PostgreSQL refuses root);
# DIR's parent must then be searchable by that user. On a failed start the
# server log goes to stderr and DIR is left for the caller's stop to remove.
set -euo pipefail
cmd=${1:?usage: postgres.sh start DIR PORT | stop DIR}
dir=${2:?usage: postgres.sh start DIR PORT | stop DIR}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "postgres.sh: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
  exit 1
fi

# as_pg runs a command line as the postgres user when we are root, from / so
# that an unreadable working directory does not matter.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "cd / && $*"
  else
    sh -c "$*"
  fi
}

case "$cmd" in
start)
  port=${3:?usage: postgres.sh start DIR PORT}
  case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root but there is no 'postgres' user (apt-get install postgresql creates it)" >&2
      exit 1
    fi
    chown postgres: "$dir"
    if ! su postgres -s /bin/sh -c "test -w '$dir'"; then
      echo "postgres.sh: the postgres user cannot write $dir (is a parent directory mode 0700?)" >&2
      exit 1
    fi
  fi
  if ! as_pg "'$PGBIN/initdb' -D '$dir/data' -A trust -U postgres -E UTF8 --no-sync" >"$dir/initdb.log" 2>&1; then
    echo "postgres.sh: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    exit 1
  fi
  opts="-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
  if ! as_pg "'$PGBIN/pg_ctl' -D '$dir/data' -l '$dir/log' -w -t 60 -o \"$opts\" start" >/dev/null 2>&1; then
    echo "postgres.sh: PostgreSQL did not start on 127.0.0.1:$port; its log:" >&2
    tail -n 30 "$dir/log" >&2 2>/dev/null || true
    exit 1
  fi
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  pidfile="$dir/data/postmaster.pid"
  if [ -f "$pidfile" ]; then
    pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
    if ! as_pg "'$PGBIN/pg_ctl' -D '$dir/data' -m fast -w -t 30 stop" >/dev/null 2>&1; then
      # pg_ctl could not stop it: end the postmaster by its PID (SIGQUIT is
      # PostgreSQL's immediate shutdown).
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "postgres.sh: pg_ctl stop failed; sending SIGQUIT to postmaster $pid" >&2
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: postgres.sh start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac

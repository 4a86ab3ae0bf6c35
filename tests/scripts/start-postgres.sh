#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the test suite and prints the line to export its URL:
#
#   eval "$(tests/scripts/start-postgres.sh)"      # start (or reuse) and export GATEWAY_TEST_PG_URL
#   tests/scripts/start-postgres.sh stop           # stop it
#
# Safe to re-run: a server already running in the data directory is reused, not restarted.
# Everything except the final `export` line goes to stderr so that `eval` only sees the export.
# Environment: PGTEST_PORT (default 55432), PGTEST_DIR (default ${TMPDIR:-/tmp}/gateway-test-pg).
# Test use only: trust authentication and fsync=off trade safety for speed.
set -euo pipefail

PORT="${PGTEST_PORT:-55432}"
BASE="${PGTEST_DIR:-${TMPDIR:-/tmp}/gateway-test-pg}"
DATA="$BASE/data"
LOG="$BASE/server.log"

log() { echo "start-postgres: $*" >&2; }

# PostgreSQL refuses to run as root, so every server command runs as the `postgres` system user
# (created by the Debian package). When we are that user already (or not root), run directly.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_bindir() {
    local d
    # Newest major version first: `sort -V` orders 9 < 10 < 15 correctly.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

BIN="$(find_bindir || true)"
if [ -z "$BIN" ]; then
    if [ "${1:-}" = stop ]; then
        log "no PostgreSQL installed; nothing to stop"
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL binaries missing and not root: install the 'postgresql' package"
        exit 1
    fi
    log "installing postgresql with apt-get (binaries not found under /usr/lib/postgresql/*/bin)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # --no-install-recommends keeps it small; the Debian package also creates the postgres user.
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BIN="$(find_bindir)"
fi

if ! id postgres >/dev/null 2>&1; then
    # The binaries can be present without the user (e.g. only postgresql-15 client tools copied).
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if [ "${1:-}" = stop ]; then
    # `status` first: a stale pid file (server killed, machine restarted) means "not running",
    # and stopping must still succeed so callers can always run it in cleanup.
    if [ -d "$DATA" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
        log "stopped"
    else
        log "not running"
    fi
    exit 0
fi
case "${1:-}" in
    "" | start) ;;
    *)
        log "usage: $0 [start|stop]"
        exit 2
        ;;
esac

mkdir -p "$BASE"
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$BASE"
fi
# The server needs to traverse the parent; a private TMPDIR (0700, root) would block it.
if ! as_pg test -x "$BASE"; then
    log "user postgres cannot enter $BASE; set PGTEST_DIR to a directory it can reach"
    exit 1
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb into $DATA"
    # A half-written data dir from an interrupted run would make initdb refuse: start clean.
    rm -rf "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$BASE/initdb.log" 2>&1 || {
        cat "$BASE/initdb.log" >&2
        exit 1
    }
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running in $DATA"
else
    # A stale pid file from a killed server (e.g. machine restart) is handled by pg_ctl itself.
    # unix_socket_directories points into our dir: /var/run/postgresql may not exist.
    # max_connections is raised because every test opens its own pool on its own database.
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$BASE \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=300 -c shared_buffers=64MB" >&2 || {
        log "start failed; server log follows"
        tail -n 30 "$LOG" >&2 || true
        exit 1
    }
fi

for _ in $(seq 1 60); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
        break
    fi
    sleep 0.5
done
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    log "server did not become ready on 127.0.0.1:$PORT (is the port used by another server?)"
    tail -n 30 "$LOG" >&2 || true
    exit 1
fi

echo "export GATEWAY_TEST_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres"

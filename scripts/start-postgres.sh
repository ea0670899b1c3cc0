#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the receipt-store tests and print its URL.
#
# Idempotent and fast when the cluster already runs: CI calls it, then exports
#   CONSENTMW_TEST_PG="$(scripts/start-postgres.sh)"
# Only the URL goes to stdout; progress goes to stderr. Trust auth on 127.0.0.1 only:
# this is a test database, never point it at real data.
set -euo pipefail

PORT="${CONSENTMW_PG_PORT:-55432}"
BASE="${CONSENTMW_PG_BASE:-/tmp/consentmw-pg}"
DATA="$BASE/data"
DB=consentmw_test
URL="postgresql://postgres@127.0.0.1:$PORT/$DB"

say() { echo "start-postgres: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

install_postgres() {
    # A background "apt-get install postgresql" may be running already: let apt wait for
    # its lock instead of racing it.
    say "installing PostgreSQL with apt-get (Debian package 'postgresql')"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=900 -y -q)
    "${apt[@]}" install --no-install-recommends postgresql >&2 \
        || { "${apt[@]}" update >&2 && "${apt[@]}" install --no-install-recommends postgresql >&2; }
}

BIN="$(find_bindir)" || { install_postgres; BIN="$(find_bindir)"; } || {
    say "PostgreSQL binaries not found after installing"; exit 1; }

# Run server tools as the postgres user when we are root (initdb refuses to run as root).
if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$BASE" postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -X -q -t -A)

ensure_db() {
    if [[ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
        "${PSQL[@]}" -c "CREATE DATABASE $DB" >/dev/null 2>&1 \
            || [[ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" == 1 ]]
    fi
}

# Fast path: already up.
if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    ensure_db
    echo "$URL"
    exit 0
fi

mkdir -p "$BASE"
[[ "$(id -u)" == 0 ]] && chown postgres: "$BASE"
# Two callers at once (parallel CI steps) must not both run initdb.
exec 9>"$BASE/.lock"
flock 9

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        say "initdb $DATA"
        rm -rf "$DATA"
        as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=trust --no-sync >/dev/null
    fi
    # A cluster killed with the machine's processes leaves postmaster.pid behind; if its PID
    # now belongs to another program, postgres would refuse to start. It is ours to remove.
    if [[ -f "$DATA/postmaster.pid" ]]; then
        old_pid="$(head -1 "$DATA/postmaster.pid" 2>/dev/null || true)"
        if [[ -z "$old_pid" || "$(cat "/proc/$old_pid/comm" 2>/dev/null)" != postgres ]]; then
            say "removing stale $DATA/postmaster.pid"
            rm -f "$DATA/postmaster.pid"
        fi
    fi
    start() {
        as_pg "$BIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $BASE -c max_connections=200" \
            start >&2
    }
    say "starting on 127.0.0.1:$PORT"
    if ! start; then
        # A throwaway test cluster: when it will not come up, start over from initdb.
        tail -5 "$BASE/server.log" >&2 || true
        say "could not start the old cluster; making a new one"
        rm -rf "$DATA"
        as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=trust --no-sync >/dev/null
        start || { tail -20 "$BASE/server.log" >&2; exit 1; }
    fi
fi
ensure_db
echo "$URL"

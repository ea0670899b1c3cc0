#!/usr/bin/env bash
# Stop the throwaway PostgreSQL cluster that scripts/start-postgres.sh started (if it runs).
set -euo pipefail
PORT="${CONSENTMW_PG_PORT:-55432}"
BASE="${CONSENTMW_PG_BASE:-/tmp/consentmw-pg}"
DATA="$BASE/data"
[[ -f "$DATA/postmaster.pid" ]] || exit 0
BIN=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$dir/pg_ctl" ]] && { BIN="$dir"; break; }
done
[[ -n "$BIN" ]] || BIN="$(dirname "$(command -v pg_ctl)")"
if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
else
    "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
fi
echo "stop-postgres: stopped the test cluster on 127.0.0.1:$PORT" >&2

#!/usr/bin/env bash
# gunicorn with 4 uvicorn workers behind nginx, on http://127.0.0.1:${PORT:-8080}/.
# Stops both on Ctrl-C or SIGTERM. Runs as any user: nginx gets a private prefix.
set -euo pipefail
cd "$(dirname "$0")"

PORT="${PORT:-8080}"
APP_PORT="${APP_PORT:-$((PORT + 1))}"
LISTEN="${LISTEN:-127.0.0.1:$PORT}"
# nginx's masked access log: standard output by default, or a file (NGINX_ACCESS_LOG).
ACCESS_LOG="${NGINX_ACCESS_LOG:-/dev/stdout}"
PYTHON="${PYTHON:-python3}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"

if [[ -z "${CONSENTMW_SECRET_KEY:-}" ]]; then
    # One secret for every worker (and, in production, every host): a consent cookie
    # signed by one worker is then valid on all of them.
    CONSENTMW_SECRET_KEY="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))')"
    echo "run.sh: CONSENTMW_SECRET_KEY not set; using a random one for this run" >&2
fi
export CONSENTMW_SECRET_KEY APP_PORT
export CONSENTMW_LOG_DIR="${CONSENTMW_LOG_DIR:-$PWD/logs}"
export CONSENTMW_RECORDS_URL="${CONSENTMW_RECORDS_URL:-sqlite:///$PWD/consentmw-receipts.db}"
export CONSENTMW_TRUSTED_PROXIES="${CONSENTMW_TRUSTED_PROXIES:-127.0.0.1}"
mkdir -p "$CONSENTMW_LOG_DIR"

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/consentmw-nginx.XXXXXX")"
chmod 755 "$RUN_DIR"  # nginx's workers drop to 'nobody' when started as root
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@APP_PORT@|$APP_PORT|g" -e "s|@LISTEN@|$LISTEN|g" \
    -e "s|@ACCESS_LOG@|$ACCESS_LOG|g" nginx.conf.template > "$RUN_DIR/nginx.conf"

pids=()
cleanup() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" -m gunicorn -c gunicorn.conf.py app:app &
pids+=($!)
"$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log" &
pids+=($!)
echo "run.sh: http://$LISTEN/ -> gunicorn on 127.0.0.1:$APP_PORT; logs in $CONSENTMW_LOG_DIR" >&2

# Whichever stops first (a crash, a port in use) takes the other down with it.
set +e
wait -n
status=$?
[[ -s "$RUN_DIR/error.log" ]] && cat "$RUN_DIR/error.log" >&2
exit "$status"

#!/usr/bin/env bash
# The local demo: starts moto (Cognito), PostgreSQL, and hasura-lite serving the project's
# migrations and metadata; creates a demo user pool with a few thousand users in groups;
# runs `cognito-hasura-sync backfill` into the mirror and shows how to query it.
#
#   ./scripts/demo.sh            # (re)start everything fresh and backfill; services stay up
#   ./scripts/demo.sh --stop     # stop the services the demo started
#
# Environment: DEMO_USERS (default 3000), DEMO_MOTO_PORT (5055), DEMO_HASURA_PORT (8585).
# State (pids, logs, the admin secret, an env file) lives in .demo/ (gitignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

DEMO="$ROOT/.demo"
USERS=${DEMO_USERS:-3000}
MOTO_PORT=${DEMO_MOTO_PORT:-5055}
HASURA_PORT=${DEMO_HASURA_PORT:-8585}
DB=cognito_hasura_sync_demo
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
HASURA_URL="http://127.0.0.1:$HASURA_PORT"

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# Stops a service started by an earlier demo run, by the pid it recorded.
stop_service() {
    local name="$1" pidfile="$DEMO/$1.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

stop_all() { stop_service hasura-lite; stop_service moto; }

wait_for() {
    local what="$1" url="$2" log_file="$3"
    for _ in $(seq 1 120); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "$what did not come up at $url; its log ($log_file):" >&2
    tail -n 20 "$log_file" >&2
    return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-}" in
    --stop) stop_all; log "demo stopped"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

mkdir -p "$DEMO"
stop_all
for port in "$MOTO_PORT" "$HASURA_PORT"; do
    port_free "$port" || { echo "port $port is in use; set DEMO_MOTO_PORT / DEMO_HASURA_PORT" >&2; exit 1; }
done

ensure_postgres
ensure_venv "$ROOT"

log "building cognito-hasura-sync and hasura-lite"
cargo build --quiet -p cognito-hasura-sync -p hasura-lite --bins
SYNC="$ROOT/target/debug/cognito-hasura-sync"

log "starting moto_server on $MOTO_URL"
setsid nohup "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$DEMO/moto.log" 2>&1 &
echo $! >"$DEMO/moto.pid"
wait_for moto_server "$MOTO_URL/moto-api/" "$DEMO/moto.log"

log "creating database $DB"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

SECRET="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$SECRET" >"$DEMO/admin-secret"
chmod 600 "$DEMO/admin-secret"
log "starting hasura-lite on $HASURA_URL (migrations and metadata from deploy/hasura)"
HASURA_GRAPHQL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" \
HASURA_GRAPHQL_ADMIN_SECRET="$SECRET" \
    setsid nohup "$ROOT/target/debug/hasura-lite" serve \
        --server-host 127.0.0.1 --server-port "$HASURA_PORT" \
        --migrations deploy/hasura/migrations --metadata deploy/hasura/metadata \
        >"$DEMO/hasura-lite.log" 2>&1 &
echo $! >"$DEMO/hasura-lite.pid"
wait_for hasura-lite "$HASURA_URL/healthz" "$DEMO/hasura-lite.log"

log "creating a demo user pool with $USERS users in groups"
POOL_ID=$("$ROOT/.venv/bin/python" bench/seed_pool.py --endpoint "$MOTO_URL" --users "$USERS" --pool-name cognito-hasura-sync-demo)

cat >"$DEMO/env" <<ENV
# source .demo/env  — then run target/debug/cognito-hasura-sync status, check, backfill, ...
export AWS_ENDPOINT_URL=$MOTO_URL
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
export COGNITO_USER_POOL_ID=$POOL_ID
export HASURA_GRAPHQL_ENDPOINT=$HASURA_URL/v1/graphql
export HASURA_GRAPHQL_ADMIN_SECRET=\$(cat "$DEMO/admin-secret")
ENV
# shellcheck source=/dev/null
source "$DEMO/env"

log "cognito-hasura-sync check"
"$SYNC" check
log "cognito-hasura-sync backfill"
"$SYNC" backfill
echo
log "cognito-hasura-sync status"
"$SYNC" status

QUERY='{"query":"{ cognito_users(limit: 3, order_by: {username: asc}) { username email given_name groups enabled status } cognito_groups(order_by: {name: asc}) { name description precedence } }"}'
echo
log "a sample query"
cat <<TXT
curl -s $HASURA_URL/v1/graphql \\
  -H "x-hasura-admin-secret: \$(cat .demo/admin-secret)" \\
  -d '$QUERY'
TXT
curl -fsS "$HASURA_URL/v1/graphql" -H "x-hasura-admin-secret: $SECRET" -d "$QUERY"
echo
cat <<TXT

The demo is running in the background:
  Cognito (moto)   $MOTO_URL          pool $POOL_ID
  Hasura (lite)    $HASURA_URL/v1/graphql   admin secret in .demo/admin-secret
  Logs             .demo/moto.log, .demo/hasura-lite.log

Try:  source .demo/env && target/debug/cognito-hasura-sync status
      target/debug/cognito-hasura-sync jwt-secret     # HASURA_GRAPHQL_JWT_SECRET for the pool
Stop: ./scripts/demo.sh --stop
TXT

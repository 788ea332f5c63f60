#!/usr/bin/env bash
# Backfill benchmark on the local stack: creates N users in moto, then runs
# `cognito-hasura-sync backfill` (default settings) twice through the test bed's
# fault-injecting proxy (testbed-proxy):
#   1. plain: the proxy only counts calls (and rejects Limit > 60 as Cognito does);
#   2. realistic: +50 ms per Cognito call and Cognito's 30 RPS quota shared by
#      ListUsers and ListUsersInGroup.
# A third run lifts the client-side rate limit to show what the local emulators themselves
# can serve. Each run starts from an empty mirror. Prints users/s, Cognito calls per operation, Hasura
# requests, throttled responses, peak RSS and CPU seconds (/usr/bin/time -v), next to the
# bound the quota sets (30 pages/s x 60 users = 1800 users/s).
#
#   bench/backfill.sh               # 10,000 users
#   bench/backfill.sh --large       # 100,000 users (moto needs a long time to create them)
#   bench/backfill.sh --users N
#
# BENCH_PROFILE=debug uses the debug builds instead of release ones; BENCH_NO_BUILD=1 uses
# the binaries already in target/ as they are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

USERS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --large) USERS=100000 ;;
        --users) USERS="$2"; shift ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
PROFILE=${BENCH_PROFILE:-release}

ensure_postgres
ensure_venv "$ROOT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chs-bench.XXXXXX")
DB="chs_bench_$$"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {
    for _ in $(seq 1 120); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.5; done
    echo "$1 did not answer" >&2; return 1
}

if [ -n "${BENCH_NO_BUILD:-}" ]; then
    log "using the $PROFILE binaries already built"
elif [ "$PROFILE" = release ]; then
    log "building ($PROFILE)"
    cargo build --quiet --release -p cognito-hasura-sync -p hasura-lite -p testbed --bins
else
    log "building ($PROFILE)"
    cargo build --quiet -p cognito-hasura-sync -p hasura-lite -p testbed --bins
fi
BIN="$ROOT/target/$PROFILE"

MOTO_PORT=$(free_port)
MOTO="http://127.0.0.1:$MOTO_PORT"
"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_for "$MOTO/moto-api/"

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB"
SECRET="bench-$$-$RANDOM"
HASURA_PORT=$(free_port)
HASURA_GRAPHQL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" HASURA_GRAPHQL_ADMIN_SECRET="$SECRET" \
    "$BIN/hasura-lite" serve --server-host 127.0.0.1 --server-port "$HASURA_PORT" \
    --migrations deploy/hasura/migrations --metadata deploy/hasura/metadata >"$WORK/hasura.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$HASURA_PORT/healthz"

log "creating $USERS users in moto"
POOL=$("$ROOT/.venv/bin/python" bench/seed_pool.py --endpoint "$MOTO" --users "$USERS" --pool-name bench)

# Starts a proxy in front of moto with the given flags; sets PROXY_URL.
start_proxy() {
    local out="$WORK/proxy.$RANDOM.out"
    "$BIN/testbed-proxy" --upstream "$MOTO" "$@" >"$out" 2>"$out.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    for _ in $(seq 1 100); do
        PROXY_URL=$(head -n 1 "$out" 2>/dev/null | jq -r '.listening // empty' 2>/dev/null || true)
        [ -n "$PROXY_URL" ] && return 0
        sleep 0.1
    done
    echo "testbed-proxy did not start: $(cat "$out.err")" >&2
    return 1
}

# Runs one backfill through the proxy and prints its figures.
run_case() {
    local name="$1"; shift
    psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "TRUNCATE cognito_users, cognito_groups, cognito_sync_runs"
    start_proxy "$@"
    log "backfill: $name"
    AWS_ENDPOINT_URL="$PROXY_URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_EC2_METADATA_DISABLED=true COGNITO_USER_POOL_ID="$POOL" \
    HASURA_GRAPHQL_ENDPOINT="http://127.0.0.1:$HASURA_PORT/v1/graphql" HASURA_GRAPHQL_ADMIN_SECRET="$SECRET" \
    RUST_LOG=warn \
        /usr/bin/time -v -o "$WORK/time.txt" "$BIN/cognito-hasura-sync" backfill --json --progress never \
        ${BACKFILL_ARGS:-} >"$WORK/summary.json"
    curl -fsS "$PROXY_URL/__proxy/stats" >"$WORK/proxy.json"
    kill "$PROXY_PID"
    local rss user sys
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    user=$(awk -F': ' '/User time \(seconds\)/ {print $2}' "$WORK/time.txt")
    sys=$(awk -F': ' '/System time \(seconds\)/ {print $2}' "$WORK/time.txt")
    jq -r --arg name "$name" --arg rss "$rss" --arg user "$user" --arg sys "$sys" --slurpfile proxy "$WORK/proxy.json" '
        "\n== \($name) ==",
        "users                 \(.users_seen) in \(.elapsed_seconds * 10 | round / 10) s",
        "users/s               \(.users_per_second | round)   (quota bound: 30 pages/s x 60 = 1800 users/s)",
        "cognito calls         \(.cognito.calls | to_entries | map("\(.key) \(.value)") | join(", "))",
        "throttled             \(.cognito.throttled) seen by the reader, \($proxy[0].total.throttled) answered by the proxy",
        "hasura requests       \(.hasura.requests | to_entries | map("\(.key) \(.value)") | join(", ")) (total \(.hasura.requests | add))",
        "peak RSS              \(($rss | tonumber) / 1024 | round) MiB",
        "CPU                   \($user) s user + \($sys) s system"
    ' "$WORK/summary.json"
}

run_case "plain (no added latency, no quota)"
run_case "50 ms per Cognito call, 30 RPS quota on ListUsers+ListUsersInGroup" \
    --latency-ms 50 --quota "ListUsers+ListUsersInGroup=30"
BACKFILL_ARGS="--cognito-rps 1000" run_case "plain, client rate limit lifted (--cognito-rps 1000): what moto and hasura-lite can serve"
echo
echo "Default settings: --shards 16 --cognito-rps 25 --batch-size 500 --concurrency 4 ($PROFILE build, $(nproc) cores)."

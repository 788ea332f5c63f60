#!/usr/bin/env bash
# Backfill benchmark on the local stack: creates N users, then runs
# `cognito-hasura-sync backfill` through the test bed's fault-injecting proxy (testbed-proxy):
#   1. plain: the proxy only counts calls (and rejects Limit > 60 as Cognito does);
#   2. realistic: +50 ms per Cognito call and Cognito's 30 RPS quota shared by
#      ListUsers and ListUsersInGroup, default settings (--cognito-rps 25: headroom for the
#      account's other callers);
#   3. the same with --cognito-rps 30: the client-side limit at the quota itself;
#   4. (cognito-lite) case 3 on a second pool of N users without groups, where only
#      ListUsers spends the quota and the bound is the full 1800 users/s.
# Each run starts from an empty mirror. Prints users/s, Cognito calls per operation, Hasura
# requests, throttled responses, peak RSS and CPU seconds (/usr/bin/time -v), next to the
# bound the quota sets: 30 pages/s x 60 users = 1800 users/s when every call lists users,
# and the bound for the calls this pool needs (ListUsersInGroup pages share the quota).
#
# Cognito is cognito-lite by default (the test bed's in-memory Cognito, seeded in one
# request; 20 users per 23 belong to at least one group, every 13th is federated) so that the
# quota, not the emulator, bounds the run; --moto uses moto, which serves ~21 list calls/s
# at 10,000 users and so measures moto.
#
#   bench/backfill.sh               # 10,000 users
#   bench/backfill.sh --large       # 100,000 users
#   bench/backfill.sh --users N [--moto]
#
# BENCH_PROFILE=debug uses the debug builds instead of release ones; BENCH_NO_BUILD=1 uses
# the binaries already in target/ as they are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

USERS=10000
COGNITO=lite
while [ $# -gt 0 ]; do
    case "$1" in
        --large) USERS=100000 ;;
        --users) USERS="$2"; shift ;;
        --moto) COGNITO=moto ;;
        -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB"
SECRET="bench-$$-$RANDOM"
HASURA_PORT=$(free_port)
HASURA_GRAPHQL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" HASURA_GRAPHQL_ADMIN_SECRET="$SECRET" \
    "$BIN/hasura-lite" serve --server-host 127.0.0.1 --server-port "$HASURA_PORT" \
    --migrations deploy/hasura/migrations --metadata deploy/hasura/metadata >"$WORK/hasura.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$HASURA_PORT/healthz"

# Starts a program that prints {"listening": URL} first; sets LISTENING.
start_listening() {
    local out="$WORK/listen.$RANDOM.out"
    "$@" >"$out" 2>"$out.err" &
    PIDS+=($!)
    LISTENING_PID=$!
    for _ in $(seq 1 100); do
        LISTENING=$(head -n 1 "$out" 2>/dev/null | jq -r '.listening // empty' 2>/dev/null || true)
        [ -n "$LISTENING" ] && return 0
        sleep 0.1
    done
    echo "$1 did not start: $(cat "$out.err")" >&2
    return 1
}

if [ "$COGNITO" = moto ]; then
    MOTO_PORT=$(free_port)
    UPSTREAM="http://127.0.0.1:$MOTO_PORT"
    "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    PIDS+=($!)
    wait_for "$UPSTREAM/moto-api/"
    log "creating $USERS users in moto"
    POOL=$("$ROOT/.venv/bin/python" bench/seed_pool.py --endpoint "$UPSTREAM" --users "$USERS" --pool-name bench)
else
    start_listening "$BIN/cognito-lite" --port 0
    UPSTREAM=$LISTENING
    log "importing $USERS users into cognito-lite, twice: with groups, and without"
    POOL=$("$ROOT/.venv/bin/python" bench/seed_pool.py --bulk --endpoint "$UPSTREAM" --users "$USERS" --pool-name bench)
    POOL_NO_GROUPS=$("$ROOT/.venv/bin/python" bench/seed_pool.py --bulk --no-groups --endpoint "$UPSTREAM" --users "$USERS" --pool-name bench-no-groups)
fi

# Starts a proxy in front of Cognito with the given flags; sets PROXY_URL.
start_proxy() {
    start_listening "$BIN/testbed-proxy" --upstream "$UPSTREAM" "$@"
    PROXY_URL=$LISTENING
    PROXY_PID=$LISTENING_PID
}

# Runs one backfill through the proxy and prints its figures.
run_case() {
    local name="$1"; shift
    psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "TRUNCATE cognito_users, cognito_groups, cognito_sync_runs"
    start_proxy "$@"
    log "backfill: $name"
    AWS_ENDPOINT_URL="$PROXY_URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_EC2_METADATA_DISABLED=true COGNITO_USER_POOL_ID="${BENCH_POOL:-$POOL}" \
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
    # The fewest ListUsers calls a 16-shard scan can make: the sum over shards of ceil(n / 60).
    local lower_bound
    lower_bound=$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c \
        "SELECT coalesce(sum(ceil(n / 60.0)), 0)::int FROM (SELECT count(*) n FROM cognito_users GROUP BY left(id::text, 1)) s")
    jq -r --arg name "$name" --arg rss "$rss" --arg user "$user" --arg sys "$sys" \
        --argjson bound "$lower_bound" --slurpfile proxy "$WORK/proxy.json" '
        (.cognito.calls.ListUsers // 0) as $lu | (.cognito.calls.ListUsersInGroup // 0) as $lg |
        (.users_seen * 30 / ([$lu + $lg, 1] | max)) as $call_bound |
        "\n== \($name) ==",
        "users                 \(.users_seen) in \(.elapsed_seconds * 10 | round / 10) s",
        "users/s               \(.users_per_second | round)",
        "  quota bound         1800 users/s (30 pages/s x 60): \(.users_per_second / 1800 * 100 | round) %",
        "  bound for its calls \($call_bound | round) users/s (\(.users_seen) users, \($lu) ListUsers + \($lg) ListUsersInGroup pages at 30/s): \(.users_per_second / $call_bound * 100 | round) %",
        "cognito calls         \(.cognito.calls | to_entries | map("\(.key) \(.value)") | join(", "))",
        "ListUsers             \($lu) (lower bound: sum over shards of ceil(users in shard / 60) = \($bound))",
        "throttled             \(.cognito.throttled) seen by the reader, \($proxy[0].total.throttled) answered by the proxy",
        "hasura requests       \(.hasura.requests | to_entries | map("\(.key) \(.value)") | join(", ")) (total \(.hasura.requests | add))",
        "  user upserts        \(.hasura.requests.UpsertUsers // 0) (ceil(users / 500) = \(.users_seen / 500 | ceil))",
        "peak RSS              \(($rss | tonumber) / 1024 | round) MiB",
        "CPU                   \($user) s user + \($sys) s system"
    ' "$WORK/summary.json"
}

run_case "plain (no added latency, no quota)"
run_case "50 ms per Cognito call, 30 RPS quota on ListUsers+ListUsersInGroup" \
    --latency-ms 50 --quota "ListUsers+ListUsersInGroup=30"
BACKFILL_ARGS="--cognito-rps 30" run_case "50 ms per Cognito call, 30 RPS quota, client limit at the quota (--cognito-rps 30)" \
    --latency-ms 50 --quota "ListUsers+ListUsersInGroup=30"
if [ -n "${POOL_NO_GROUPS:-}" ]; then
    BENCH_POOL=$POOL_NO_GROUPS BACKFILL_ARGS="--cognito-rps 30" \
        run_case "pool without groups (ListUsers only), 50 ms per call, 30 RPS quota, --cognito-rps 30" \
        --latency-ms 50 --quota "ListUsers+ListUsersInGroup=30"
fi
echo
echo "Cognito: $COGNITO. Default settings: --shards 16 --cognito-rps 25 --batch-size 500 --concurrency 4 ($PROFILE build, $(nproc) cores)."

# Shared by bench/backfill.sh and bench/reconcile.sh: the benchmark bed of release binaries
# (hasura-lite on a fresh database, cognito-lite seeded by bulk import, the test bed's
# fault proxy in front of Cognito with its quota model) and measured runs of
# cognito-hasura-sync: peak RSS and CPU from /usr/bin/time -v, calls from its JSON report.
# Source after scripts/lib/common.sh, from the repository root, with ROOT set.
#
# BENCH_PROFILE=debug uses the debug builds instead of release ones; BENCH_NO_BUILD=1 uses
# the binaries already in target/ as they are.

# Cognito's quota model: one 30 RPS bucket shared by ListUsers and ListUsersInGroup
# (UserList), 120 RPS AdminGetUser (UserRead), 50 RPS AdminListGroupsForUser; 50 ms a call.
COGNITO_QUOTAS=(--latency-ms 50 --quota "ListUsers+ListUsersInGroup=30"
    --quota "AdminGetUser=120" --quota "AdminListGroupsForUser=50")

# Builds, creates the database and starts hasura-lite and cognito-lite; sets BIN, WORK, DB,
# SECRET, HASURA_PORT, UPSTREAM (cognito-lite's URL). Everything stops on exit.
bed_start() {
    PROFILE=${BENCH_PROFILE:-release}
    ensure_postgres
    ensure_venv "$ROOT"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/chs-bench.XXXXXX")
    DB="chs_bench_$$"
    PIDS=()
    trap bed_stop EXIT
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
    start_listening "$BIN/cognito-lite" --port 0
    UPSTREAM=$LISTENING
}

bed_stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() {
    for _ in $(seq 1 120); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.5; done
    echo "$1 did not answer" >&2; return 1
}

# Starts a program that prints {"listening": URL} first; sets LISTENING and LISTENING_PID.
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

# Imports a pool of N users into cognito-lite (bench/seed_pool.py --bulk, extra arguments
# passed on); prints its id.
bed_seed() {
    local users="$1" name="$2"; shift 2
    "$ROOT/.venv/bin/python" bench/seed_pool.py --bulk --endpoint "$UPSTREAM" --users "$users" --pool-name "$name" "$@"
}

# Starts a proxy in front of cognito-lite with the given flags; sets PROXY_URL and PROXY_PID.
start_proxy() {
    start_listening "$BIN/testbed-proxy" --upstream "$UPSTREAM" "$@"
    PROXY_URL=$LISTENING
    PROXY_PID=$LISTENING_PID
}

# Runs `cognito-hasura-sync ARGS... --json` on pool $POOL through $PROXY_URL under
# /usr/bin/time -v; the report lands in $WORK/report.json. Sets RSS_MIB, CPU.
bed_run() {
    AWS_ENDPOINT_URL="$PROXY_URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_EC2_METADATA_DISABLED=true COGNITO_USER_POOL_ID="$POOL" \
    HASURA_GRAPHQL_ENDPOINT="http://127.0.0.1:$HASURA_PORT/v1/graphql" HASURA_GRAPHQL_ADMIN_SECRET="$SECRET" \
    RUST_LOG=warn \
        /usr/bin/time -v -o "$WORK/time.txt" "$BIN/cognito-hasura-sync" "$@" --json >"$WORK/report.json"
    local rss user sys
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    user=$(awk -F': ' '/User time \(seconds\)/ {print $2}' "$WORK/time.txt")
    sys=$(awk -F': ' '/System time \(seconds\)/ {print $2}' "$WORK/time.txt")
    RSS_MIB=$(( rss / 1024 ))
    CPU="$user s user + $sys s system"
}

# psql on the bench database: one value.
bed_sql() { psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c "$1"; }

# The fewest UserList calls (ListUsers + ListUsersInGroup, the 30 RPS bucket) a scan of
# pool $POOL over shards of `digits` hex digits can make, from the mirror: the sum over
# shards of ceil(users / 60), plus the sum over groups of ceil(members / 60).
user_list_bound() {
    local digits="$1"
    bed_sql "SELECT (SELECT coalesce(sum(ceil(n / 60.0)), 0) FROM (SELECT count(*) n FROM cognito_users
                 WHERE user_pool_id = '$POOL' AND deleted_at IS NULL GROUP BY left(id::text, $digits)) s)
              + (SELECT coalesce(sum(ceil(n / 60.0)), 0) FROM (SELECT count(*) n FROM cognito_users,
                 jsonb_array_elements_text(groups) g WHERE user_pool_id = '$POOL' AND deleted_at IS NULL GROUP BY g) m)"
}

# Prints the figures every run shares: time next to the call bound (BOUND_CALLS at 30/s),
# Cognito calls, pages read ahead, Hasura requests, peak RSS and CPU.
print_run_figures() {
    jq -r --argjson bound "$BOUND_CALLS" --arg rss "$RSS_MIB" --arg cpu "$CPU" --arg load "$(uptime | sed 's/.*load average: //')" '
        (.cognito.calls.ListUsers // 0) as $lu | (.cognito.calls.ListUsersInGroup // 0) as $lg |
        "time                  \(.elapsed_seconds * 10 | round / 10) s",
        "call bound            \($bound / 30 * 10 | round / 10) s (\($bound) UserList calls at least, at 30/s): time at \($bound / 30 / .elapsed_seconds * 100 | round) % of the bound",
        "UserList calls        \($lu + $lg) (\($lu) ListUsers + \($lg) ListUsersInGroup; fewest possible \($bound))",
        "cognito calls         \(.cognito.calls | to_entries | map("\(.key) \(.value)") | join(", ")); \(.cognito.throttled // 0) throttled",
        "pages read ahead      \(.pages_read_ahead // 0) (ListUsers pages on disk while the largest group was listed)",
        "hasura requests       \(.hasura.requests | add // 0) (\(.hasura.requests | to_entries | map("\(.key) \(.value)") | join(", ")))",
        "peak RSS              \($rss) MiB",
        "CPU                   \($cpu) (load average \($load))"
    ' "$WORK/report.json"
}

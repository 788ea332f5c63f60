#!/usr/bin/env bash
# Backfill benchmark on the local stack: imports N users, then runs
# `cognito-hasura-sync backfill` through the test bed's fault-injecting proxy (testbed-proxy)
# into an empty mirror, and prints the time next to the bound Cognito's quota sets, the
# calls, the Hasura requests, peak RSS and CPU (/usr/bin/time -v). Cases:
#   1. plain: the proxy only counts calls (and rejects Limit > 60 as Cognito does);
#   2. Cognito's quota model (50 ms a call; one 30 RPS bucket shared by ListUsers and
#      ListUsersInGroup, 120 RPS AdminGetUser, 50 RPS AdminListGroupsForUser), default
#      settings (UserList at 24 RPS, 0.8 of the quota: headroom for the account's other callers);
#   3. the same with --cognito-rps 30, the client-side limit at the quota, on a pool where
#      a third of the users are in groups (their ListUsersInGroup pages share the bucket);
#   4. (cognito-lite) case 3 on a pool without groups, where only ListUsers spends it.
# The call bound is the fewest UserList calls the scan can make (the sum over the 16 shards
# of ceil(users / 60), plus the sum over groups of ceil(members / 60)) at 30 per second;
# the target is a time at 90 % of it or better with --cognito-rps 30.
#
# Cognito is cognito-lite by default (the test bed's in-memory Cognito, seeded in one bulk
# import; every 13th user is federated) so that the quota, not the emulator, bounds the
# run; --moto uses moto, which serves ~21 list calls/s at 10,000 users and so measures moto.
#
#   bench/backfill.sh               # 10,000 users
#   bench/backfill.sh --large       # 100,000 users
#   bench/backfill.sh --million     # 1,000,000 users, cases 3 and 4 only (about 20 minutes)
#   bench/backfill.sh --users N [--moto]
#
# BENCH_PROFILE=debug uses the debug builds instead of release ones; BENCH_NO_BUILD=1 uses
# the binaries already in target/ as they are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"
source bench/lib/bed.sh

USERS=10000
COGNITO=lite
QUOTA_ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --large) USERS=100000 ;;
        --million) USERS=1000000; QUOTA_ONLY=1 ;;
        --users) USERS="$2"; shift ;;
        --moto) COGNITO=moto ;;
        -h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bed_start
if [ "$COGNITO" = moto ]; then
    MOTO_PORT=$(free_port)
    UPSTREAM="http://127.0.0.1:$MOTO_PORT"
    "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    PIDS+=($!)
    wait_for "$UPSTREAM/moto-api/"
    log "creating $USERS users in moto"
    POOL_GROUPS=$("$ROOT/.venv/bin/python" bench/seed_pool.py --endpoint "$UPSTREAM" --users "$USERS" --pool-name bench)
else
    log "importing $USERS users into cognito-lite, twice: a third of them in groups, and none"
    POOL_GROUPS=$(bed_seed "$USERS" bench --group-every 3)
    POOL_NO_GROUPS=$(bed_seed "$USERS" bench-no-groups --no-groups)
fi

# Runs one backfill of $POOL through a fresh proxy with the given flags into an empty
# mirror, and prints its figures. BACKFILL_ARGS: extra backfill flags.
run_case() {
    local name="$1"; shift
    bed_sql "TRUNCATE cognito_users, cognito_groups, cognito_sync_runs" >/dev/null
    start_proxy "$@"
    log "backfill: $name"
    # shellcheck disable=SC2086
    bed_run backfill --progress never ${BACKFILL_ARGS:-}
    curl -fsS "$PROXY_URL/__proxy/stats" >"$WORK/proxy.json"
    kill "$PROXY_PID"
    BOUND_CALLS=$(user_list_bound 1)
    echo
    echo "== $name =="
    jq -r '"users                 \(.users_seen) (\(.users_per_second | round) users/s)",
           "user upserts          \(.hasura.requests.UpsertUsers // 0) (ceil(users / 500) = \(.users_seen / 500 | ceil))"' \
        "$WORK/report.json"
    print_run_figures
    jq -r '"throttled by proxy    \(.total.throttled)"' "$WORK/proxy.json"
}

POOL=$POOL_GROUPS
if [ -z "$QUOTA_ONLY" ]; then
    run_case "plain (no added latency, no quota)"
    run_case "Cognito's quotas, 50 ms per call, default settings (UserList at 24 RPS)" "${COGNITO_QUOTAS[@]}"
fi
BACKFILL_ARGS="--cognito-rps 30" run_case \
    "Cognito's quotas, 50 ms per call, --cognito-rps 30; a third of the users in groups" "${COGNITO_QUOTAS[@]}"
if [ -n "${POOL_NO_GROUPS:-}" ]; then
    POOL=$POOL_NO_GROUPS
    BACKFILL_ARGS="--cognito-rps 30" run_case \
        "Cognito's quotas, 50 ms per call, --cognito-rps 30; no groups (ListUsers only)" "${COGNITO_QUOTAS[@]}"
fi
echo
echo "Cognito: $COGNITO. Default settings: --shards 16 --batch-size 500 --concurrency 4 ($PROFILE build, $(nproc) cores; load average $(uptime | sed 's/.*load average: //'))."

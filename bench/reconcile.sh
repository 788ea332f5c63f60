#!/usr/bin/env bash
# Reconcile benchmark on the local stack (cognito-lite seeded by bulk import with a third of
# the users in groups, PostgreSQL, hasura-lite), running `cognito-hasura-sync reconcile`
# through the test bed's fault proxy with Cognito's quota model (50 ms a call; one 30 RPS
# bucket shared by ListUsers and ListUsersInGroup, 120 RPS AdminGetUser, 50 RPS
# AdminListGroupsForUser) and --cognito-rps 30. Cases:
#   1. first run: the mirror is empty, every user is inserted;
#   2. unchanged pool: no mirror write (the run fails if a row changes or a mirror mutation
#      is sent) and ceil(rows / 5000) digest reads;
#   3. every user differs (as after a change of the content hash or the attribute scope):
#      every row's hash is made stale behind the service's back, every user is updated;
#   4. (not with --million) 1% drift, half changed attributes and half deleted users:
#      mirror mutations next to ceil(changed / 500) + ceil(tombstones / 500).
# Each prints the time next to the call bound (the fewest UserList calls the run's shards
# allow, at 30 per second; target: 90 % of it or better), Cognito calls, Hasura requests,
# peak RSS (target at a million users: under 100 MB) and CPU (/usr/bin/time -v).
#
#   bench/reconcile.sh              # 10,000 users
#   bench/reconcile.sh --large      # 100,000 users
#   bench/reconcile.sh --million    # 1,000,000 users, cases 1 and 2 (about 30 minutes; the
#                                   # first run is the every-user-differs case)
#   bench/reconcile.sh --users N
#
# BENCH_PROFILE=debug uses the debug builds instead of release ones; BENCH_NO_BUILD=1 uses
# the binaries already in target/ as they are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"
source bench/lib/bed.sh

USERS=10000
MORE_CASES=1
while [ $# -gt 0 ]; do
    case "$1" in
        --large) USERS=100000 ;;
        --million) USERS=1000000; MORE_CASES= ;;
        --users) USERS="$2"; shift ;;
        -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bed_start
log "importing $USERS users into cognito-lite, a third of them in groups"
POOL=$(bed_seed "$USERS" bench --group-every 3)
start_proxy "${COGNITO_QUOTAS[@]}"

# What identifies every row's version: changes when any row of the pool is rewritten.
row_versions() { bed_sql "SELECT md5(coalesce(string_agg(xmin::text, ',' ORDER BY id), '')) FROM cognito_users WHERE user_pool_id = '$POOL'"; }

# Writes to the mirror (users and groups) in the report: the run record's and the lease's
# mutations are not counted.
MIRROR_MUTATIONS='[.hasura.requests | to_entries[] | select(.key | test("^(Upsert|Tombstone|Delete|Scrub)")) | .value] | add // 0'

# Runs one reconcile and prints its figures.
run_case() {
    local name="$1"
    log "reconcile: $name"
    local rows
    rows=$(bed_sql "SELECT count(*) FROM cognito_users WHERE user_pool_id = '$POOL'")
    bed_run reconcile --cognito-rps 30
    local digits
    digits=$(jq -r '{"1": 0, "16": 1, "256": 2}[.shards | tostring]' "$WORK/report.json")
    BOUND_CALLS=$(user_list_bound "$digits")
    echo
    echo "== $name =="
    jq -r ".counters as \$c | ($MIRROR_MUTATIONS) as \$writes |
        \"result                \(.result) (\(.shards) shards)\",
        \"users                 \(\$c.scanned) scanned: \(\$c.inserted) inserted, \(\$c.updated) updated, \(\$c.revived) revived, \(\$c.tombstoned) tombstoned, \(\$c.unchanged) unchanged\",
        \"mirror digest reads   \(.mirror_reads) (ceil(\(\$rows) rows / 5000), at least 1: \([\$rows / 5000 | ceil, 1] | max))\",
        \"mirror mutations      \(\$writes) (ceil(written / 500) = \(\$c.inserted + \$c.updated + \$c.revived | . / 500 | ceil) upserts + ceil(\(\$c.tombstoned) / 500) tombstone batches)\"" \
        --argjson rows "$rows" "$WORK/report.json"
    print_run_figures
}

run_case "first run: empty mirror, every user inserted"

before=$(row_versions)
run_case "unchanged pool"
[ "$(row_versions)" = "$before" ] || { echo "the unchanged run rewrote rows" >&2; exit 1; }
writes=$(jq "$MIRROR_MUTATIONS" "$WORK/report.json")
[ "$writes" = 0 ] || { echo "the unchanged run sent $writes mirror mutations" >&2; exit 1; }

if [ -n "$MORE_CASES" ]; then
    # A stale hash on every row, as a change of the hash or of the attribute scope leaves
    # it (the row guard trigger is bypassed: this is the benchmark, not the service, writing).
    bed_sql "ALTER TABLE cognito_users DISABLE TRIGGER cognito_users_guard;
             UPDATE cognito_users SET content_hash = 'stale' WHERE user_pool_id = '$POOL';
             ALTER TABLE cognito_users ENABLE TRIGGER cognito_users_guard" >/dev/null
    run_case "every user differs (a stale content hash on every row)"

    log "drifting 1% of the users behind the service's back"
    "$ROOT/.venv/bin/python" - "$UPSTREAM" "$POOL" "$USERS" <<'PY'
import sys
import boto3

endpoint, pool, users = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
for i in range(max(users // 100, 2)):
    username = f"user-{i:06}"
    if i % 2 == 0:
        client.admin_update_user_attributes(UserPoolId=pool, Username=username,
                                            UserAttributes=[{"Name": "given_name", "Value": "Drifted"}])
    else:
        client.admin_delete_user(UserPoolId=pool, Username=username)
PY
    run_case "1% drift: half changed attributes, half deleted users"
fi
echo
echo "Settings: --cognito-rps 30, --shards 16 (finer for a large pool), --batch-size 500, digest pages of 5000 ($PROFILE build, $(nproc) cores; load average $(uptime | sed 's/.*load average: //'))."

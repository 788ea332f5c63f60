#!/usr/bin/env bash
# Reconcile benchmark on the benchmark bed (cognito-lite + PostgreSQL + hasura-lite), with
# Cognito (under its 30 RPS quota on ListUsers + ListUsersInGroup) and Hasura each behind
# the test bed's counting proxy:
#   1. a first reconcile fills the empty mirror;
#   2. a reconcile of the unchanged pool: time, Cognito calls by operation next to the scan's
#      lower bound, Hasura reads and mutations (the only mutations allowed are the run
#      record's InsertRun/UpdateRun; the run fails if the mirror is written);
#   3. a reconcile after 1% drift (half attribute changes, half deleted users): mutations
#      next to the target ceil(changed / batch) + ceil(tombstones / batch).
# cognito-lite is the test bed's in-memory Cognito: moto lists ~21 pages/s at 10,000 users,
# so a benchmark against it measures moto.
# Default reconcile settings (16 shards, 25 Cognito RPS, batches of 500, digest pages of 5000).
#
#   bench/reconcile.sh              # 10,000 users
#   bench/reconcile.sh --large      # 100,000 users
#   bench/reconcile.sh --users N
#
# BENCH_PROFILE=debug uses a debug build instead of a release one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

USERS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --large) USERS=100000 ;;
        --users) USERS="$2"; shift ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
PROFILE_FLAG=--release
[ "${BENCH_PROFILE:-release}" = debug ] && PROFILE_FLAG=

ensure_postgres
ensure_venv "$ROOT"
log "reconcile benchmark: $USERS users"
RECONCILE_BENCH_USERS="$USERS" RUST_LOG=warn \
    cargo test $PROFILE_FLAG -p cognito-hasura-sync --test reconcile_bench -- --ignored --nocapture --test-threads 1

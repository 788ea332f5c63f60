#!/usr/bin/env bash
# Daemon benchmark: the real `cognito-hasura-sync daemon` process with its DEFAULT settings
# (quota share 0.8, two pollers, no lifted limit) against the benchmark bed (a pool in
# cognito-lite, the sync queue and its dead-letter queue in sqs-lite, hasura-lite over
# PostgreSQL), with Cognito, SQS and Hasura each behind the test bed's counting proxy.
# Cognito's proxy applies Cognito's default quota model and 50 ms round trips:
#   one 30 RPS bucket for ListUsers + ListUsersInGroup (UserList), one 120 RPS bucket for
#   AdminGetUser (UserRead), one 50 RPS bucket for AdminListGroupsForUser (UserResourceRead),
#   15 RPS for DescribeUserPool (UserPoolRead), 20 RPS for ListGroups (UserPoolResourceRead).
# In a pool of 100,000 users:
#   1. steady: 50 distinct users/s for 5 minutes; target p99 send -> commit < 2 s;
#   2. burst: 10,000 events naming 10,000 distinct users, sent at once; target drained <= 120 s.
# Each event names its user by sub, as CloudTrail events do (DAEMON_BENCH_BY=username: by
# username, as trigger events do). Prints p50/p99 apply latency from send to commit, events/s,
# SQS, Cognito (per user) and Hasura requests, throttled calls, the daemon's read plans, and
# the daemon process's own CPU seconds and peak RSS; the machine's load before and after.
# cognito-lite and sqs-lite stand in for moto, whose SQS takes tens of milliseconds per call
# and seconds per receive under a backlog: against moto the benchmark measured moto.
#
#   bench/daemon.sh                       # the defaults above
#   bench/daemon.sh --pool 20000 --rate 20 --seconds 60 --burst 3000 --pollers 4
#   bench/daemon.sh --reconcile "* * * * *"  # its scheduled reconcile too (default off), for
#                                            # the peak RSS of both at once
#
# BENCH_PROFILE=debug uses a debug build instead of a release one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

POOL=100000
RATE=50
SECONDS_=300
BURST=10000
POLLERS=
RECONCILE=off
while [ $# -gt 0 ]; do
    case "$1" in
        --pool) POOL="$2"; shift ;;
        --rate) RATE="$2"; shift ;;
        --seconds) SECONDS_="$2"; shift ;;
        --burst) BURST="$2"; shift ;;
        --pollers) POLLERS="$2"; shift ;;
        --reconcile) RECONCILE="$2"; shift ;;
        -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
PROFILE_FLAG=--release
[ "${BENCH_PROFILE:-release}" = debug ] && PROFILE_FLAG=

ensure_postgres
ensure_venv "$ROOT"
log "daemon benchmark: pool of $POOL; $RATE users/s for $SECONDS_ s, then a burst of $BURST"
# Build first, so that the load figures below are the run's, not the compiler's.
cargo test $PROFILE_FLAG -p cognito-hasura-sync --test daemon_bench --no-run
echo "load before: $(uptime)"
env DAEMON_BENCH_POOL="$POOL" DAEMON_BENCH_RATE="$RATE" DAEMON_BENCH_SECONDS="$SECONDS_" \
    DAEMON_BENCH_BURST="$BURST" ${POLLERS:+DAEMON_BENCH_POLLERS="$POLLERS"} \
    DAEMON_BENCH_RECONCILE="$RECONCILE" RUST_LOG=warn \
    cargo test $PROFILE_FLAG -p cognito-hasura-sync --test daemon_bench -- --ignored --nocapture --test-threads 1
echo "load after: $(uptime) ($(nproc) cores, shared)"

#!/usr/bin/env bash
# Daemon benchmark: the real `cognito-hasura-sync daemon` process against the benchmark bed
# (a pool in cognito-lite, the sync queue and its dead-letter queue in sqs-lite, hasura-lite
# over PostgreSQL), with Cognito, SQS and Hasura each behind the test bed's counting proxy:
#   1. a steady stream of 100 events/s for 60 s;
#   2. a burst of 10,000 events sent at once.
# Each event names a user new to the mirror, by sub as CloudTrail events do
# (DAEMON_BENCH_BY=username: by username, as trigger events do). Prints p50/p99 apply latency
# from send to commit, events/s, SQS, Cognito and Hasura requests per event and per applied
# batch, and the daemon process's own CPU seconds and peak RSS.
# cognito-lite and sqs-lite stand in for moto, whose SQS takes tens of milliseconds per call
# and seconds per receive under a backlog: against moto the benchmark measured moto.
# The client-side Cognito rate limit is lifted (--cognito-rps 5000): against real Cognito,
# re-reading distinct users is bounded by the account's quotas (ListUsers 30 RPS for subs,
# AdminGetUser/AdminListGroupsForUser 120 RPS by default), whatever the daemon does.
#
#   bench/daemon.sh                       # defaults above
#   bench/daemon.sh --rate 200 --seconds 30 --burst 5000 --pollers 4
#
# BENCH_PROFILE=debug uses a debug build instead of a release one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

RATE=100
SECONDS_=60
BURST=10000
POLLERS=4
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift ;;
        --seconds) SECONDS_="$2"; shift ;;
        --burst) BURST="$2"; shift ;;
        --pollers) POLLERS="$2"; shift ;;
        -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
PROFILE_FLAG=--release
[ "${BENCH_PROFILE:-release}" = debug ] && PROFILE_FLAG=

ensure_postgres
ensure_venv "$ROOT"
log "daemon benchmark: $RATE events/s for $SECONDS_ s, then a burst of $BURST"
DAEMON_BENCH_RATE="$RATE" DAEMON_BENCH_SECONDS="$SECONDS_" DAEMON_BENCH_BURST="$BURST" \
    DAEMON_BENCH_POLLERS="$POLLERS" RUST_LOG=warn \
    cargo test $PROFILE_FLAG -p cognito-hasura-sync --test daemon_bench -- --ignored --nocapture --test-threads 1

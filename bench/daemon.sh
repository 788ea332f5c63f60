#!/usr/bin/env bash
# Daemon benchmark on the local test bed (moto SQS + Cognito, PostgreSQL, hasura-lite), with
# the daemon in-process and Cognito+SQS and Hasura each behind the test bed's counting proxy:
#   1. a steady stream of 100 events/s for 60 s;
#   2. a burst of 10,000 events sent at once.
# Each event names a user new to the mirror, by username (DAEMON_BENCH_BY=sub: by sub, which
# moto answers by scanning the whole pool, so it measures moto more than the daemon). Prints p50/p99 apply latency from send to commit,
# events/s, SQS and Hasura requests per event, CPU seconds and peak RSS (of the test process,
# which also runs hasura-lite and the load generator; moto is a separate process).
# The client-side Cognito rate limit is lifted (moto has no quota): against real Cognito,
# re-reading users by sub is bounded by the ListUsers quota (30 RPS per account).
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
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

#!/usr/bin/env bash
# Batched upsert throughput of hasura-lite (rows/s): 100k rows in batches of 500 and 1000,
# fresh inserts and no-op re-upserts. Needs PostgreSQL at 127.0.0.1:5432.
# Usage: bench/hasura-lite-upsert.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUST_LOG="${RUST_LOG:-warn}" cargo run -q --release -p hasura-lite --example upsert_bench -- "${1:-100000}"

#!/usr/bin/env bash
# Installs what the tests need (PostgreSQL running, the pinned Python venv), checks
# formatting and lints, and runs the whole suite: the Rust workspace (unit and integration tests against moto, PostgreSQL and
# hasura-lite) and the Python tests of deploy/ (Lambdas, Terraform, compose).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
ROOT=$(repo_root)
cd "$ROOT"
started=$(date +%s)

ensure_postgres
ensure_venv "$ROOT"
ensure_checkov_venv "$ROOT"
export MOTO_SERVER="$ROOT/.venv/bin/moto_server"

log "checking formatting and lints"
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building the workspace"
cargo build --workspace --all-targets --locked

log "running the Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

if [ -n "$(find deploy -name 'test_*.py' -print -quit)" ]; then
    log "running the Python tests of deploy/"
    .venv/bin/python -m pytest deploy -q
fi

log "all tests passed in $(( $(date +%s) - started ))s"

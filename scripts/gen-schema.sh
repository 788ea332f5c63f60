#!/usr/bin/env bash
# Regenerates schema.graphql (the SDL hasura-lite serves for deploy/hasura) in a scratch
# database on 127.0.0.1:5432, which it drops again. Run after changing migrations,
# metadata or hasura-lite's schema code; a test fails when schema.graphql drifts.
set -euo pipefail

cd "$(dirname "$0")/.."
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
export PGHOST PGPORT PGUSER
db="gen_schema_$$_$(date +%s)"

psql -q -d postgres -c "CREATE DATABASE ${db}"
trap 'psql -q -d postgres -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)"' EXIT

tmp="$(mktemp)"
HASURA_GRAPHQL_DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${db}" RUST_LOG=warn \
    cargo run -q -p hasura-lite -- print-schema \
    --migrations deploy/hasura/migrations --metadata deploy/hasura/metadata > "$tmp"
mv "$tmp" schema.graphql
echo "wrote schema.graphql ($(wc -l < schema.graphql) lines)"

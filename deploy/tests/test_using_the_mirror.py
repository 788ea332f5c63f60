"""docs/using-the-mirror.md, checked against PostgreSQL and the project's own metadata.

Every ```sql block of the page runs, in page order, in a scratch database holding the
mirror's migration and three sample users (Alice and Bob in Cognito, Carol tombstoned). A
block whose first line says `-- fails with SQLSTATE xxxxx` must fail with exactly that error;
`-- returns:` lines are the rows its query must print. The YAML, JSON and GraphQL blocks name
only tables and columns that exist once the SQL has run, and the roles table states the
columns each role of deploy/hasura/metadata may select.
"""

import json
import pathlib
import re

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "using-the-mirror.md"
HASURA = REPO / "deploy" / "hasura"
TABLES = HASURA / "metadata" / "databases" / "default" / "tables"
MIGRATIONS = sorted((HASURA / "migrations" / "default").iterdir())

ALICE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
BOB = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
CAROL = "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f"
SEED = f"""
INSERT INTO public.cognito_users
    (id, user_pool_id, username, email, given_name, family_name, name, status, attributes,
     observed_at, content_hash, deleted_at)
VALUES
    ('{ALICE}', 'eu-west-1_Test', 'alice', 'alice@example.com', 'Alice', 'Liddell', 'Alice Liddell',
     'CONFIRMED', '{{"custom:tenant_id": "acme"}}', now(), 'a', NULL),
    ('{BOB}', 'eu-west-1_Test', 'bob', 'bob@example.com', 'Bob', 'Builder', 'Bob Builder',
     'CONFIRMED', '{{"custom:tenant_id": "globex"}}', now(), 'b', NULL),
    ('{CAROL}', 'eu-west-1_Test', 'carol', 'carol@example.com', 'Carol', 'Jones', 'Carol Jones',
     'CONFIRMED', '{{}}', now(), 'c', now());
"""
# Columns no role but the worker's may read.
PRIVATE_COLUMNS = {"attributes", "observed_at", "content_hash", "synced_at"}
WORKER_ROLE = "cognito_sync"


def blocks(language):
    text = PAGE.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)]


def columns(database, table):
    listed = database.value(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns "
        f"WHERE table_schema = 'public' AND table_name = '{table}'")
    return set(listed.split(",")) if listed else set()


def cells(row):
    return [cell.strip() for cell in row.split("|")]


def run_the_page(database):
    for migration in MIGRATIONS:
        database.run_file(migration / "up.sql")
    database.run(SEED)
    for block in blocks("sql"):
        failure = re.match(r"-- fails with SQLSTATE (\w{5})", block)
        result = database.run("\\set VERBOSITY verbose\n" + block, check=False)
        if failure:
            assert result.returncode != 0, f"should have failed:\n{block}"
            assert f"ERROR:  {failure.group(1)}:" in result.stderr, (block, result.stderr)
            continue
        assert result.returncode == 0, (block, result.stderr)
        expected = [cells(line) for line in re.findall(r"^-- returns: (.*)$", block, re.M)]
        printed = [cells(line) for line in result.stdout.splitlines() if line.strip()]
        assert printed == expected, block


def test_every_sql_statement_on_the_page_does_what_the_page_says(scratch_database):
    assert len(blocks("sql")) >= 6
    run_the_page(scratch_database)
    # The page's foreign key is in place and does not cascade.
    assert scratch_database.value(
        "SELECT confdeltype FROM pg_constraint WHERE conname = 'posts_owner_id_fkey'") == "a"


def relationship_mappings(node):
    """Every manual_configuration in a parsed YAML/JSON snippet."""
    if isinstance(node, dict):
        if "manual_configuration" in node:
            yield node["manual_configuration"]
        for value in node.values():
            yield from relationship_mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from relationship_mappings(item)


def test_the_metadata_snippets_name_real_tables_and_columns(scratch_database):
    run_the_page(scratch_database)
    snippets = [yaml.safe_load(b) for b in blocks("yaml")] + [json.loads(b) for b in blocks("json")]
    assert len(snippets) >= 3
    mappings = 0
    for snippet in snippets:
        table = snippet.get("table") or snippet.get("args", {}).get("table")
        for mapping in relationship_mappings(snippet):
            mappings += 1
            assert set(mapping["column_mapping"]) <= columns(scratch_database, table["name"])
            remote = columns(scratch_database, mapping["remote_table"]["name"])
            assert set(mapping["column_mapping"].values()) <= remote
        for permission in snippet.get("select_permissions", []):
            on = columns(scratch_database, table["name"]) if table else set()
            assert set(permission["permission"]["columns"]) <= on, (table, permission)
            for column in re.findall(r"'(\w+)': \{'_", str(permission["permission"]["filter"])):
                assert column in on, column
    assert mappings == 2


def test_the_graphql_query_selects_columns_that_exist(scratch_database):
    run_the_page(scratch_database)
    [query] = blocks("graphql")
    fields = set(re.findall(r"\b(\w+)\b", query)) - {"query", "posts", "author"}
    assert fields <= columns(scratch_database, "posts") | columns(scratch_database, "cognito_users")


def metadata_permissions():
    """{role: {table: select columns or None}} over every permission kind of the metadata."""
    roles = {}
    for path in sorted(TABLES.glob("public_*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        table = document["table"]["name"]
        for kind in ("select", "insert", "update", "delete"):
            for entry in document.get(f"{kind}_permissions", []):
                seen = roles.setdefault(entry["role"], {}).setdefault(table, None)
                if kind == "select":
                    roles[entry["role"]][table] = set(entry["permission"]["columns"])
                elif seen is None:
                    roles[entry["role"]][table] = None
    return roles


def test_the_roles_table_states_what_each_role_may_select():
    page = PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| ([^|]+) \|", page, re.M)
    assert rows
    permissions = metadata_permissions()
    for role, table, listed in rows:
        assert permissions[role][table] == {c.strip() for c in listed.split(",")}, (role, table)
    documented = {(role, table) for role, table, _ in rows}
    for role, tables in permissions.items():
        assert f"`{role}`" in page, f"role {role} is not described"
        if role == WORKER_ROLE:
            continue
        for table, selectable in tables.items():
            assert (role, table) in documented, (role, table)
            assert not (selectable or set()) & PRIVATE_COLUMNS, (role, table)
            assert table in {"cognito_users", "cognito_groups"}, (role, table)

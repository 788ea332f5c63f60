"""deploy/hasura/adopt.py merges the mirror's tables into a user's existing Hasura CLI project.

Each test builds a project of its own tables, relationships, permissions and migration in a
temporary directory, runs the script as a user would (a subprocess) and checks that every
file of the user's is left byte for byte, that ours are added, that a second run changes
nothing, and that conflicts write nothing.
"""

import json
import pathlib
import subprocess
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
HASURA = DEPLOY / "hasura"
SCRIPT = HASURA / "adopt.py"
OUR_TABLES = HASURA / "metadata" / "databases" / "default" / "tables"
OUR_MIGRATIONS = sorted((p for p in (HASURA / "migrations" / "default").iterdir() if p.is_dir()),
                        key=lambda p: int(p.name.split("_", 1)[0]))
OUR_TABLE_NAMES = {"cognito_users", "cognito_groups", "cognito_sync_runs", "cognito_sync_leases",
                   "cognito_sync_requests"}
OUR_TABLE_FILES = sorted(p.name for p in OUR_TABLES.glob("public_*.yaml"))

USER_TABLES_YAML = '''- "!include public_orders.yaml"
- !include public_profiles.yaml
'''
USER_ORDERS = """table:
  name: orders
  schema: public
object_relationships:
  - name: profile
    using:
      foreign_key_constraint_on: profile_id
select_permissions:
  - role: user
    permission:
      columns: [id, total]
      filter:
        owner_id:
          _eq: X-Hasura-User-Id
"""
USER_PROFILES = """table:
  name: profiles
  schema: public
insert_permissions:
  - role: user
    permission:
      check: {}
      columns: [bio]
"""
USER_UP_SQL = """CREATE TABLE public.profiles (id uuid PRIMARY KEY, bio text);
CREATE TABLE public.orders (id serial PRIMARY KEY, profile_id uuid REFERENCES public.profiles (id),
                            owner_id uuid NOT NULL, total numeric NOT NULL);
"""


class IncludeLoader(yaml.SafeLoader):
    """Reads the unquoted `!include x.yaml` tag as the string Hasura's CLI treats it as."""


IncludeLoader.add_constructor("!include", lambda loader, node: "!include " + loader.construct_scalar(node))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_project(root, sources=("default",), tables_yaml=USER_TABLES_YAML, config_version=3):
    write(root / "config.yaml", f"version: {config_version}\nendpoint: http://localhost:8080\n"
                                "metadata_directory: metadata\n")
    write(root / "metadata" / "version.yaml", "version: 3\n")
    write(root / "metadata" / "actions.yaml", "actions: []\ncustom_types: {}\n")
    databases = [{"name": name, "kind": "postgres",
                  "configuration": {"connection_info": {"database_url": {"from_env": f"DB_{name.upper()}"}}},
                  "tables": f"!include {name}/tables/tables.yaml"} for name in sources]
    write(root / "metadata" / "databases" / "databases.yaml", yaml.safe_dump(databases, sort_keys=False))
    for name in sources:
        tables = root / "metadata" / "databases" / name / "tables"
        write(tables / "tables.yaml", tables_yaml)
        if tables_yaml.strip() != "[]":
            write(tables / "public_orders.yaml", USER_ORDERS)
            write(tables / "public_profiles.yaml", USER_PROFILES)
        write(root / "migrations" / name / "1700000000000_app" / "up.sql", USER_UP_SQL)
    return root


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def adopt(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=60, check=False)


def resolved_tables(project, source):
    """The (schema, name) → table document map Hasura would read for `source`."""
    tables_dir = project / "metadata" / "databases" / source / "tables"
    entries = yaml.load((tables_dir / "tables.yaml").read_text(), Loader=IncludeLoader)
    out = {}
    for entry in entries:
        document = yaml.safe_load((tables_dir / entry.removeprefix("!include ").strip()).read_text())
        out[(document["table"]["schema"], document["table"]["name"])] = document
    return out


def test_adds_our_tables_and_migration_and_leaves_every_user_file_as_it_was(tmp_path):
    project = make_project(tmp_path / "app")
    before = snapshot(project)

    result = adopt(project)
    assert result.returncode == 0, result.stderr

    after = snapshot(project)
    tables_yaml = "metadata/databases/default/tables/tables.yaml"
    for path, content in before.items():
        if path != tables_yaml:
            assert after[path] == content, f"{path} was changed"
    # The user's lines stay first and untouched; one include per table of ours follows.
    assert after[tables_yaml].decode().startswith(USER_TABLES_YAML)
    added = after[tables_yaml].decode()[len(USER_TABLES_YAML):].splitlines()
    assert added == [f'- "!include {name}"' for name in OUR_TABLE_FILES]
    for name in OUR_TABLE_FILES:
        assert after[f"metadata/databases/default/tables/{name}"] == (OUR_TABLES / name).read_bytes()
    for migration in OUR_MIGRATIONS:
        for file in migration.iterdir():
            assert after[f"migrations/default/{migration.name}/{file.name}"] == file.read_bytes()
    assert set(after) - set(before) == {
        *(f"metadata/databases/default/tables/{name}" for name in OUR_TABLE_FILES),
        *(f"migrations/default/{m.name}/{f.name}" for m in OUR_MIGRATIONS for f in m.iterdir()),
    }

    tracked = resolved_tables(project, "default")
    assert set(tracked) == {("public", "orders"), ("public", "profiles"),
                            *(("public", name) for name in OUR_TABLE_NAMES)}
    assert tracked[("public", "orders")]["object_relationships"][0]["name"] == "profile"


def test_a_second_run_changes_nothing(tmp_path):
    project = make_project(tmp_path / "app")
    assert adopt(project).returncode == 0
    adopted = snapshot(project)

    again = adopt(project)
    assert again.returncode == 0, again.stderr
    assert "already adopted" in again.stdout
    assert snapshot(project) == adopted


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    project = make_project(tmp_path / "app")
    before = snapshot(project)

    result = adopt(project, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert snapshot(project) == before
    lines = result.stdout.splitlines()
    assert all(line.startswith("would add ") for line in lines)
    assert len(lines) == len(OUR_MIGRATIONS) + 2 * len(OUR_TABLE_FILES)


def test_a_table_of_ours_tracked_from_another_file_is_refused(tmp_path):
    project = make_project(tmp_path / "app")
    tables = project / "metadata" / "databases" / "default" / "tables"
    write(tables / "users_mirror.yaml", "table:\n  name: cognito_users\n  schema: public\n")
    with open(tables / "tables.yaml", "a", encoding="utf-8") as handle:
        handle.write('- "!include users_mirror.yaml"\n')
    before = snapshot(project)

    result = adopt(project)

    assert result.returncode == 2
    assert "nothing written" in result.stderr
    assert "public.cognito_users is already tracked" in result.stderr
    assert "users_mirror.yaml" in result.stderr
    assert snapshot(project) == before


def test_a_changed_table_file_of_ours_is_refused_with_the_difference(tmp_path):
    project = make_project(tmp_path / "app")
    assert adopt(project).returncode == 0
    users = project / "metadata" / "databases" / "default" / "tables" / "public_cognito_users.yaml"
    users.write_text(users.read_text() + "array_relationships:\n  - name: orders\n", encoding="utf-8")
    before = snapshot(project)

    result = adopt(project)

    assert result.returncode == 2
    assert "exists with other content" in result.stderr
    assert "-array_relationships:" in result.stderr  # the unified diff: theirs has it, ours not
    assert snapshot(project) == before


def test_a_migration_version_already_taken_is_refused(tmp_path):
    project = make_project(tmp_path / "app")
    version = OUR_MIGRATIONS[-1].name.split("_", 1)[0]
    write(project / "migrations" / "default" / f"{version}_theirs" / "up.sql", "SELECT 1;\n")
    before = snapshot(project)

    result = adopt(project)

    assert result.returncode == 2
    assert f"migration version {version} is already used" in result.stderr
    assert snapshot(project) == before


def test_another_source_gets_our_files_under_its_own_name(tmp_path):
    project = make_project(tmp_path / "app", sources=("default", "accounts"))
    default_before = {k: v for k, v in snapshot(project).items() if "/default/" in f"/{k}"}

    result = adopt(project, "--source", "accounts")

    assert result.returncode == 0, result.stderr
    after = snapshot(project)
    assert {k: v for k, v in after.items() if "/default/" in f"/{k}"} == default_before
    assert ("public", "cognito_users") in resolved_tables(project, "accounts")
    for migration in OUR_MIGRATIONS:
        assert f"migrations/accounts/{migration.name}/up.sql" in after


def test_an_unknown_source_is_refused_naming_the_ones_there_are(tmp_path):
    project = make_project(tmp_path / "app", sources=("default", "accounts"))
    before = snapshot(project)

    result = adopt(project, "--source", "billing")

    assert result.returncode == 2
    assert "no source 'billing' (it has: default, accounts)" in result.stderr
    assert snapshot(project) == before


def test_an_empty_tables_list_becomes_ours(tmp_path):
    project = make_project(tmp_path / "app", tables_yaml="[]\n")

    assert adopt(project).returncode == 0

    assert set(resolved_tables(project, "default")) == {("public", name) for name in OUR_TABLE_NAMES}


def test_a_config_v2_project_is_refused_with_the_upgrade_command(tmp_path):
    project = make_project(tmp_path / "app", config_version=2)

    result = adopt(project)

    assert result.returncode == 2
    assert "hasura scripts update-project-v3" in result.stderr


def test_the_adopted_migrations_apply_in_version_order_on_postgres(tmp_path, scratch_database):
    # What `hasura migrate apply` does with the merged directory: every up.sql, by version.
    project = make_project(tmp_path / "app")
    assert adopt(project).returncode == 0

    for migration in sorted((project / "migrations" / "default").iterdir(),
                            key=lambda p: int(p.name.split("_", 1)[0])):
        scratch_database.run_file(migration / "up.sql")

    tables = scratch_database.value(
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public'")
    assert tables == ",".join(sorted(OUR_TABLE_NAMES | {"orders", "profiles"}))


def test_metadata_api_request_tracks_our_tables_with_their_permissions_only(tmp_path):
    result = adopt("--metadata-api", "--source", "accounts")
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)

    assert request["type"] == "bulk"
    steps = request["args"]
    assert {step["args"]["source"] for step in steps} == {"accounts"}
    assert not {step["type"] for step in steps} - {
        "pg_track_table", "pg_create_select_permission", "pg_create_insert_permission",
        "pg_create_update_permission", "pg_create_delete_permission",
        "pg_create_object_relationship", "pg_create_array_relationship"}

    expected = []
    for name in OUR_TABLE_FILES:
        document = yaml.safe_load((OUR_TABLES / name).read_text())
        expected.append(("pg_track_table", document["table"]["name"], None, None))
        for kind in ("select", "insert", "update", "delete"):
            for entry in document.get(f"{kind}_permissions", []):
                expected.append((f"pg_create_{kind}_permission", document["table"]["name"],
                                 entry["role"], json.dumps(entry["permission"], sort_keys=True)))
    got = [(step["type"], step["args"]["table"]["name"], step["args"].get("role"),
            json.dumps(step["args"]["permission"], sort_keys=True) if "permission" in step["args"] else None)
           for step in steps]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    # Each table is tracked before its permissions are created.
    for index, step in enumerate(steps):
        if step["type"] != "pg_track_table":
            tracked_before = {s["args"]["table"]["name"] for s in steps[:index] if s["type"] == "pg_track_table"}
            assert step["args"]["table"]["name"] in tracked_before

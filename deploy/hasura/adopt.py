#!/usr/bin/env python3
"""Adds the mirror's migration and table metadata to an existing Hasura CLI project.

`hasura metadata apply --project deploy/hasura` would replace a server's whole metadata with
this project's tables. This script instead merges them into the project directory that
already describes the user's server (config v3, as `hasura metadata export` writes it):

- copies each `metadata/databases/default/tables/public_*.yaml` of this project into the
  user's `metadata/databases/<source>/tables/` and adds one `"!include ..."` line per table to
  that source's `tables.yaml`;
- copies each `migrations/default/<version>_<name>/` into the user's `migrations/<source>/`.

Nothing else is written. Conflicts (a table already tracked from another file, a file of
the same name with other content, a migration version already used) are listed and nothing is
written at all. Running it again after a successful run changes nothing.

    python3 deploy/hasura/adopt.py PROJECT_DIR [--source NAME] [--dry-run]
    python3 deploy/hasura/adopt.py --metadata-api [--source NAME]

The second form prints one `/v1/metadata` `bulk` request (pg_track_table and the permission
calls) for servers managed without the CLI. It never uses `replace_metadata`.
"""

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUR_TABLES = HERE / "metadata" / "databases" / "default" / "tables"
OUR_MIGRATIONS = HERE / "migrations" / "default"
INCLUDE = "!include "

# Table file keys and the /v1/metadata call that creates each entry of them.
PERMISSION_CALLS = {
    "select_permissions": "pg_create_select_permission",
    "insert_permissions": "pg_create_insert_permission",
    "update_permissions": "pg_create_update_permission",
    "delete_permissions": "pg_create_delete_permission",
}
RELATIONSHIP_CALLS = {
    "object_relationships": "pg_create_object_relationship",
    "array_relationships": "pg_create_array_relationship",
}


class AdoptError(Exception):
    """The project cannot be merged into; the message says why and what to do."""


class _Loader(yaml.SafeLoader):
    """Reads Hasura CLI files, which may also write `!include` as an unquoted tag."""


_Loader.add_constructor("!include", lambda loader, node: INCLUDE + loader.construct_scalar(node))


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


def table_key(document, path):
    try:
        table = document["table"]
        return (table.get("schema", "public"), table["name"])
    except (TypeError, KeyError) as error:
        raise AdoptError(f"{path}: not a Hasura table file (no table.name)") from error


def included_file(entry):
    """The file an `"!include x.yaml"` entry names, or None for an inline entry."""
    if isinstance(entry, str) and entry.startswith(INCLUDE):
        return entry[len(INCLUDE):].strip()
    return None


def our_tables():
    """(file name, text, parsed) of this project's table files, in tables.yaml order."""
    out = []
    for entry in load_yaml(OUR_TABLES / "tables.yaml"):
        name = included_file(entry)
        text = (OUR_TABLES / name).read_text(encoding="utf-8")
        out.append((name, text, yaml.safe_load(text)))
    return out


def our_migrations():
    return sorted(path for path in OUR_MIGRATIONS.iterdir() if path.is_dir())


@dataclass
class Plan:
    """What a run would write, and what stops it."""

    table_files: list = field(default_factory=list)  # (path, text)
    includes: list = field(default_factory=list)  # file names for tables.yaml
    migrations: list = field(default_factory=list)  # (source dir, target dir)
    conflicts: list = field(default_factory=list)
    tables_yaml: Path = None

    def empty(self):
        return not (self.table_files or self.includes or self.migrations)


def project_layout(project):
    """(metadata dir, migrations dir) of a config v3 project, or why it is not one."""
    config_path = project / "config.yaml"
    if not config_path.is_file():
        raise AdoptError(f"{project}: no config.yaml; pass the directory `hasura init` created "
                         "(the one holding config.yaml, metadata/ and migrations/)")
    config = load_yaml(config_path) or {}
    if config.get("version") != 3:
        raise AdoptError(f"{config_path}: config version {config.get('version')!r}; this needs "
                         "version 3 (run `hasura scripts update-project-v3` first)")
    metadata = project / config.get("metadata_directory", "metadata")
    migrations = project / config.get("migrations_directory", "migrations")
    databases = metadata / "databases" / "databases.yaml"
    if not databases.is_file():
        raise AdoptError(f"{databases} is missing: run `hasura metadata export` in {project} "
                         "first, so the project holds what the server has")
    return metadata, migrations


def source_tables_file(metadata, source):
    databases_yaml = metadata / "databases" / "databases.yaml"
    sources = load_yaml(databases_yaml) or []
    names = [entry.get("name") for entry in sources if isinstance(entry, dict)]
    match = [entry for entry in sources if isinstance(entry, dict) and entry.get("name") == source]
    if not match:
        raise AdoptError(f"{databases_yaml} has no source {source!r} (it has: "
                         f"{', '.join(map(str, names)) or 'none'}); add the database in Hasura, "
                         "run `hasura metadata export`, or pass --source NAME")
    include = included_file(match[0].get("tables"))
    if include is None:
        raise AdoptError(f"{databases_yaml}: source {source!r} lists its tables inline; "
                         "`hasura metadata export` writes them as `!include` files, which this needs")
    tables_yaml = metadata / "databases" / include
    if not tables_yaml.is_file():
        raise AdoptError(f"{tables_yaml} is missing although {databases_yaml} includes it")
    return tables_yaml


def tracked_tables(tables_yaml):
    """{(schema, name): include file name or None for inline} of the user's tables.yaml."""
    tracked = {}
    for entry in load_yaml(tables_yaml) or []:
        name = included_file(entry)
        if name is None:
            tracked[table_key(entry, tables_yaml)] = None
            continue
        path = tables_yaml.parent / name
        if not path.is_file():
            raise AdoptError(f"{tables_yaml} includes {name}, which does not exist")
        tracked[table_key(load_yaml(path), path)] = name
    return tracked


def diff(ours, theirs, path):
    lines = difflib.unified_diff(theirs.splitlines(keepends=True), ours.splitlines(keepends=True),
                                 fromfile=str(path), tofile=f"{path} (cognito-hasura-sync)")
    return "".join(lines)


def plan_tables(plan, tables_yaml):
    tracked = tracked_tables(tables_yaml)
    directory = tables_yaml.parent
    for name, text, parsed in our_tables():
        key = table_key(parsed, OUR_TABLES / name)
        path = directory / name
        existing = path.read_text(encoding="utf-8") if path.is_file() else None
        where = tracked.get(key, False)
        if where not in (False, name):
            plan.conflicts.append(
                f"table {key[0]}.{key[1]} is already tracked "
                f"({'inline in ' + str(tables_yaml) if where is None else 'in ' + str(directory / where)}); "
                "untrack it or drop that entry first, this project's table must be the only one")
        elif existing is not None and existing != text:
            plan.conflicts.append(
                f"{path} exists with other content (your own permissions or relationships, or an "
                f"older version of ours); merge by hand, or delete it and run again:\n"
                f"{diff(text, existing, path)}")
        else:
            if existing is None:
                plan.table_files.append((path, text))
            if where is False:
                plan.includes.append(name)


def plan_migrations(plan, migrations, source):
    target_dir = migrations / source
    taken = {}
    if target_dir.is_dir():
        taken = {path.name.split("_", 1)[0]: path for path in target_dir.iterdir() if path.is_dir()}
    for ours in our_migrations():
        version = ours.name.split("_", 1)[0]
        theirs = taken.get(version)
        if theirs is None:
            plan.migrations.append((ours, target_dir / ours.name))
            continue
        if theirs.name != ours.name:
            plan.conflicts.append(f"migration version {version} is already used by {theirs}; "
                                  "Hasura keys migrations by version, so rename one of them")
            continue
        for file in sorted(ours.iterdir()):
            other = theirs / file.name
            text = file.read_text(encoding="utf-8")
            if not other.is_file() or other.read_text(encoding="utf-8") != text:
                plan.conflicts.append(f"{other} differs from this project's {file.name}; "
                                      "a migration must not change once applied: restore it")


def make_plan(project, source):
    metadata, migrations = project_layout(project)
    plan = Plan(tables_yaml=source_tables_file(metadata, source))
    plan_tables(plan, plan.tables_yaml)
    plan_migrations(plan, migrations, source)
    return plan


def with_includes(text, names):
    """tables.yaml text with one `- "!include name"` line appended per name; the user's own
    lines stay byte for byte as they were."""
    lines = [f'- "{INCLUDE}{name}"\n' for name in names]
    stripped = text.strip()
    if stripped in ("", "[]"):
        return "".join(lines)
    if stripped.startswith("["):
        raise AdoptError("tables.yaml is a flow-style list ([...]); rewrite it one entry per "
                         "line (`hasura metadata export` does) and run again")
    return text + ("" if text.endswith("\n") else "\n") + "".join(lines)


def apply(plan):
    new_tables = with_includes(plan.tables_yaml.read_text(encoding="utf-8"), plan.includes)
    for source_dir, target_dir in plan.migrations:
        target_dir.mkdir(parents=True, exist_ok=True)
        for file in sorted(source_dir.iterdir()):
            (target_dir / file.name).write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    for path, text in plan.table_files:
        path.write_text(text, encoding="utf-8")
    plan.tables_yaml.write_text(new_tables, encoding="utf-8")


def describe(plan):
    lines = [f"add migration {target}" for _, target in plan.migrations]
    lines += [f"add {path}" for path, _ in plan.table_files]
    lines += [f'add "{INCLUDE}{name}" to {plan.tables_yaml}' for name in plan.includes]
    return lines


def metadata_api(source):
    """One /v1/metadata bulk request that tracks this project's tables and creates their
    permissions and relationships on `source`, and nothing else."""
    handled = {"table", "configuration", *PERMISSION_CALLS, *RELATIONSHIP_CALLS}
    steps = []
    for name, _, parsed in our_tables():
        unknown = set(parsed) - handled
        if unknown:
            raise AdoptError(f"{name}: no metadata API call for {sorted(unknown)}")
        track = {"source": source, "table": parsed["table"]}
        if "configuration" in parsed:
            track["configuration"] = parsed["configuration"]
        steps.append({"type": "pg_track_table", "args": track})
        for key, call in {**RELATIONSHIP_CALLS, **PERMISSION_CALLS}.items():
            for entry in parsed.get(key, []):
                steps.append({"type": call,
                              "args": {"source": source, "table": parsed["table"], **entry}})
    return {"type": "bulk", "args": steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", nargs="?", type=Path,
                        help="the Hasura CLI project directory (holding config.yaml)")
    parser.add_argument("--source", default="default",
                        help="the database (source) name in that project (default: default)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written")
    parser.add_argument("--metadata-api", action="store_true",
                        help="print the /v1/metadata bulk request instead of editing a project")
    args = parser.parse_args(argv)
    try:
        if args.metadata_api:
            print(json.dumps(metadata_api(args.source), indent=2))
            return 0
        if args.project is None:
            parser.error("PROJECT_DIR is required (or --metadata-api)")
        plan = make_plan(args.project.resolve(), args.source)
        if plan.conflicts:
            print("nothing written; resolve these first:", file=sys.stderr)
            for conflict in plan.conflicts:
                print(f"- {conflict}", file=sys.stderr)
            return 2
        if plan.empty():
            print("already adopted: nothing to do")
            return 0
        prefix = "would " if args.dry_run else ""
        for line in describe(plan):
            print(prefix + line)
        if not args.dry_run:
            apply(plan)
            print("next: `hasura migrate apply --database-name "
                  f"{args.source}` and `hasura metadata apply` from {args.project} "
                  "(check with `hasura metadata diff` first)")
        return 0
    except AdoptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

//! Reads the tracked tables of the `default` source from a Hasura CLI v3 metadata folder,
//! with their select, insert, update and delete permissions, following its
//! `"!include file.yaml"` strings relative to the including file.
//!
//! Metadata this engine cannot serve is refused at load with an error naming what it is
//! and where, instead of being ignored: relationships, computed fields, event triggers,
//! custom names, functions, further sources, remote schemas, actions, cron triggers,
//! inherited roles, allow lists, REST endpoints, API limits, introspection settings, and
//! permission options it does not implement (`backend_only`, `query_root_fields`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A table tracked in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedTable {
    /// PostgreSQL schema, `public` when metadata leaves it out.
    pub schema: String,
    /// PostgreSQL table name.
    pub name: String,
    /// `select_permissions`, one per role.
    pub select_permissions: Vec<Permission<SelectRule>>,
    /// `insert_permissions`, one per role.
    pub insert_permissions: Vec<Permission<InsertRule>>,
    /// `update_permissions`, one per role.
    pub update_permissions: Vec<Permission<UpdateRule>>,
    /// `delete_permissions`, one per role.
    pub delete_permissions: Vec<Permission<DeleteRule>>,
}

impl TrackedTable {
    /// Every role with a permission on the table.
    pub fn roles(&self) -> BTreeSet<&str> {
        let roles = self
            .select_permissions
            .iter()
            .map(|p| p.role.as_str())
            .chain(self.insert_permissions.iter().map(|p| p.role.as_str()))
            .chain(self.update_permissions.iter().map(|p| p.role.as_str()))
            .chain(self.delete_permissions.iter().map(|p| p.role.as_str()));
        roles.collect()
    }
}

/// The rule `role` has among `permissions`.
pub fn rule_of<R: Clone>(permissions: &[Permission<R>], role: &str) -> Option<R> {
    permissions
        .iter()
        .find(|p| p.role == role)
        .map(|p| p.permission.clone())
}

/// One entry of a table's `<kind>_permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission<R> {
    /// The role it applies to.
    pub role: String,
    /// What the role may do.
    pub permission: R,
    /// Free text kept by the console; no effect.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The `permission` of a select permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectRule {
    /// The columns the role may select.
    pub columns: Columns,
    /// Row filter (a `<t>_bool_exp` whose values may name session variables); `{}` = all rows.
    #[serde(default = "empty_object")]
    pub filter: serde_json::Value,
    /// Most rows one query may return.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Whether `<t>_aggregate` is offered.
    #[serde(default)]
    pub allow_aggregations: bool,
}

/// The `permission` of an insert permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertRule {
    /// What every inserted row must satisfy (`{}` = anything).
    #[serde(default = "empty_object")]
    pub check: serde_json::Value,
    /// The columns the role may give values for (preset columns are taken out).
    #[serde(default = "no_columns")]
    pub columns: Columns,
    /// Column presets: a literal, or a string naming a session variable.
    #[serde(default)]
    pub set: serde_json::Map<String, serde_json::Value>,
    /// Hasura hides a `backend_only` permission from requests that do not ask for
    /// backend-only permissions; hasura-lite refuses `true` rather than expose it.
    #[serde(default)]
    pub backend_only: bool,
}

/// The `permission` of an update permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    /// The columns the role may change (preset columns are taken out).
    #[serde(default = "no_columns")]
    pub columns: Columns,
    /// Which rows the role may update.
    #[serde(default = "empty_object")]
    pub filter: serde_json::Value,
    /// What every row must satisfy after the update; none = anything.
    #[serde(default)]
    pub check: Option<serde_json::Value>,
    /// Column presets written by every update.
    #[serde(default)]
    pub set: serde_json::Map<String, serde_json::Value>,
    /// See [`InsertRule::backend_only`].
    #[serde(default)]
    pub backend_only: bool,
}

/// The `permission` of a delete permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRule {
    /// Which rows the role may delete.
    #[serde(default = "empty_object")]
    pub filter: serde_json::Value,
    /// See [`InsertRule::backend_only`].
    #[serde(default)]
    pub backend_only: bool,
}

/// `columns: [a, b]` or `columns: "*"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    /// The listed columns.
    Listed(Vec<String>),
    /// `"*"`: every column.
    All(String),
}

impl Columns {
    /// Whether `column` is among them.
    pub fn allows(&self, column: &str) -> bool {
        match self {
            Columns::Listed(columns) => columns.iter().any(|c| c == column),
            Columns::All(_) => true,
        }
    }

    /// The listed names (none for `"*"`), to check them against the table.
    pub fn listed(&self) -> &[String] {
        match self {
            Columns::Listed(columns) => columns,
            Columns::All(_) => &[],
        }
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn no_columns() -> Columns {
    Columns::Listed(Vec::new())
}

/// A table file: what hasura-lite serves, and every other key to refuse when not empty.
#[derive(Deserialize)]
struct TableEntry {
    table: TableName,
    #[serde(default)]
    select_permissions: Vec<Value>,
    #[serde(default)]
    insert_permissions: Vec<Value>,
    #[serde(default)]
    update_permissions: Vec<Value>,
    #[serde(default)]
    delete_permissions: Vec<Value>,
    #[serde(flatten)]
    unserved: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TableName {
    Qualified {
        name: String,
        schema: Option<String>,
    },
    Bare(String),
}

/// Top-level metadata files that change what the API serves, none of which hasura-lite
/// implements: each must be absent or empty.
const UNSERVED_FILES: [(&str, &str); 8] = [
    ("remote_schemas.yaml", "remote schemas"),
    ("actions.yaml", "actions and custom types"),
    ("cron_triggers.yaml", "cron triggers"),
    ("inherited_roles.yaml", "inherited roles"),
    ("allow_list.yaml", "an allow list"),
    ("rest_endpoints.yaml", "REST endpoints"),
    ("api_limits.yaml", "API limits"),
    (
        "graphql_schema_introspection.yaml",
        "introspection settings",
    ),
];

/// Source keys besides these are features hasura-lite does not serve.
const SERVED_SOURCE_KEYS: [&str; 4] = ["name", "kind", "configuration", "tables"];

/// Loads the tables tracked in the `default` source (the only source), sorted by schema
/// and name; refuses metadata it cannot serve.
pub fn load(metadata_dir: &Path) -> anyhow::Result<Vec<TrackedTable>> {
    refuse_unserved_files(metadata_dir)?;
    let databases_path = metadata_dir.join("databases").join("databases.yaml");
    let databases = read_yaml(&databases_path)?;
    let sources = databases
        .as_sequence()
        .with_context(|| format!("{}: expected a list of sources", databases_path.display()))?;
    let source = match sources.as_slice() {
        [] => anyhow::bail!("{}: no database source", databases_path.display()),
        [one] => one,
        _ => anyhow::bail!(
            "{}: hasura-lite serves one database source, this metadata has {}",
            databases_path.display(),
            sources.len()
        ),
    };
    if let Some(map) = source.as_mapping() {
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            if !SERVED_SOURCE_KEYS.contains(&key) && !is_empty(value) {
                anyhow::bail!(
                    "{}: source key `{key}` is not served by hasura-lite",
                    databases_path.display()
                );
            }
        }
    }
    let databases_dir = databases_path
        .parent()
        .unwrap_or(metadata_dir)
        .to_path_buf();
    let (tables, tables_dir) = match source.get("tables") {
        None => return Ok(Vec::new()),
        Some(value) => resolve(value.clone(), &databases_dir)?,
    };
    let entries = tables
        .as_sequence()
        .with_context(|| format!("{}: expected a list of tables", databases_path.display()))?;
    let mut tracked = Vec::with_capacity(entries.len());
    for entry in entries {
        let (entry, file_dir) = resolve(entry.clone(), &tables_dir)?;
        let entry: TableEntry = serde_yaml::from_value(entry)
            .with_context(|| format!("table entry under {}", file_dir.display()))?;
        tracked.push(table(entry)?);
    }
    tracked.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(tracked)
}

fn table(entry: TableEntry) -> anyhow::Result<TrackedTable> {
    let (schema, name) = match entry.table {
        TableName::Qualified { name, schema } => {
            (schema.unwrap_or_else(|| "public".to_owned()), name)
        }
        TableName::Bare(name) => ("public".to_owned(), name),
    };
    let qualified = format!("{schema}.{name}");
    for (key, value) in &entry.unserved {
        if is_empty(value) {
            continue;
        }
        if key.ends_with("relationships") {
            let names: Vec<&str> = value
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .collect();
            anyhow::bail!(
                "table {qualified}: {key} {names:?} are not served by hasura-lite; join in a view instead, or remove them"
            );
        }
        anyhow::bail!("table {qualified}: `{key}` is not served by hasura-lite");
    }
    let table = TrackedTable {
        select_permissions: permissions(&qualified, "select", entry.select_permissions)?,
        insert_permissions: permissions(&qualified, "insert", entry.insert_permissions)?,
        update_permissions: permissions(&qualified, "update", entry.update_permissions)?,
        delete_permissions: permissions(&qualified, "delete", entry.delete_permissions)?,
        schema,
        name,
    };
    let backend_only = table
        .insert_permissions
        .iter()
        .filter(|p| p.permission.backend_only)
        .map(|p| ("insert", &p.role))
        .chain(
            table
                .update_permissions
                .iter()
                .filter(|p| p.permission.backend_only)
                .map(|p| ("update", &p.role)),
        )
        .chain(
            table
                .delete_permissions
                .iter()
                .filter(|p| p.permission.backend_only)
                .map(|p| ("delete", &p.role)),
        )
        .next();
    if let Some((kind, role)) = backend_only {
        anyhow::bail!(
            "table {qualified}: the {kind} permission of role {role} is backend_only, which hasura-lite does not serve"
        );
    }
    for columns in table
        .select_permissions
        .iter()
        .map(|p| (&p.role, "select", &p.permission.columns))
        .chain(
            table
                .insert_permissions
                .iter()
                .map(|p| (&p.role, "insert", &p.permission.columns)),
        )
        .chain(
            table
                .update_permissions
                .iter()
                .map(|p| (&p.role, "update", &p.permission.columns)),
        )
    {
        if let (role, kind, Columns::All(other)) = columns
            && other != "*"
        {
            anyhow::bail!(
                "table {qualified}: {kind} permission columns of role {role} must be a list or \"*\", not {other:?}"
            );
        }
    }
    Ok(table)
}

/// Parses one kind of permission; a role may have at most one of each kind per table.
fn permissions<R: DeserializeOwned>(
    table: &str,
    kind: &str,
    entries: Vec<Value>,
) -> anyhow::Result<Vec<Permission<R>>> {
    let mut parsed: Vec<Permission<R>> = Vec::with_capacity(entries.len());
    for mut entry in entries {
        // Exports may carry `computed_fields: []`: no computed field, which is served.
        if let Some(permission) = entry.get_mut("permission").and_then(Value::as_mapping_mut)
            && permission.get("computed_fields").is_some_and(is_empty)
        {
            permission.remove("computed_fields");
        }
        let role = entry
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let permission: Permission<R> = serde_yaml::from_value(entry)
            .with_context(|| format!("table {table}: {kind} permission of role {role}"))?;
        if parsed.iter().any(|p| p.role == permission.role) {
            anyhow::bail!("table {table}: role {role} has two {kind} permissions");
        }
        parsed.push(permission);
    }
    Ok(parsed)
}

fn refuse_unserved_files(metadata_dir: &Path) -> anyhow::Result<()> {
    for (file, what) in UNSERVED_FILES {
        let path = metadata_dir.join(file);
        if path.exists() && !is_empty(&read_yaml(&path)?) {
            anyhow::bail!(
                "{}: hasura-lite does not serve {what}; leave the file empty",
                path.display()
            );
        }
    }
    let actions_sdl = metadata_dir.join("actions.graphql");
    if actions_sdl.exists() {
        let text = std::fs::read_to_string(&actions_sdl)
            .with_context(|| format!("reading {}", actions_sdl.display()))?;
        if text.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        }) {
            anyhow::bail!(
                "{}: hasura-lite does not serve actions; leave the file empty",
                actions_sdl.display()
            );
        }
    }
    Ok(())
}

/// Null, false, an empty string, list or map, or a map of such: a setting left at its
/// default.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(map) => map.values().all(is_empty),
        Value::Number(_) => false,
        Value::Tagged(tagged) => is_empty(&tagged.value),
    }
}

/// Replaces an `"!include path"` string by the file's content; returns the value and the
/// folder further includes inside it are relative to.
fn resolve(value: Value, base: &Path) -> anyhow::Result<(Value, PathBuf)> {
    match value.as_str().and_then(|s| s.strip_prefix("!include ")) {
        Some(relative) => {
            let path = base.join(relative.trim());
            let dir = path.parent().unwrap_or(base).to_path_buf();
            Ok((read_yaml(&path)?, dir))
        }
        None => Ok((value, base.to_path_buf())),
    }
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

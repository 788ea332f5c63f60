//! Reads the tracked tables of the `default` source from a Hasura CLI v3 metadata folder,
//! with their select permissions, following its `"!include file.yaml"` strings relative to
//! the including file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_yaml::Value;

/// A table tracked in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedTable {
    /// PostgreSQL schema, `public` when metadata leaves it out.
    pub schema: String,
    /// PostgreSQL table name.
    pub name: String,
    /// `select_permissions`, one per role.
    pub select_permissions: Vec<SelectPermission>,
}

/// One entry of a table's `select_permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SelectPermission {
    /// The role it applies to.
    pub role: String,
    /// What the role may do.
    pub permission: SelectRule,
}

/// The `permission` of a select permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SelectRule {
    /// The columns the role may select.
    pub columns: Columns,
    /// Row filter (a `<t>_bool_exp` whose values may name session variables); `{}` = all rows.
    #[serde(default = "empty_filter")]
    pub filter: serde_json::Value,
    /// Most rows one query may return.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Whether `<t>_aggregate` is offered.
    #[serde(default)]
    pub allow_aggregations: bool,
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
    /// Whether `column` may be selected.
    pub fn allows(&self, column: &str) -> bool {
        match self {
            Columns::Listed(columns) => columns.iter().any(|c| c == column),
            Columns::All(_) => true,
        }
    }
}

fn empty_filter() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

#[derive(Deserialize)]
struct TableEntry {
    table: TableName,
    #[serde(default)]
    select_permissions: Vec<SelectPermission>,
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

/// Loads the tables tracked in the `default` source (the first source when none is named
/// `default`), sorted by schema and name.
pub fn load(metadata_dir: &Path) -> anyhow::Result<Vec<TrackedTable>> {
    let databases_path = metadata_dir.join("databases").join("databases.yaml");
    let databases = read_yaml(&databases_path)?;
    let sources = databases
        .as_sequence()
        .with_context(|| format!("{}: expected a list of sources", databases_path.display()))?;
    let source = sources
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some("default"))
        .or_else(|| sources.first())
        .with_context(|| format!("{}: no database source", databases_path.display()))?;
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
        let (schema, name) = match entry.table {
            TableName::Qualified { name, schema } => {
                (schema.unwrap_or_else(|| "public".to_owned()), name)
            }
            TableName::Bare(name) => ("public".to_owned(), name),
        };
        for permission in &entry.select_permissions {
            if let Columns::All(other) = &permission.permission.columns
                && other != "*"
            {
                anyhow::bail!(
                    "{schema}.{name}: select permission columns of role {} must be a list or \"*\", not {other:?}",
                    permission.role
                );
            }
        }
        tracked.push(TrackedTable {
            schema,
            name,
            select_permissions: entry.select_permissions,
        });
    }
    tracked.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(tracked)
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

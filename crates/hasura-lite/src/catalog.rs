//! Reads what the GraphQL schema is built from out of the PostgreSQL catalog: columns with
//! their types, nullability and defaults, primary keys, unique constraints and comments.

use anyhow::Context as _;
use tokio_postgres::Client;

use crate::metadata::TrackedTable;

/// A tracked table as PostgreSQL describes it.
#[derive(Debug, Clone)]
pub struct Table {
    /// PostgreSQL schema.
    pub schema: String,
    /// Table name, also the GraphQL type name (Hasura's default for the `public` schema).
    pub name: String,
    /// `COMMENT ON TABLE`, used as the type description.
    pub comment: Option<String>,
    /// Columns in name order (Hasura sorts fields by name).
    pub columns: Vec<Column>,
    /// Primary key column names in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// Primary key and unique constraints, by name.
    pub unique_constraints: Vec<Constraint>,
}

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// `pg_type.typname`, e.g. `int4`, `timestamptz`.
    pub type_name: String,
    /// `format_type(...)`: the SQL spelling used for casts, e.g. `timestamp with time zone`.
    pub sql_type: String,
    /// NOT NULL.
    pub not_null: bool,
    /// `COMMENT ON COLUMN`, used as the field description.
    pub comment: Option<String>,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Constraint name as `ON CONFLICT ON CONSTRAINT` takes it.
    pub name: String,
    /// Its columns in key order.
    pub columns: Vec<String>,
}

impl Table {
    /// The table as a quoted SQL name.
    pub fn sql_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl Column {
    /// The GraphQL scalar Hasura v2 exposes this column type as.
    pub fn scalar(&self) -> String {
        match self.type_name.as_str() {
            "text" | "varchar" => "String".to_owned(),
            "int4" => "Int".to_owned(),
            "bool" => "Boolean".to_owned(),
            "float4" => "Float".to_owned(),
            "int8" => "bigint".to_owned(),
            "int2" => "smallint".to_owned(),
            other => other.to_owned(),
        }
    }

    /// Whether `_inc` applies (Hasura offers it for numeric columns only).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self.type_name.as_str(),
            "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" | "money"
        )
    }
}

/// Quotes an SQL identifier. Identifiers only ever come from the catalog or metadata.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Loads every tracked table; a tracked table missing from the database is an error.
pub async fn load(client: &Client, tracked: &[TrackedTable]) -> anyhow::Result<Vec<Table>> {
    let mut tables = Vec::with_capacity(tracked.len());
    for t in tracked {
        tables.push(load_table(client, t).await?);
    }
    Ok(tables)
}

async fn load_table(client: &Client, tracked: &TrackedTable) -> anyhow::Result<Table> {
    let context = || {
        format!(
            "reading the catalog for table {}.{}",
            tracked.schema, tracked.name
        )
    };
    let relation = client
        .query_opt(
            "SELECT c.oid, obj_description(c.oid, 'pg_class')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm')",
            &[&tracked.schema, &tracked.name],
        )
        .await
        .with_context(context)?
        .with_context(|| {
            format!(
                "table {}.{} is tracked in metadata but does not exist",
                tracked.schema, tracked.name
            )
        })?;
    let oid: u32 = relation.get(0);
    let comment: Option<String> = relation.get(1);
    let columns = client
        .query(
            "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, col_description(a.attrelid, a.attnum)
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attname",
            &[&oid],
        )
        .await
        .with_context(context)?
        .into_iter()
        .map(|row| Column {
            name: row.get(0),
            type_name: row.get(1),
            sql_type: row.get(2),
            not_null: row.get(3),
            comment: row.get(4),
        })
        .collect();
    let constraints = client
        .query(
            "SELECT con.conname::text, con.contype = 'p',
                    array(SELECT a.attname::text
                            FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                           ORDER BY k.ord)
               FROM pg_constraint con
              WHERE con.conrelid = $1 AND con.contype IN ('p', 'u')
              ORDER BY con.conname",
            &[&oid],
        )
        .await
        .with_context(context)?;
    let mut primary_key = Vec::new();
    let mut unique_constraints = Vec::new();
    for row in constraints {
        let name: String = row.get(0);
        let is_primary: bool = row.get(1);
        let columns: Vec<String> = row.get(2);
        if is_primary {
            primary_key = columns.clone();
        }
        unique_constraints.push(Constraint { name, columns });
    }
    Ok(Table {
        schema: tracked.schema.clone(),
        name: tracked.name.clone(),
        comment,
        columns,
        primary_key,
        unique_constraints,
    })
}

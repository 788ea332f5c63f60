//! Builds the SQL for every root field. Values only ever travel as bound parameters;
//! identifiers come from the catalog and are quoted. Rows come back as JSON built by
//! PostgreSQL (`json_agg`), so resolvers only pick fields.

mod bool_exp;
pub mod mutate;
pub mod select;

pub use bool_exp::bool_exp;
pub(crate) use bool_exp::object_or_empty;
pub use mutate::{Guard, delete, insert, update};
pub use select::{aggregate, count, select};

use serde_json::Value as Json;
use tokio_postgres::types::ToSql;

use crate::catalog::Column;

/// Alias of the table in every generated statement.
pub(crate) const ALIAS: &str = "\"_t\"";

/// A value bound to a `$n` placeholder.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// The parameters of a statement under construction.
#[derive(Default)]
pub struct Params {
    values: Vec<Param>,
}

impl Params {
    /// Binds a value and returns its placeholder.
    pub fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// Binds a GraphQL input value for `column` and returns an SQL expression of the
    /// column's type. Travels as text and is cast by PostgreSQL, so a malformed value is
    /// PostgreSQL's data exception exactly as with Hasura.
    pub fn bind_value(&mut self, column: &Column, value: &Json) -> String {
        let placeholder = self.bind(value_text(column, value));
        format!("{placeholder}::text::{}", column.sql_type)
    }

    /// Binds a list of values for `column` as an array of the column's type.
    pub fn bind_list(&mut self, column: &Column, values: &[Json]) -> String {
        let texts: Vec<Option<String>> = values.iter().map(|v| value_text(column, v)).collect();
        let placeholder = self.bind(texts);
        format!("{placeholder}::text[]::{}[]", column.sql_type)
    }

    /// The parameters as `query` takes them.
    pub fn as_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The text form PostgreSQL parses for a value of `column`'s type.
fn value_text(column: &Column, value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        _ if is_json_type(column) => Some(value.to_string()),
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Array(_) | Json::Object(_) => Some(value.to_string()),
    }
}

/// Whether the column holds JSON (its values are sent as JSON text, strings included).
pub(crate) fn is_json_type(column: &Column) -> bool {
    matches!(column.type_name.as_str(), "json" | "jsonb")
}

/// `"_t"."column"`.
pub(crate) fn column_ref(column: &str) -> String {
    format!("{ALIAS}.{}", crate::catalog::quote_ident(column))
}

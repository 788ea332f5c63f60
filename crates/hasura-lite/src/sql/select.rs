//! `SELECT` for `t`, `t_by_pk`, `t_aggregate { nodes }` and `count`.

use serde_json::Value as Json;

use super::{ALIAS, Params, bool_exp};
use crate::catalog::{Table, quote_ident};
use crate::error::HasuraError;

/// The arguments shared by `t` and `t_aggregate`.
#[derive(Debug, Clone, Default)]
pub struct SelectArgs {
    /// `where`
    pub filter: Option<Json>,
    /// `order_by`
    pub order_by: Option<Json>,
    /// `limit`
    pub limit: Option<i64>,
    /// `offset`
    pub offset: Option<i64>,
    /// `distinct_on`
    pub distinct_on: Vec<String>,
}

/// Statement returning one `json` array of the selected rows.
pub fn select(
    table: &Table,
    args: &SelectArgs,
    path: &str,
) -> Result<(String, Params), HasuraError> {
    let mut params = Params::default();
    let inner = filtered(table, args, &mut params, path)?;
    Ok((
        format!("SELECT coalesce(json_agg(\"_r\"), '[]'::json) FROM ({inner}) AS \"_r\""),
        params,
    ))
}

/// Statement returning the `bigint` count of the selected rows, over `columns`
/// (non-null values, or distinct ones) when given.
pub fn count(
    table: &Table,
    args: &SelectArgs,
    columns: &[String],
    distinct: bool,
    path: &str,
) -> Result<(String, Params), HasuraError> {
    let mut params = Params::default();
    let inner = filtered(table, args, &mut params, path)?;
    let counted = match (columns, distinct) {
        ([], false) => "*".to_owned(),
        ([], true) => "DISTINCT \"_r\".*".to_owned(),
        (cols, distinct) => {
            let list: Vec<String> = cols
                .iter()
                .map(|c| format!("\"_r\".{}", quote_ident(c)))
                .collect();
            let target = if list.len() == 1 {
                list[0].clone()
            } else {
                format!("({})", list.join(", "))
            };
            if distinct {
                format!("DISTINCT {target}")
            } else {
                target
            }
        }
    };
    Ok((
        format!("SELECT count({counted})::bigint FROM ({inner}) AS \"_r\""),
        params,
    ))
}

/// Statement returning one JSON object: `op(column)` for each of `columns` over the
/// selected rows (`max`, `min`, `sum`, `avg`, `stddev`, ... as Hasura offers them).
pub fn aggregate(
    table: &Table,
    args: &SelectArgs,
    op: &str,
    columns: &[&crate::catalog::Column],
    path: &str,
) -> Result<(String, Params), HasuraError> {
    let mut params = Params::default();
    let inner = filtered(table, args, &mut params, path)?;
    let pairs: Vec<String> = columns
        .iter()
        .map(|column| {
            let col = format!("\"_r\".{}", quote_ident(&column.name));
            let expr = match (op, column.type_name.as_str()) {
                // PostgreSQL has no max(uuid); text order is uuid order.
                ("max" | "min", "uuid") => format!("{op}({col}::text)::uuid"),
                ("max" | "min" | "sum", _) => format!("{op}({col})"),
                _ => format!("{op}({col})::float8"),
            };
            format!("'{}', {expr}", column.name.replace('\'', "''"))
        })
        .collect();
    // jsonb_build_object takes at most 100 arguments: build in chunks and concatenate.
    let objects: Vec<String> = pairs
        .chunks(50)
        .map(|chunk| format!("jsonb_build_object({})", chunk.join(", ")))
        .collect();
    let object = if objects.is_empty() {
        "'{}'::jsonb".to_owned()
    } else {
        objects.join(" || ")
    };
    Ok((format!("SELECT {object} FROM ({inner}) AS \"_r\""), params))
}

fn filtered(
    table: &Table,
    args: &SelectArgs,
    params: &mut Params,
    path: &str,
) -> Result<String, HasuraError> {
    let mut sql = String::from("SELECT ");
    if !args.distinct_on.is_empty() {
        let cols: Vec<String> = args
            .distinct_on
            .iter()
            .map(|c| super::column_ref(c))
            .collect();
        sql.push_str(&format!("DISTINCT ON ({}) ", cols.join(", ")));
    }
    sql.push_str(&format!("{ALIAS}.* FROM {} AS {ALIAS}", table.sql_name()));
    if let Some(filter) = args.filter.as_ref().filter(|f| !f.is_null()) {
        let cond = bool_exp(table, filter, params, &format!("{path}.args.where"))?;
        sql.push_str(&format!(" WHERE {cond}"));
    }
    let order = order_by(
        table,
        args.order_by.as_ref(),
        &format!("{path}.args.order_by"),
    )?;
    if !args.distinct_on.is_empty() && !order.is_empty() {
        let leading: std::collections::BTreeSet<&str> = order
            .iter()
            .take(args.distinct_on.len())
            .map(|(c, _)| c.as_str())
            .collect();
        let wanted: std::collections::BTreeSet<&str> =
            args.distinct_on.iter().map(String::as_str).collect();
        if leading != wanted {
            return Err(HasuraError::validation(
                format!("{path}.args"),
                "\"distinct_on\" columns must match initial \"order_by\" columns",
            ));
        }
    }
    if !order.is_empty() {
        let terms: Vec<String> = order
            .iter()
            .map(|(c, dir)| format!("{} {dir}", super::column_ref(c)))
            .collect();
        sql.push_str(&format!(" ORDER BY {}", terms.join(", ")));
    }
    if let Some(limit) = args.limit {
        sql.push_str(&format!(" LIMIT {}", params.bind(limit)));
    }
    if let Some(offset) = args.offset {
        sql.push_str(&format!(" OFFSET {}", params.bind(offset)));
    }
    Ok(sql)
}

/// `order_by` as (column, SQL direction) pairs, in the order given.
fn order_by(
    table: &Table,
    value: Option<&Json>,
    path: &str,
) -> Result<Vec<(String, &'static str)>, HasuraError> {
    let items = match value {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    };
    let mut terms = Vec::new();
    for item in &items {
        let Json::Object(fields) = item else { continue };
        for (column, direction) in fields {
            if table.column(column).is_none() {
                return Err(HasuraError::validation(
                    format!("{path}.{column}"),
                    format!(
                        "field '{column}' not found in type: '{}_order_by'",
                        table.name
                    ),
                ));
            }
            let sql = match direction.as_str() {
                None => continue,
                Some("asc") | Some("asc_nulls_last") => "ASC NULLS LAST",
                Some("asc_nulls_first") => "ASC NULLS FIRST",
                Some("desc") | Some("desc_nulls_first") => "DESC NULLS FIRST",
                Some("desc_nulls_last") => "DESC NULLS LAST",
                Some(other) => {
                    return Err(HasuraError::validation(
                        format!("{path}.{column}"),
                        format!(
                            "expected one of the values ['asc', 'asc_nulls_first', 'asc_nulls_last', 'desc', 'desc_nulls_first', 'desc_nulls_last'] for type 'order_by', but found '{other}'"
                        ),
                    ));
                }
            };
            terms.push((column.clone(), sql));
        }
    }
    Ok(terms)
}

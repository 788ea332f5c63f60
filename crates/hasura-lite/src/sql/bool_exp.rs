//! Compiles a `<table>_bool_exp` argument into an SQL condition on the table alias.

use serde_json::{Map, Value as Json};

use super::{Params, column_ref};
use crate::catalog::{Column, Table};
use crate::error::HasuraError;

/// Compiles a boolean expression; an empty object is `true`, as in Hasura.
pub fn bool_exp(
    table: &Table,
    exp: &Json,
    params: &mut Params,
    path: &str,
) -> Result<String, HasuraError> {
    let Json::Object(fields) = exp else {
        return Err(HasuraError::validation(
            path,
            "expected an object for a boolean expression",
        ));
    };
    let mut parts = Vec::new();
    for (key, value) in fields {
        let field_path = format!("{path}.{key}");
        let part = match key.as_str() {
            "_and" => combine(table, value, params, &field_path, " AND ", "true")?,
            "_or" => combine(table, value, params, &field_path, " OR ", "false")?,
            "_not" => format!("NOT ({})", bool_exp(table, value, params, &field_path)?),
            name => {
                let column = table.column(name).ok_or_else(|| {
                    HasuraError::validation(
                        &field_path,
                        format!(
                            "field '{name}' not found in type: '{}_bool_exp'",
                            table.name
                        ),
                    )
                })?;
                comparison(
                    column,
                    &column_ref(&column.name),
                    value,
                    params,
                    &field_path,
                )?
            }
        };
        parts.push(part);
    }
    Ok(if parts.is_empty() {
        "true".to_owned()
    } else {
        parts.join(" AND ")
    })
}

fn combine(
    table: &Table,
    value: &Json,
    params: &mut Params,
    path: &str,
    joiner: &str,
    empty: &str,
) -> Result<String, HasuraError> {
    // GraphQL input coercion lets a single object stand for a one-element list.
    let items = match value {
        Json::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        parts.push(format!(
            "({})",
            bool_exp(table, item, params, &format!("{path}[{i}]"))?
        ));
    }
    Ok(if parts.is_empty() {
        empty.to_owned()
    } else {
        format!("({})", parts.join(joiner))
    })
}

fn comparison(
    column: &Column,
    col: &str,
    ops: &Json,
    params: &mut Params,
    path: &str,
) -> Result<String, HasuraError> {
    let Json::Object(ops) = ops else {
        return Err(HasuraError::validation(
            path,
            "expected an object for a comparison expression",
        ));
    };
    let mut parts = Vec::new();
    for (op, value) in ops {
        let op_path = format!("{path}.{op}");
        if value.is_null() {
            return Err(HasuraError::validation(
                op_path,
                format!("unexpected null value for type '{}'", column.scalar()),
            ));
        }
        let part = match op.as_str() {
            "_is_null" => {
                if value.as_bool() == Some(true) {
                    format!("{col} IS NULL")
                } else {
                    format!("{col} IS NOT NULL")
                }
            }
            "_in" | "_nin" => {
                let list = list_of(value);
                let array = params.bind_list(column, &list);
                if op == "_in" {
                    format!("{col} = ANY({array})")
                } else {
                    format!("NOT ({col} = ANY({array}))")
                }
            }
            "_cast" => {
                // jsonb_cast_exp: compare the column cast to another type (only String).
                let Json::Object(casts) = value else {
                    return Err(HasuraError::validation(
                        op_path,
                        "expected an object for type 'jsonb_cast_exp'",
                    ));
                };
                let mut cast_parts = Vec::new();
                for (target, target_ops) in casts {
                    if target != "String" {
                        return Err(HasuraError::validation(
                            format!("{op_path}.{target}"),
                            format!(
                                "field '{target}' not found in type: '{}_cast_exp'",
                                column.scalar()
                            ),
                        ));
                    }
                    let as_text = Column {
                        name: column.name.clone(),
                        type_name: "text".to_owned(),
                        sql_type: "text".to_owned(),
                        not_null: column.not_null,
                        comment: None,
                    };
                    let cast = format!("({col})::text");
                    cast_parts.push(comparison(
                        &as_text,
                        &cast,
                        target_ops,
                        params,
                        &format!("{op_path}.{target}"),
                    )?);
                }
                if cast_parts.is_empty() {
                    "true".to_owned()
                } else {
                    cast_parts.join(" AND ")
                }
            }
            "_has_key" => {
                let key = params.bind(value.as_str().map(str::to_owned));
                format!("{col} ? {key}::text")
            }
            "_has_keys_all" | "_has_keys_any" => {
                let keys = string_list(value);
                let keys = params.bind(keys);
                let operator = if op == "_has_keys_all" { "?&" } else { "?|" };
                format!("{col} {operator} {keys}::text[]")
            }
            other => {
                let operator = binary_operator(other).ok_or_else(|| {
                    HasuraError::validation(
                        &op_path,
                        format!(
                            "field '{other}' not found in type: '{}_comparison_exp'",
                            column.scalar()
                        ),
                    )
                })?;
                let operand = params.bind_value(column, value);
                format!("{col} {operator} {operand}")
            }
        };
        parts.push(part);
    }
    Ok(if parts.is_empty() {
        "true".to_owned()
    } else {
        parts.join(" AND ")
    })
}

fn binary_operator(op: &str) -> Option<&'static str> {
    Some(match op {
        "_eq" => "=",
        "_neq" => "<>",
        "_gt" => ">",
        "_gte" => ">=",
        "_lt" => "<",
        "_lte" => "<=",
        "_like" => "LIKE",
        "_nlike" => "NOT LIKE",
        "_ilike" => "ILIKE",
        "_nilike" => "NOT ILIKE",
        "_similar" => "SIMILAR TO",
        "_nsimilar" => "NOT SIMILAR TO",
        "_regex" => "~",
        "_nregex" => "!~",
        "_iregex" => "~*",
        "_niregex" => "!~*",
        "_contains" => "@>",
        "_contained_in" => "<@",
        _ => return None,
    })
}

fn list_of(value: &Json) -> Vec<Json> {
    match value {
        Json::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn string_list(value: &Json) -> Vec<String> {
    list_of(value)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Reads an object argument, treating `null`/absent as empty.
pub(crate) fn object_or_empty(value: Option<&Json>) -> Map<String, Json> {
    match value {
        Some(Json::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

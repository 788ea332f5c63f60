//! `INSERT` (with `ON CONFLICT`), `UPDATE` and `DELETE`. Each statement returns one row:
//! the `bigint` number of rows PostgreSQL changed (rows a trigger skipped are not
//! returned, so not counted), a `json` array of those rows, and whether every changed
//! row passed the permission check (see [`Guard`]).

use serde_json::{Map, Value as Json};

use super::{ALIAS, Params, bool_exp, column_ref};
use crate::catalog::{Table, quote_ident};
use crate::error::HasuraError;

/// What an insert does on conflict.
#[derive(Debug, Clone)]
pub struct OnConflict {
    /// Constraint name (validated against the catalog here).
    pub constraint: String,
    /// Columns to overwrite from the proposed row; empty means `DO NOTHING`.
    pub update_columns: Vec<String>,
    /// Condition on the existing row for the update to happen.
    pub filter: Option<Json>,
    /// Column presets the update writes besides `update_columns` (none when those are
    /// empty: that is `DO NOTHING`).
    pub preset: Map<String, Json>,
}

/// What a role's permissions add to a write: checks evaluated on each written row as
/// PostgreSQL returns it. `None` is `true` (admin). As in Hasura, `returning` is not
/// narrowed by the role's select filter, only by its select columns (in the types).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Inserted rows must satisfy it (the insert permission's `check`).
    pub insert_check: Option<Json>,
    /// Updated rows must satisfy it afterwards (the update permission's `check`).
    pub update_check: Option<Json>,
}

impl Guard {
    /// The `RETURNING` list: the row and whether it passed `check`.
    fn returning(
        &self,
        table: &Table,
        check: Option<&Json>,
        params: &mut Params,
        path: &str,
    ) -> Result<String, HasuraError> {
        let ok = condition(table, check, params, path)?;
        Ok(format!(" RETURNING {ALIAS} AS \"_row\", ({ok}) AS \"_ok\""))
    }

    /// The check of an insert: with an upsert, rows PostgreSQL updated instead (their
    /// `xmax` is set) take the update check, as in Hasura.
    fn insert_returning(
        &self,
        table: &Table,
        upsert: bool,
        params: &mut Params,
        path: &str,
    ) -> Result<String, HasuraError> {
        if !upsert || self.insert_check == self.update_check {
            return self.returning(table, self.insert_check.as_ref(), params, path);
        }
        let inserted = condition(table, self.insert_check.as_ref(), params, path)?;
        let updated = condition(table, self.update_check.as_ref(), params, path)?;
        let check = format!("CASE WHEN {ALIAS}.xmax = 0 THEN {inserted} ELSE {updated} END");
        Ok(format!(
            " RETURNING {ALIAS} AS \"_row\", ({check}) AS \"_ok\""
        ))
    }
}

fn condition(
    table: &Table,
    exp: Option<&Json>,
    params: &mut Params,
    path: &str,
) -> Result<String, HasuraError> {
    match exp {
        None => Ok("true".to_owned()),
        Some(exp) => Ok(format!("({})", bool_exp(table, exp, params, path)?)),
    }
}

/// Insert statements for `objects`: one per distinct set of provided columns, so that
/// missing columns take their DEFAULT. Each statement reads its rows from one `jsonb`
/// parameter with `jsonb_to_recordset`.
pub fn insert(
    table: &Table,
    objects: Vec<Map<String, Json>>,
    on_conflict: Option<&OnConflict>,
    guard: &Guard,
    with_rows: bool,
    path: &str,
) -> Result<Vec<(String, Params)>, HasuraError> {
    let upsert = on_conflict.is_some_and(|oc| !oc.update_columns.is_empty());
    let conflict = |params: &mut Params| match on_conflict {
        None => Ok(String::new()),
        Some(oc) => conflict_clause(table, oc, params, path),
    };
    // Group objects by their key set, keeping first-seen order of the groups.
    let mut groups: Vec<(Vec<String>, Vec<Json>)> = Vec::new();
    for (i, object) in objects.into_iter().enumerate() {
        for key in object.keys() {
            if table.column(key).is_none() {
                return Err(HasuraError::validation(
                    format!("{path}[{i}].{key}"),
                    format!(
                        "field '{key}' not found in type: '{}_insert_input'",
                        table.name
                    ),
                ));
            }
        }
        let mut keys: Vec<String> = object.keys().cloned().collect();
        keys.sort();
        match groups.iter_mut().find(|(k, _)| *k == keys) {
            Some((_, rows)) => rows.push(Json::Object(object)),
            None => groups.push((keys, vec![Json::Object(object)])),
        }
    }
    let mut statements = Vec::new();
    for (keys, rows) in groups {
        if keys.is_empty() {
            for _ in &rows {
                let mut params = Params::default();
                let conflict_sql = conflict(&mut params)?;
                let returning = guard.insert_returning(table, upsert, &mut params, path)?;
                let sql = format!(
                    "INSERT INTO {} AS {ALIAS} DEFAULT VALUES{conflict_sql}{returning}",
                    table.sql_name()
                );
                statements.push((wrap(&sql, with_rows), params));
            }
            continue;
        }
        let mut params = Params::default();
        let rows_param = params.bind(Json::Array(rows));
        let names: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
        let record: Vec<String> = keys
            .iter()
            .map(|k| {
                let column = table.column(k).expect("key checked above");
                format!("{} {}", quote_ident(k), column.sql_type)
            })
            .collect();
        let conflict_sql = conflict(&mut params)?;
        let returning = guard.insert_returning(table, upsert, &mut params, path)?;
        let sql = format!(
            "INSERT INTO {table} AS {ALIAS} ({names}) SELECT {names} FROM jsonb_to_recordset({rows_param}::jsonb) AS \"_x\"({record}){conflict_sql}{returning}",
            table = table.sql_name(),
            names = names.join(", "),
            record = record.join(", "),
        );
        statements.push((wrap(&sql, with_rows), params));
    }
    Ok(statements)
}

fn conflict_clause(
    table: &Table,
    oc: &OnConflict,
    params: &mut Params,
    path: &str,
) -> Result<String, HasuraError> {
    if !table
        .unique_constraints
        .iter()
        .any(|c| c.name == oc.constraint)
    {
        return Err(HasuraError::validation(
            format!("{path}.on_conflict.constraint"),
            format!(
                "constraint '{}' not found on table '{}'",
                oc.constraint, table.name
            ),
        ));
    }
    let target = format!(" ON CONFLICT ON CONSTRAINT {}", quote_ident(&oc.constraint));
    if oc.update_columns.is_empty() {
        return Ok(format!("{target} DO NOTHING"));
    }
    let mut sets: Vec<String> = oc
        .update_columns
        .iter()
        .filter(|c| !oc.preset.contains_key(*c))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    for (name, value) in &oc.preset {
        let column = table
            .column(name)
            .ok_or_else(|| unknown_column(table, name, path))?;
        sets.push(format!(
            "{} = {}",
            quote_ident(name),
            params.bind_value(column, value)
        ));
    }
    let mut clause = format!("{target} DO UPDATE SET {}", sets.join(", "));
    if let Some(filter) = oc.filter.as_ref().filter(|f| !f.is_null()) {
        // The WHERE of ON CONFLICT DO UPDATE sees the existing row under the target alias.
        let cond = bool_exp(table, filter, params, &format!("{path}.on_conflict.where"))?;
        clause.push_str(&format!(" WHERE {cond}"));
    }
    Ok(clause)
}

/// The update operators of `update_t`, `update_t_by_pk` and each of `update_t_many`,
/// each mapping column names to values.
#[derive(Debug, Clone, Default)]
pub struct UpdateOps {
    /// `_set`: assign.
    pub set: Map<String, Json>,
    /// `_inc`: add to a numeric column.
    pub inc: Map<String, Json>,
    /// `_append`: `jsonb || value`.
    pub append: Map<String, Json>,
    /// `_prepend`: `value || jsonb`.
    pub prepend: Map<String, Json>,
    /// `_delete_key`: `jsonb - key`.
    pub delete_key: Map<String, Json>,
    /// `_delete_elem`: `jsonb - index`.
    pub delete_elem: Map<String, Json>,
    /// `_delete_at_path`: `jsonb #- path`.
    pub delete_at_path: Map<String, Json>,
}

/// `UPDATE ... SET` from the update operators.
pub fn update(
    table: &Table,
    filter: &Json,
    ops: &UpdateOps,
    guard: &Guard,
    with_rows: bool,
    path: &str,
) -> Result<(String, Params), HasuraError> {
    let mut params = Params::default();
    let mut assignments = Vec::new();
    let operators: [(&str, &Map<String, Json>); 7] = [
        ("_set", &ops.set),
        ("_inc", &ops.inc),
        ("_append", &ops.append),
        ("_prepend", &ops.prepend),
        ("_delete_key", &ops.delete_key),
        ("_delete_elem", &ops.delete_elem),
        ("_delete_at_path", &ops.delete_at_path),
    ];
    for (operator, values) in operators {
        for (name, value) in values {
            let allowed = table.column(name).filter(|c| match operator {
                "_set" => true,
                "_inc" => c.is_numeric(),
                _ => c.type_name == "jsonb",
            });
            let Some(column) = allowed else {
                return Err(HasuraError::validation(
                    format!("{path}.args.{operator}.{name}"),
                    format!(
                        "field '{name}' not found in type: '{}{operator}_input'",
                        table.name
                    ),
                ));
            };
            let current = column_ref(name);
            let expr = match operator {
                "_set" => params.bind_value(column, value),
                "_inc" => format!("{current} + {}", params.bind_value(column, value)),
                "_append" => format!("{current} || {}", params.bind_value(column, value)),
                "_prepend" => format!("{} || {current}", params.bind_value(column, value)),
                "_delete_key" => format!(
                    "{current} - {}::text",
                    params.bind(value.as_str().map(str::to_owned))
                ),
                "_delete_elem" => format!(
                    "{current} - {}::integer",
                    params.bind(value.as_i64().map(|i| i as i32))
                ),
                _ => {
                    let keys: Vec<String> = match value {
                        Json::Array(items) => items
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect(),
                        Json::String(one) => vec![one.clone()],
                        _ => Vec::new(),
                    };
                    format!("{current} #- {}::text[]", params.bind(keys))
                }
            };
            assignments.push(format!("{} = {expr}", quote_ident(name)));
        }
    }
    let cond = bool_exp(table, filter, &mut params, &format!("{path}.args.where"))?;
    if assignments.is_empty() {
        // Nothing to write: no row changes and none is reported.
        return Ok((
            "SELECT 0::bigint, '[]'::json, true".to_owned(),
            Params::default(),
        ));
    }
    let returning = guard.returning(table, guard.update_check.as_ref(), &mut params, path)?;
    let sql = format!(
        "UPDATE {} AS {ALIAS} SET {} WHERE {cond}{returning}",
        table.sql_name(),
        assignments.join(", ")
    );
    Ok((wrap(&sql, with_rows), params))
}

/// `DELETE ... WHERE`.
pub fn delete(
    table: &Table,
    filter: &Json,
    guard: &Guard,
    with_rows: bool,
    path: &str,
) -> Result<(String, Params), HasuraError> {
    let mut params = Params::default();
    let cond = bool_exp(table, filter, &mut params, &format!("{path}.args.where"))?;
    let returning = guard.returning(table, None, &mut params, path)?;
    let sql = format!(
        "DELETE FROM {} AS {ALIAS} WHERE {cond}{returning}",
        table.sql_name()
    );
    Ok((wrap(&sql, with_rows), params))
}

/// Wraps a data-modifying statement (returning what [`Guard`] builds) so it returns
/// (count, rows as json, whether all rows passed the check).
fn wrap(statement: &str, with_rows: bool) -> String {
    let rows = if with_rows {
        "coalesce(json_agg(\"_row\"), '[]'::json)"
    } else {
        "'[]'::json"
    };
    format!(
        "WITH \"_w\" AS ({statement}) SELECT count(*)::bigint, {rows}, coalesce(bool_and(\"_ok\"), true) FROM \"_w\""
    )
}

fn unknown_column(table: &Table, name: &str, path: &str) -> HasuraError {
    HasuraError::validation(
        format!("{path}.{name}"),
        format!("field '{name}' not found in type: '{}'", table.name),
    )
}

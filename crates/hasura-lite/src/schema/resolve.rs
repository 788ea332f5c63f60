//! Resolvers: root fields turn their arguments into SQL (see `crate::sql`), run it on the
//! request's [`Session`] and hand rows (JSON objects built by PostgreSQL) to the type
//! fields, which only pick values out of them.

use std::sync::Arc;

use async_graphql::Value;
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, ResolverContext, TypeRef,
};
use serde_json::{Map, Value as Json};

use super::json_path::json_path;
use super::session::{MutationResult, Row, Session, rows_of};
use super::{SessionVariables, TableAccess, type_name};
use crate::catalog::{Column, Table};
use crate::error::{Code, HasuraError};
use crate::sql::{self, Guard, select::SelectArgs};

/// Hasura reports database errors of queries, updates and deletes at the request root;
/// only inserts point at their `objects`/`object` argument.
const DB_ERROR_PATH: &str = "$";

/// What `<t>_aggregate` hands to `aggregate`, `nodes` and `count`.
#[derive(Clone)]
struct AggregateSource {
    table: Arc<Table>,
    args: SelectArgs,
    path: String,
}

fn row_list(rows: Vec<Row>) -> FieldValue<'static> {
    FieldValue::list(rows.into_iter().map(FieldValue::owned_any))
}

/// `$.selectionSet.<response key>` for the field being resolved.
fn field_path(ctx: &ResolverContext<'_>) -> String {
    let field = ctx.ctx.field();
    format!("$.selectionSet.{}", field.alias().unwrap_or(field.name()))
}

fn arg(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<Json>> {
    match ctx.args.get(name) {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => Ok(Some(serde_json::to_value(v.as_value())?)),
    }
}

fn session<'a>(ctx: &'a ResolverContext<'_>) -> async_graphql::Result<&'a Arc<Session>> {
    ctx.ctx.data::<Arc<Session>>()
}

fn select_args(ctx: &ResolverContext<'_>) -> async_graphql::Result<SelectArgs> {
    let distinct_on = match arg(ctx, "distinct_on")? {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Json::String(one)) => vec![one],
        _ => Vec::new(),
    };
    Ok(SelectArgs {
        filter: arg(ctx, "where")?,
        order_by: arg(ctx, "order_by")?,
        limit: arg(ctx, "limit")?.and_then(|v| v.as_i64()),
        offset: arg(ctx, "offset")?.and_then(|v| v.as_i64()),
        distinct_on,
    })
}

fn select_arguments(field: Field, name: &str) -> Field {
    field
        .argument(
            InputValue::new(
                "distinct_on",
                TypeRef::named_nn_list(format!("{name}_select_column")),
            )
            .description("distinct select on columns"),
        )
        .argument(
            InputValue::new("limit", TypeRef::named(TypeRef::INT))
                .description("limit the number of rows returned"),
        )
        .argument(
            InputValue::new("offset", TypeRef::named(TypeRef::INT))
                .description("skip the first n rows. Use only with order_by"),
        )
        .argument(
            InputValue::new(
                "order_by",
                TypeRef::named_nn_list(format!("{name}_order_by")),
            )
            .description("sort the rows by one or more columns"),
        )
        .argument(
            InputValue::new("where", TypeRef::named(format!("{name}_bool_exp")))
                .description("filter the rows returned"),
        )
}

/// Narrows a non-admin role's query to its select permission: the filter (with the
/// request's session variables) ANDed to `where`, and the permission's row limit.
fn restrict(
    ctx: &ResolverContext<'_>,
    access: Option<&TableAccess>,
    args: &mut SelectArgs,
) -> Result<(), HasuraError> {
    let Some(rule) = access.and_then(|a| a.select.as_ref()) else {
        return Ok(());
    };
    args.filter = Some(narrowed(ctx, args.filter.take(), &rule.filter)?);
    if let Some(max) = rule.limit {
        args.limit = Some(args.limit.map_or(max, |limit| limit.min(max)));
    }
    Ok(())
}

/// Replaces string values naming a session variable (`X-Hasura-User-Id`, any case) by the
/// variable's value; object keys (column names and operators) are left alone.
fn with_session_variables(
    filter: &Json,
    variables: Option<&SessionVariables>,
) -> Result<Json, HasuraError> {
    Ok(match filter {
        Json::String(name) if name.to_ascii_lowercase().starts_with("x-hasura-") => {
            let name = name.to_ascii_lowercase();
            let value = variables.and_then(|v| v.0.get(&name)).ok_or_else(|| {
                HasuraError::new(
                    Code::NotFound,
                    "$",
                    format!("missing session variable: \"{name}\""),
                )
            })?;
            Json::String(value.clone())
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| with_session_variables(item, variables))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), with_session_variables(v, variables)?)))
                .collect::<Result<_, HasuraError>>()?,
        ),
        other => other.clone(),
    })
}

/// Turns primary key arguments into `{col: {_eq: value}}`.
fn pk_filter(table: &Table, values: &Map<String, Json>) -> Json {
    let mut filter = Map::new();
    for key in &table.primary_key {
        let value = values.get(key).cloned().unwrap_or(Json::Null);
        filter.insert(key.clone(), serde_json::json!({ "_eq": value }));
    }
    Json::Object(filter)
}

fn pk_args(ctx: &ResolverContext<'_>, table: &Table) -> async_graphql::Result<Map<String, Json>> {
    let mut values = Map::new();
    for key in &table.primary_key {
        values.insert(key.clone(), arg(ctx, key)?.unwrap_or(Json::Null));
    }
    Ok(values)
}

fn with_pk_arguments(mut field: Field, table: &Table) -> Field {
    for key in &table.primary_key {
        let column = table
            .column(key)
            .expect("primary key columns are table columns");
        field = field.argument(InputValue::new(key, TypeRef::named_nn(column.scalar())));
    }
    field
}

/// The root query fields of one table; `access` narrows them to a non-admin role's
/// select permission (admin: `None`).
pub fn query_fields(table: &Arc<Table>, access: Option<Arc<TableAccess>>) -> Vec<(String, Field)> {
    let name = type_name(table);
    let quoted = super::quoted_table(table);
    let mut fields = Vec::new();

    let list = root_field(
        name.clone(),
        TypeRef::named_nn_list_nn(&name),
        table,
        &access,
        |ctx, table, access| {
            FieldFuture::new(async move {
                let path = field_path(&ctx);
                let mut args = select_args(&ctx)?;
                restrict(&ctx, access.as_deref(), &mut args)?;
                let (sql, params) = sql::select(&table, &args, &path)?;
                let row = session(&ctx)?
                    .query_one(&sql, &params, DB_ERROR_PATH)
                    .await?;
                Ok(Some(row_list(rows_of(row.get(0)))))
            })
        },
    )
    .description(format!("fetch data from the table: {quoted}"));
    fields.push((name.clone(), select_arguments(list, &name)));

    let aggregates = access.as_deref().is_none_or(|a| {
        a.select
            .as_ref()
            .is_some_and(|rule| rule.allow_aggregations)
    });
    if aggregates {
        let aggregate = root_field(
            format!("{name}_aggregate"),
            TypeRef::named_nn(format!("{name}_aggregate")),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let mut args = select_args(&ctx)?;
                    restrict(&ctx, access.as_deref(), &mut args)?;
                    let source = AggregateSource {
                        table,
                        args,
                        path: field_path(&ctx),
                    };
                    Ok(Some(FieldValue::owned_any(source)))
                })
            },
        )
        .description(format!("fetch aggregated fields from the table: {quoted}"));
        fields.push((
            format!("{name}_aggregate"),
            select_arguments(aggregate, &name),
        ));
    }

    if !table.primary_key.is_empty() && access.as_deref().is_none_or(|a| a.pk_visible(table)) {
        let by_pk = root_field(
            format!("{name}_by_pk"),
            TypeRef::named(&name),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let path = field_path(&ctx);
                    let mut args = SelectArgs {
                        filter: Some(pk_filter(&table, &pk_args(&ctx, &table)?)),
                        ..Default::default()
                    };
                    restrict(&ctx, access.as_deref(), &mut args)?;
                    let (sql, params) = sql::select(&table, &args, &path)?;
                    let row = session(&ctx)?
                        .query_one(&sql, &params, DB_ERROR_PATH)
                        .await?;
                    Ok(rows_of(row.get(0))
                        .into_iter()
                        .next()
                        .map(FieldValue::owned_any))
                })
            },
        )
        .description(format!(
            "fetch data from the table: {quoted} using primary key columns"
        ));
        fields.push((format!("{name}_by_pk"), with_pk_arguments(by_pk, table)));
    }
    fields
}

fn objects_arg(value: Option<Json>) -> Vec<Row> {
    match value {
        Some(Json::Array(items)) => rows_of(Json::Array(items)),
        Some(Json::Object(one)) => vec![one],
        _ => Vec::new(),
    }
}

fn on_conflict_arg(
    ctx: &ResolverContext<'_>,
) -> async_graphql::Result<Option<sql::mutate::OnConflict>> {
    let Some(Json::Object(oc)) = arg(ctx, "on_conflict")? else {
        return Ok(None);
    };
    let update_columns = match oc.get("update_columns") {
        Some(Json::Array(cols)) => cols
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect(),
        Some(Json::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(Some(sql::mutate::OnConflict {
        constraint: oc
            .get("constraint")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        update_columns,
        filter: oc.get("where").filter(|w| !w.is_null()).cloned(),
        preset: Map::new(),
    }))
}

fn wants_returning(ctx: &ResolverContext<'_>) -> bool {
    ctx.ctx.look_ahead().field("returning").exists()
}

/// Hasura's only `<t>_update_column` value for a role that may update no column: it keeps
/// `on_conflict` (with `update_columns: []`, i.e. `DO NOTHING`) usable.
pub const PLACEHOLDER: &str = "_PLACEHOLDER";

/// A permission's expression or preset with the request's session variables filled in.
fn session_value(ctx: &ResolverContext<'_>, value: &Json) -> Result<Json, HasuraError> {
    with_session_variables(value, ctx.ctx.data_opt::<SessionVariables>())
}

fn presets(
    ctx: &ResolverContext<'_>,
    set: &Map<String, Json>,
) -> Result<Map<String, Json>, HasuraError> {
    set.iter()
        .map(|(column, value)| Ok((column.clone(), session_value(ctx, value)?)))
        .collect()
}

/// A request's `where` narrowed by a permission's filter.
fn narrowed(
    ctx: &ResolverContext<'_>,
    filter: Option<Json>,
    permission: &Json,
) -> Result<Json, HasuraError> {
    let permission = session_value(ctx, permission)?;
    Ok(match filter {
        Some(filter) => serde_json::json!({ "_and": [filter, permission] }),
        None => permission,
    })
}

/// The conditions a role's writes on the table must meet (none for admin).
fn guard(ctx: &ResolverContext<'_>, access: Option<&TableAccess>) -> Result<Guard, HasuraError> {
    let Some(access) = access else {
        return Ok(Guard::default());
    };
    let value = |v: &Json| session_value(ctx, v);
    Ok(Guard {
        insert_check: access
            .insert
            .as_ref()
            .map(|r| value(&r.check))
            .transpose()?,
        update_check: access
            .update
            .as_ref()
            .and_then(|r| r.check.as_ref())
            .map(value)
            .transpose()?,
    })
}

/// `insert_<t>` and `insert_<t>_one`: the objects of `objects_arg` with the role's presets,
/// an upsert limited by its update permission, every row checked.
async fn insert(
    ctx: &ResolverContext<'_>,
    table: &Table,
    access: Option<&TableAccess>,
    objects_arg_name: &str,
    with_rows: bool,
) -> async_graphql::Result<MutationResult> {
    let path = field_path(ctx);
    let objects_path = format!("{path}.args.{objects_arg_name}");
    let mut objects = objects_arg(arg(ctx, objects_arg_name)?);
    let mut on_conflict = on_conflict_arg(ctx)?;
    if let Some(access) = access {
        if let Some(rule) = &access.insert {
            let preset = presets(ctx, &rule.set)?;
            for object in &mut objects {
                object.extend(preset.clone());
            }
        }
        if let Some(oc) = &mut on_conflict {
            if oc.update_columns.iter().any(|c| c == PLACEHOLDER) {
                return Err(HasuraError::validation(
                    format!("{path}.args.on_conflict.update_columns"),
                    "erroneous column name",
                )
                .into());
            }
            if let Some(rule) = &access.update {
                oc.filter = Some(narrowed(ctx, oc.filter.take(), &rule.filter)?);
                oc.preset = presets(ctx, &rule.set)?;
            }
        }
    }
    let statements = sql::insert(
        table,
        objects,
        on_conflict.as_ref(),
        &guard(ctx, access)?,
        with_rows,
        &objects_path,
    )?;
    Ok(session(ctx)?.mutate(statements, &objects_path).await?)
}

/// One update (`update_<t>`, `_by_pk`, an item of `_many`) within the role's permission:
/// its filter narrows `filter`, its presets join `_set`, its check applies.
async fn update(
    ctx: &ResolverContext<'_>,
    table: &Table,
    access: Option<&TableAccess>,
    filter: Option<Json>,
    mut ops: sql::mutate::UpdateOps,
    with_rows: bool,
    path: &str,
) -> async_graphql::Result<MutationResult> {
    let filter = match access.and_then(|a| a.update.as_ref()) {
        Some(rule) => {
            ops.set.extend(presets(ctx, &rule.set)?);
            narrowed(ctx, filter, &rule.filter)?
        }
        None => filter.unwrap_or_else(|| Json::Object(Map::new())),
    };
    let statement = sql::update(table, &filter, &ops, &guard(ctx, access)?, with_rows, path)?;
    Ok(session(ctx)?.mutate(vec![statement], DB_ERROR_PATH).await?)
}

/// `delete_<t>` and `delete_<t>_by_pk` within the role's delete filter.
async fn delete(
    ctx: &ResolverContext<'_>,
    table: &Table,
    access: Option<&TableAccess>,
    filter: Option<Json>,
    with_rows: bool,
) -> async_graphql::Result<MutationResult> {
    let filter = match access.and_then(|a| a.delete.as_ref()) {
        Some(rule) => narrowed(ctx, filter, &rule.filter)?,
        None => filter.unwrap_or_else(|| Json::Object(Map::new())),
    };
    let statement = sql::delete(
        table,
        &filter,
        &guard(ctx, access)?,
        with_rows,
        &field_path(ctx),
    )?;
    Ok(session(ctx)?.mutate(vec![statement], DB_ERROR_PATH).await?)
}

/// A root field over `table` whose resolver gets its own handle on the table and on the
/// role's access.
fn root_field<F>(
    name: String,
    ty: TypeRef,
    table: &Arc<Table>,
    access: &Option<Arc<TableAccess>>,
    resolve: F,
) -> Field
where
    F: for<'a> Fn(ResolverContext<'a>, Arc<Table>, Option<Arc<TableAccess>>) -> FieldFuture<'a>
        + Send
        + Sync
        + 'static,
{
    let (table, access) = (table.clone(), access.clone());
    Field::new(name, ty, move |ctx| {
        resolve(ctx, table.clone(), access.clone())
    })
}

fn first_row(result: MutationResult) -> Option<FieldValue<'static>> {
    result
        .returning
        .into_iter()
        .next()
        .map(FieldValue::owned_any)
}

/// The root mutation fields of one table; `access` limits them to a role's insert, update
/// and delete permissions (admin: `None`). As in Hasura, the fields answering a row
/// (`insert_<t>_one`, `_by_pk`) also need select permission, on every key column for
/// `_by_pk`.
pub fn mutation_fields(
    table: &Arc<Table>,
    access: Option<Arc<TableAccess>>,
) -> Vec<(String, Field)> {
    let name = type_name(table);
    let quoted = super::quoted_table(table);
    let response = format!("{name}_mutation_response");
    let allowed = |kind: fn(&TableAccess) -> bool| access.as_deref().is_none_or(kind);
    let can_select = allowed(|a| a.select.is_some());
    let by_pk =
        !table.primary_key.is_empty() && access.as_deref().is_none_or(|a| a.pk_visible(table));
    let mut fields = Vec::new();

    if allowed(|a| a.insert.is_some()) {
        let with_conflict = |field: Field| {
            if table.unique_constraints.is_empty() {
                field
            } else {
                field.argument(
                    InputValue::new("on_conflict", TypeRef::named(format!("{name}_on_conflict")))
                        .description("upsert condition"),
                )
            }
        };
        let insert_many = root_field(
            format!("insert_{name}"),
            TypeRef::named(&response),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let with_rows = wants_returning(&ctx);
                    let result =
                        insert(&ctx, &table, access.as_deref(), "objects", with_rows).await?;
                    Ok(Some(FieldValue::owned_any(result)))
                })
            },
        )
        .description(format!("insert data into the table: {quoted}"))
        .argument(
            InputValue::new(
                "objects",
                TypeRef::named_nn_list_nn(format!("{name}_insert_input")),
            )
            .description("the rows to be inserted"),
        );
        fields.push((format!("insert_{name}"), with_conflict(insert_many)));

        if can_select {
            let insert_one = root_field(
                format!("insert_{name}_one"),
                TypeRef::named(&name),
                table,
                &access,
                |ctx, table, access| {
                    FieldFuture::new(async move {
                        let result =
                            insert(&ctx, &table, access.as_deref(), "object", true).await?;
                        Ok(first_row(result))
                    })
                },
            )
            .description(format!("insert a single row into the table: {quoted}"))
            .argument(
                InputValue::new("object", TypeRef::named_nn(format!("{name}_insert_input")))
                    .description("the row to be inserted"),
            );
            fields.push((format!("insert_{name}_one"), with_conflict(insert_one)));
        }
    }

    if allowed(|a| a.update.is_some()) {
        let updatable = match access.as_deref().and_then(|a| a.updatable(table)) {
            Some(view) => view,
            None => Table::clone(table),
        };
        let mut update_many_rows = root_field(
            format!("update_{name}"),
            TypeRef::named(&response),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let path = field_path(&ctx);
                    let ops = update_ops(&all_args(&ctx)?);
                    let with_rows = wants_returning(&ctx);
                    let filter = arg(&ctx, "where")?;
                    let result = update(
                        &ctx,
                        &table,
                        access.as_deref(),
                        filter,
                        ops,
                        with_rows,
                        &path,
                    )
                    .await?;
                    Ok(Some(FieldValue::owned_any(result)))
                })
            },
        )
        .description(format!("update data of the table: {quoted}"))
        .argument(
            InputValue::new("where", TypeRef::named_nn(format!("{name}_bool_exp")))
                .description("filter the rows which have to be updated"),
        );
        for argument in update_arguments(&updatable) {
            update_many_rows = update_many_rows.argument(argument);
        }
        fields.push((format!("update_{name}"), update_many_rows));

        let update_many = root_field(
            format!("update_{name}_many"),
            TypeRef::named_list(&response),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let path = field_path(&ctx);
                    let updates = match arg(&ctx, "updates")? {
                        Some(Json::Array(items)) => rows_of(Json::Array(items)),
                        Some(Json::Object(one)) => vec![one],
                        _ => Vec::new(),
                    };
                    let with_rows = wants_returning(&ctx);
                    let mut results = Vec::with_capacity(updates.len());
                    for (i, item) in updates.iter().enumerate() {
                        let item_path = format!("{path}.args.updates[{i}]");
                        let filter = item.get("where").filter(|w| !w.is_null()).cloned();
                        let ops = update_ops(item);
                        results.push(
                            update(
                                &ctx,
                                &table,
                                access.as_deref(),
                                filter,
                                ops,
                                with_rows,
                                &item_path,
                            )
                            .await?,
                        );
                    }
                    Ok(Some(FieldValue::list(
                        results.into_iter().map(FieldValue::owned_any),
                    )))
                })
            },
        )
        .description(format!("update multiples rows of table: {quoted}"))
        .argument(
            InputValue::new(
                "updates",
                TypeRef::named_nn_list_nn(format!("{name}_updates")),
            )
            .description("updates to execute, in order"),
        );
        fields.push((format!("update_{name}_many"), update_many));

        if by_pk {
            let mut update_by_pk = root_field(
                format!("update_{name}_by_pk"),
                TypeRef::named(&name),
                table,
                &access,
                |ctx, table, access| {
                    FieldFuture::new(async move {
                        let path = field_path(&ctx);
                        let keys = sql::object_or_empty(arg(&ctx, "pk_columns")?.as_ref());
                        let filter = Some(pk_filter(&table, &keys));
                        let ops = update_ops(&all_args(&ctx)?);
                        let result =
                            update(&ctx, &table, access.as_deref(), filter, ops, true, &path)
                                .await?;
                        Ok(first_row(result))
                    })
                },
            )
            .description(format!("update single row of the table: {quoted}"))
            .argument(InputValue::new(
                "pk_columns",
                TypeRef::named_nn(format!("{name}_pk_columns_input")),
            ));
            for argument in update_arguments(&updatable) {
                update_by_pk = update_by_pk.argument(argument);
            }
            fields.push((format!("update_{name}_by_pk"), update_by_pk));
        }
    }

    if allowed(|a| a.delete.is_some()) {
        let delete_rows = root_field(
            format!("delete_{name}"),
            TypeRef::named(&response),
            table,
            &access,
            |ctx, table, access| {
                FieldFuture::new(async move {
                    let filter = arg(&ctx, "where")?;
                    let with_rows = wants_returning(&ctx);
                    let result = delete(&ctx, &table, access.as_deref(), filter, with_rows).await?;
                    Ok(Some(FieldValue::owned_any(result)))
                })
            },
        )
        .description(format!("delete data from the table: {quoted}"))
        .argument(
            InputValue::new("where", TypeRef::named_nn(format!("{name}_bool_exp")))
                .description("filter the rows which have to be deleted"),
        );
        fields.push((format!("delete_{name}"), delete_rows));

        if by_pk {
            let delete_by_pk = root_field(
                format!("delete_{name}_by_pk"),
                TypeRef::named(&name),
                table,
                &access,
                |ctx, table, access| {
                    FieldFuture::new(async move {
                        let filter = Some(pk_filter(&table, &pk_args(&ctx, &table)?));
                        let result = delete(&ctx, &table, access.as_deref(), filter, true).await?;
                        Ok(first_row(result))
                    })
                },
            )
            .description(format!("delete single row from the table: {quoted}"));
            fields.push((
                format!("delete_{name}_by_pk"),
                with_pk_arguments(delete_by_pk, table),
            ));
        }
    }
    fields
}

/// The update operators a table offers besides `_set`: `_inc` with numeric columns, the
/// jsonb operators with jsonb columns, as Hasura does.
pub(crate) fn update_operators(table: &Table) -> Vec<(&'static str, &'static str)> {
    let mut operators = Vec::new();
    if table.columns.iter().any(Column::is_numeric) {
        operators.push((
            "_inc",
            "increments the numeric columns with given value of the filtered values",
        ));
    }
    if table.columns.iter().any(|c| c.type_name == "jsonb") {
        operators.extend(JSONB_OPERATORS);
    }
    operators
}

/// Hasura's jsonb update operators and their descriptions.
pub(crate) const JSONB_OPERATORS: [(&str, &str); 5] = [
    (
        "_append",
        "append existing jsonb value of filtered columns with new jsonb value",
    ),
    (
        "_delete_at_path",
        "delete the field or element with specified path (for JSON arrays, negative integers count from the end)",
    ),
    (
        "_delete_elem",
        "delete the array element with specified index (negative integers count from the end). throws an error if top level container is not an array",
    ),
    (
        "_delete_key",
        "delete key/value pair or string element. key/value pairs are matched based on their key value",
    ),
    (
        "_prepend",
        "prepend existing jsonb value of filtered columns with new jsonb value",
    ),
];

/// `_set` and the other update operators over `updatable`'s columns.
fn update_arguments(updatable: &Table) -> Vec<InputValue> {
    let name = type_name(updatable);
    let mut arguments: Vec<InputValue> = update_operators(updatable)
        .into_iter()
        .map(|(op, desc)| {
            InputValue::new(op, TypeRef::named(format!("{name}{op}_input"))).description(desc)
        })
        .collect();
    if !updatable.columns.is_empty() {
        arguments.push(
            InputValue::new("_set", TypeRef::named(format!("{name}_set_input")))
                .description("sets the columns of the filtered rows to the given values"),
        );
    }
    arguments
}

fn all_args(ctx: &ResolverContext<'_>) -> async_graphql::Result<Map<String, Json>> {
    let mut map = Map::new();
    for (name, value) in ctx.args.iter() {
        map.insert(name.to_string(), serde_json::to_value(value.as_value())?);
    }
    Ok(map)
}

/// Reads the update operators out of an argument map (`update_t`) or an `updates` item.
fn update_ops(args: &Map<String, Json>) -> sql::mutate::UpdateOps {
    let get = |key: &str| sql::object_or_empty(args.get(key));
    sql::mutate::UpdateOps {
        set: get("_set"),
        inc: get("_inc"),
        append: get("_append"),
        prepend: get("_prepend"),
        delete_key: get("_delete_key"),
        delete_elem: get("_delete_elem"),
        delete_at_path: get("_delete_at_path"),
    }
}

/// A column of the row type; jsonb columns take Hasura's `path` argument.
pub fn column_field(column: &Column) -> Field {
    let name = column.name.clone();
    let ty = if column.not_null {
        TypeRef::named_nn(column.scalar())
    } else {
        TypeRef::named(column.scalar())
    };
    let mut field = Field::new(&column.name, ty, move |ctx| {
        let name = name.clone();
        FieldFuture::new(async move {
            let row = ctx.parent_value.try_downcast_ref::<Row>()?;
            let mut value = row.get(&name).cloned().unwrap_or(Json::Null);
            if let Some(path) = ctx.args.get("path").filter(|p| !p.is_null()) {
                value = json_path(&value, path.string()?).map_err(|message| {
                    HasuraError::validation(format!("{}.args.path", field_path(&ctx)), message)
                })?;
            }
            Ok(Some(FieldValue::value(Value::from_json(value)?)))
        })
    });
    if let Some(comment) = &column.comment {
        field = field.description(comment);
    }
    if matches!(column.type_name.as_str(), "json" | "jsonb") {
        field = field.argument(
            InputValue::new("path", TypeRef::named(TypeRef::STRING))
                .description("JSON select path"),
        );
    }
    field
}

/// `aggregate` of `<t>_aggregate`.
pub fn aggregate_field(name: &str) -> Field {
    Field::new(
        "aggregate",
        TypeRef::named(format!("{name}_aggregate_fields")),
        |ctx| {
            FieldFuture::new(async move {
                let source = ctx
                    .parent_value
                    .try_downcast_ref::<AggregateSource>()?
                    .clone();
                Ok(Some(FieldValue::owned_any(source)))
            })
        },
    )
}

/// `nodes` of `<t>_aggregate`.
pub fn nodes_field(name: &str) -> Field {
    Field::new("nodes", TypeRef::named_nn_list_nn(name), |ctx| {
        FieldFuture::new(async move {
            let source = ctx.parent_value.try_downcast_ref::<AggregateSource>()?;
            let (sql, params) = sql::select(&source.table, &source.args, &source.path)?;
            let row = session(&ctx)?
                .query_one(&sql, &params, DB_ERROR_PATH)
                .await?;
            Ok(Some(row_list(rows_of(row.get(0)))))
        })
    })
}

/// `count(columns, distinct)` of `<t>_aggregate_fields`.
pub fn count_field(table: &Table) -> Field {
    let name = type_name(table);
    Field::new("count", TypeRef::named_nn(TypeRef::INT), |ctx| {
        FieldFuture::new(async move {
            let source = ctx.parent_value.try_downcast_ref::<AggregateSource>()?;
            let columns: Vec<String> = match arg(&ctx, "columns")? {
                Some(Json::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(Json::String(one)) => vec![one],
                _ => Vec::new(),
            };
            let distinct = arg(&ctx, "distinct")?
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let (sql, params) = sql::count(
                &source.table,
                &source.args,
                &columns,
                distinct,
                &source.path,
            )?;
            let row = session(&ctx)?
                .query_one(&sql, &params, DB_ERROR_PATH)
                .await?;
            Ok(Some(FieldValue::value(row.get::<_, i64>(0))))
        })
    })
    .argument(InputValue::new(
        "columns",
        TypeRef::named_nn_list(format!("{name}_select_column")),
    ))
    .argument(InputValue::new(
        "distinct",
        TypeRef::named(TypeRef::BOOLEAN),
    ))
}

/// Hasura's aggregate functions besides `count`, with the columns each applies to.
pub(crate) fn aggregate_ops(table: &Table) -> Vec<(&'static str, Vec<&Column>)> {
    let comparable: Vec<&Column> = table
        .columns
        .iter()
        .filter(|c| !matches!(c.type_name.as_str(), "bool" | "json" | "jsonb"))
        .collect();
    let numeric: Vec<&Column> = table.columns.iter().filter(|c| c.is_numeric()).collect();
    let mut ops = Vec::new();
    if !numeric.is_empty() {
        for op in [
            "avg",
            "stddev",
            "stddev_pop",
            "stddev_samp",
            "sum",
            "var_pop",
            "var_samp",
            "variance",
        ] {
            ops.push((op, numeric.clone()));
        }
    }
    if !comparable.is_empty() {
        ops.push(("max", comparable.clone()));
        ops.push(("min", comparable));
    }
    ops
}

/// `max`, `min`, `avg`, ... of `<t>_aggregate_fields`: one query computing the function
/// for every column of its type, handed on as a row.
pub fn aggregate_op_field(table: &Table, op: &'static str) -> Field {
    let name = type_name(table);
    Field::new(
        op,
        TypeRef::named(format!("{name}_{op}_fields")),
        move |ctx| {
            FieldFuture::new(async move {
                let source = ctx.parent_value.try_downcast_ref::<AggregateSource>()?;
                let ops = aggregate_ops(&source.table);
                let columns = ops
                    .iter()
                    .find(|(o, _)| *o == op)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                let (sql, params) =
                    sql::aggregate(&source.table, &source.args, op, &columns, &source.path)?;
                let row = session(&ctx)?
                    .query_one(&sql, &params, DB_ERROR_PATH)
                    .await?;
                let value: Json = row.get(0);
                Ok(match value {
                    Json::Object(map) => Some(FieldValue::owned_any(map)),
                    _ => None,
                })
            })
        },
    )
}

/// A field that picks `name` out of its parent row.
pub fn pick_field(name: &str, ty: TypeRef) -> Field {
    let key = name.to_owned();
    Field::new(name, ty, move |ctx| {
        let key = key.clone();
        FieldFuture::new(async move {
            let row = ctx.parent_value.try_downcast_ref::<Row>()?;
            let value = row.get(&key).cloned().unwrap_or(Json::Null);
            Ok(Some(FieldValue::value(Value::from_json(value)?)))
        })
    })
}

/// `affected_rows` of `<t>_mutation_response`.
pub fn affected_rows_field() -> Field {
    Field::new("affected_rows", TypeRef::named_nn(TypeRef::INT), |ctx| {
        FieldFuture::new(async move {
            let result = ctx.parent_value.try_downcast_ref::<MutationResult>()?;
            Ok(Some(FieldValue::value(result.affected_rows)))
        })
    })
    .description("number of rows affected by the mutation")
}

/// `returning` of `<t>_mutation_response`.
pub fn returning_field(name: &str) -> Field {
    Field::new("returning", TypeRef::named_nn_list_nn(name), |ctx| {
        FieldFuture::new(async move {
            let result = ctx.parent_value.try_downcast_ref::<MutationResult>()?;
            Ok(Some(row_list(result.returning.clone())))
        })
    })
    .description("data from the rows affected by the mutation")
}

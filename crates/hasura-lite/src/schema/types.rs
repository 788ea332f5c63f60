//! The input and output types Hasura v2 generates per table and per column scalar, with
//! Hasura's names and descriptions.

use async_graphql::Value;
use async_graphql::dynamic::{Enum, EnumItem, InputObject, InputValue, Object, Type, TypeRef};

use super::resolve;
use super::{quoted_table, type_name};
use crate::catalog::{Column, Table};

/// `<scalar>_comparison_exp`.
pub fn comparison_exp(scalar: &str) -> InputObject {
    let mut exp = InputObject::new(format!("{scalar}_comparison_exp")).description(format!(
        "Boolean expression to compare columns of type \"{scalar}\". All fields are combined with logical 'AND'."
    ));
    for op in ["_eq", "_gt", "_gte", "_lt", "_lte", "_neq"] {
        exp = exp.field(InputValue::new(op, TypeRef::named(scalar)));
    }
    exp = exp
        .field(InputValue::new("_in", TypeRef::named_nn_list(scalar)))
        .field(InputValue::new("_nin", TypeRef::named_nn_list(scalar)))
        .field(InputValue::new(
            "_is_null",
            TypeRef::named(TypeRef::BOOLEAN),
        ));
    let described: &[(&str, &str)] = match scalar {
        "String" | "citext" => &[
            (
                "_ilike",
                "does the column match the given case-insensitive pattern",
            ),
            (
                "_iregex",
                "does the column match the given POSIX regular expression, case insensitive",
            ),
            ("_like", "does the column match the given pattern"),
            (
                "_nilike",
                "does the column NOT match the given case-insensitive pattern",
            ),
            (
                "_niregex",
                "does the column NOT match the given POSIX regular expression, case insensitive",
            ),
            ("_nlike", "does the column NOT match the given pattern"),
            (
                "_nregex",
                "does the column NOT match the given POSIX regular expression, case sensitive",
            ),
            (
                "_nsimilar",
                "does the column NOT match the given SQL regular expression",
            ),
            (
                "_regex",
                "does the column match the given POSIX regular expression, case sensitive",
            ),
            (
                "_similar",
                "does the column match the given SQL regular expression",
            ),
        ],
        "jsonb" => &[
            (
                "_contained_in",
                "is the column contained in the given json value",
            ),
            (
                "_contains",
                "does the column contain the given json value at the top level",
            ),
        ],
        _ => &[],
    };
    for (op, desc) in described {
        exp = exp.field(InputValue::new(*op, TypeRef::named(scalar)).description(*desc));
    }
    if scalar == "jsonb" {
        exp = exp
            .field(InputValue::new("_cast", TypeRef::named("jsonb_cast_exp")))
            .field(
                InputValue::new("_has_key", TypeRef::named(TypeRef::STRING))
                    .description("does the string exist as a top-level key in the column"),
            )
            .field(
                InputValue::new("_has_keys_all", TypeRef::named_nn_list(TypeRef::STRING))
                    .description("do all of these strings exist as top-level keys in the column"),
            )
            .field(
                InputValue::new("_has_keys_any", TypeRef::named_nn_list(TypeRef::STRING))
                    .description("do any of these strings exist as top-level keys in the column"),
            );
    }
    exp
}

/// `jsonb_cast_exp`: comparisons of a jsonb column cast to text.
pub fn jsonb_cast_exp() -> InputObject {
    InputObject::new("jsonb_cast_exp").field(InputValue::new(
        "String",
        TypeRef::named("String_comparison_exp"),
    ))
}

/// The types of selecting from one table: row, filter, ordering, column enum, and the
/// aggregate types when `aggregates` is set.
pub fn read_types(table: &Table, aggregates: bool) -> Vec<Type> {
    let name = type_name(table);
    let quoted = quoted_table(table);
    let mut types: Vec<Type> = Vec::new();

    // The row type.
    let mut row = Object::new(&name).description(
        table
            .comment
            .clone()
            .unwrap_or_else(|| format!("columns and relationships of {quoted}")),
    );
    for column in &table.columns {
        row = row.field(resolve::column_field(column));
    }
    types.push(row.into());

    if aggregates {
        types.extend(aggregate_types(table));
    }

    // Filtering and ordering.
    types.push(bool_exp(table).into());

    let mut order_by = InputObject::new(format!("{name}_order_by")).description(format!(
        "Ordering options when selecting data from {quoted}."
    ));
    for column in &table.columns {
        order_by = order_by.field(described(
            InputValue::new(&column.name, TypeRef::named("order_by")),
            column,
        ));
    }
    types.push(order_by.into());

    types.push(
        column_enum(
            table,
            format!("{name}_select_column"),
            format!("select columns of table {quoted}"),
        )
        .into(),
    );

    types
}

/// `<t>_bool_exp` over the columns of `table`.
pub fn bool_exp(table: &Table) -> InputObject {
    let name = type_name(table);
    let mut bool_exp = InputObject::new(format!("{name}_bool_exp"))
        .description(format!(
            "Boolean expression to filter rows from the table {}. All fields are combined with a logical 'AND'.",
            quoted_table(table)
        ))
        .field(InputValue::new("_and", TypeRef::named_nn_list(format!("{name}_bool_exp"))))
        .field(InputValue::new("_not", TypeRef::named(format!("{name}_bool_exp"))))
        .field(InputValue::new("_or", TypeRef::named_nn_list(format!("{name}_bool_exp"))));
    for column in &table.columns {
        bool_exp = bool_exp.field(InputValue::new(
            &column.name,
            TypeRef::named(format!("{}_comparison_exp", column.scalar())),
        ));
    }
    bool_exp
}

/// `<t>_mutation_response`; `returning` only for a role that may select from the table.
pub fn mutation_response(table: &Table, returning: bool) -> Type {
    let name = type_name(table);
    let mut response = Object::new(format!("{name}_mutation_response"))
        .description(format!(
            "response of any mutation on the table {}",
            quoted_table(table)
        ))
        .field(resolve::affected_rows_field());
    if returning {
        response = response.field(resolve::returning_field(&name));
    }
    response.into()
}

/// The types of inserting into `table`: the insert input over `insertable`'s columns and,
/// when the table has unique constraints, the upsert types. Their update columns are
/// `updatable`'s, or Hasura's placeholder when the role may update none.
pub fn insert_types(table: &Table, insertable: &Table, updatable: Option<&Table>) -> Vec<Type> {
    let name = type_name(table);
    let quoted = quoted_table(table);
    let mut types: Vec<Type> = Vec::new();

    let mut insert_input = InputObject::new(format!("{name}_insert_input"))
        .description(format!("input type for inserting data into table {quoted}"));
    for column in &insertable.columns {
        insert_input = insert_input.field(described(
            InputValue::new(&column.name, TypeRef::named(column.scalar())),
            column,
        ));
    }
    types.push(insert_input.into());

    if !table.unique_constraints.is_empty() {
        let mut constraint = Enum::new(format!("{name}_constraint")).description(format!(
            "unique or primary key constraints on table {quoted}"
        ));
        for c in &table.unique_constraints {
            let cols: Vec<String> = c.columns.iter().map(|col| format!("\"{col}\"")).collect();
            constraint = constraint.item(EnumItem::new(&c.name).description(format!(
                "unique or primary key constraint on columns {}",
                cols.join(", ")
            )));
        }
        types.push(constraint.into());
        types.push(
            InputObject::new(format!("{name}_on_conflict"))
                .description(format!("on_conflict condition type for table {quoted}"))
                .field(InputValue::new(
                    "constraint",
                    TypeRef::named_nn(format!("{name}_constraint")),
                ))
                .field(
                    InputValue::new(
                        "update_columns",
                        TypeRef::named_nn_list_nn(format!("{name}_update_column")),
                    )
                    .default_value(Value::List(Vec::new())),
                )
                .field(InputValue::new(
                    "where",
                    TypeRef::named(format!("{name}_bool_exp")),
                ))
                .into(),
        );
        let update_column = match updatable.filter(|t| !t.columns.is_empty()) {
            Some(updatable) => column_enum(
                updatable,
                format!("{name}_update_column"),
                format!("update columns of table {quoted}"),
            ),
            None => Enum::new(format!("{name}_update_column"))
                .description(format!(
                    "placeholder for update columns of table {quoted} (current role has no relevant permissions)"
                ))
                .item(EnumItem::new(resolve::PLACEHOLDER).description("placeholder (do not use)")),
        };
        types.push(update_column.into());
    }
    types
}

/// The types of updating `table` over `updatable`'s columns; `pk_input` adds the
/// primary key input of `update_<t>_by_pk`.
pub fn update_types(table: &Table, updatable: &Table, pk_input: bool) -> Vec<Type> {
    let name = type_name(table);
    let quoted = quoted_table(table);
    let mut types: Vec<Type> = Vec::new();

    let mut updates = InputObject::new(format!("{name}_updates")).field(InputValue::new(
        "where",
        TypeRef::named_nn(format!("{name}_bool_exp")),
    ));
    if !updatable.columns.is_empty() {
        let mut set_input = InputObject::new(format!("{name}_set_input"))
            .description(format!("input type for updating data in table {quoted}"));
        for column in &updatable.columns {
            set_input = set_input.field(described(
                InputValue::new(&column.name, TypeRef::named(column.scalar())),
                column,
            ));
        }
        types.push(set_input.into());
        updates = updates.field(
            InputValue::new("_set", TypeRef::named(format!("{name}_set_input")))
                .description("sets the columns of the filtered rows to the given values"),
        );
    }
    for (op, desc) in resolve::update_operators(updatable) {
        updates = updates.field(
            InputValue::new(op, TypeRef::named(format!("{name}{op}_input"))).description(desc),
        );
        let input_desc = match op {
            "_inc" => format!("input type for incrementing numeric columns in table {quoted}"),
            _ => desc.to_owned(),
        };
        let mut input = InputObject::new(format!("{name}{op}_input")).description(input_desc);
        for column in &updatable.columns {
            let ty = match op {
                "_inc" if column.is_numeric() => TypeRef::named(column.scalar()),
                "_inc" => continue,
                _ if column.type_name != "jsonb" => continue,
                "_append" | "_prepend" => TypeRef::named(column.scalar()),
                "_delete_key" => TypeRef::named(TypeRef::STRING),
                "_delete_elem" => TypeRef::named(TypeRef::INT),
                _ => TypeRef::named_nn_list(TypeRef::STRING),
            };
            input = input.field(described(InputValue::new(&column.name, ty), column));
        }
        types.push(input.into());
    }
    types.push(updates.into());

    if pk_input {
        let mut pk_input = InputObject::new(format!("{name}_pk_columns_input")).description(
            format!("primary key columns input for table: {}", table.name),
        );
        for key in &table.primary_key {
            let column = table
                .column(key)
                .expect("primary key columns are table columns");
            pk_input = pk_input.field(described(
                InputValue::new(key, TypeRef::named_nn(column.scalar())),
                column,
            ));
        }
        types.push(pk_input.into());
    }
    types
}

/// Hasura repeats a column's comment on the input fields generated for it.
fn described(input: InputValue, column: &Column) -> InputValue {
    match &column.comment {
        Some(comment) => input.description(comment),
        None => input,
    }
}

fn column_enum(table: &Table, name: String, description: String) -> Enum {
    let mut e = Enum::new(name).description(description);
    for column in &table.columns {
        e = e.item(EnumItem::new(&column.name).description("column name"));
    }
    e
}

/// `<t>_aggregate`, `<t>_aggregate_fields` and the `<t>_<op>_fields` types.
fn aggregate_types(table: &Table) -> Vec<Type> {
    let name = type_name(table);
    let quoted = quoted_table(table);
    let mut types: Vec<Type> = Vec::new();
    types.push(
        Object::new(format!("{name}_aggregate"))
            .description(format!("aggregated selection of {quoted}"))
            .field(resolve::aggregate_field(&name))
            .field(resolve::nodes_field(&name))
            .into(),
    );
    let mut aggregate_fields = Object::new(format!("{name}_aggregate_fields"))
        .description(format!("aggregate fields of {quoted}"))
        .field(resolve::count_field(table));
    for (op, columns) in resolve::aggregate_ops(table) {
        aggregate_fields = aggregate_fields.field(resolve::aggregate_op_field(table, op));
        let mut fields = Object::new(format!("{name}_{op}_fields"))
            .description(format!("aggregate {op} on columns"));
        for column in columns {
            let scalar = match op {
                "max" | "min" | "sum" => column.scalar(),
                _ => TypeRef::FLOAT.to_owned(),
            };
            fields = fields.field(resolve::pick_field(&column.name, TypeRef::named(scalar)));
        }
        types.push(fields.into());
    }
    types.push(aggregate_fields.into());
    types
}

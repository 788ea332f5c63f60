//! Builds the Hasura v2 GraphQL schemas with async-graphql's dynamic schema: the admin
//! schema (`query_root`, `mutation_root`) for the tracked tables, printed as SDL, and the
//! read-only schema of each role from its select permissions.

mod json_path;
mod resolve;
mod session;
mod types;

pub use session::Session;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_graphql::SDLExportOptions;
use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, Object, Scalar, Schema, SchemaError, Type, TypeRef,
};
use serde_json::Value as Json;

use crate::catalog::Table;
use crate::metadata::SelectRule;

/// GraphQL name of the query root, as Hasura names it.
pub const QUERY_ROOT: &str = "query_root";
/// GraphQL name of the mutation root, as Hasura names it.
pub const MUTATION_ROOT: &str = "mutation_root";

/// Builds the executable schema for `tables`.
pub fn build(tables: Vec<Table>) -> Result<Schema, SchemaError> {
    let parts = tables
        .into_iter()
        .map(|table| {
            let table = Arc::new(table);
            TablePart {
                types: types::table_types(&table),
                scalars: table.columns.iter().map(|c| c.scalar()).collect(),
                queries: resolve::query_fields(&table, None),
                mutations: resolve::mutation_fields(&table),
            }
        })
        .collect();
    assemble(parts, true)
}

/// What a non-admin role may read of one table, applied to every query on it.
#[derive(Debug, Clone)]
pub struct RoleAccess {
    /// The permission's row filter; string values naming `x-hasura-*` session variables are
    /// replaced by the request's values (bound as parameters like any other value).
    pub filter: Json,
    /// Most rows one query returns.
    pub limit: Option<i64>,
    /// Whether `<t>_aggregate` is offered.
    pub aggregates: bool,
    /// Whether `<t>_by_pk` is offered (every primary key column is permitted).
    pub by_pk: bool,
}

/// The `x-hasura-*` session variables of a request, names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct SessionVariables(pub BTreeMap<String, String>);

/// Builds the read-only schema of one role from its select permission on each table
/// (tables it has none on are left out): only permitted columns, no mutations.
pub fn build_role(tables: &[(Table, SelectRule)]) -> Result<Schema, SchemaError> {
    let mut parts = Vec::with_capacity(tables.len());
    for (table, rule) in tables {
        let full = Arc::new(table.clone());
        let by_pk = !table.primary_key.is_empty()
            && table.primary_key.iter().all(|k| rule.columns.allows(k));
        let visible = Arc::new(Table {
            columns: table
                .columns
                .iter()
                .filter(|c| rule.columns.allows(&c.name))
                .cloned()
                .collect(),
            primary_key: if by_pk {
                table.primary_key.clone()
            } else {
                Vec::new()
            },
            unique_constraints: Vec::new(),
            ..table.clone()
        });
        let access = Arc::new(RoleAccess {
            filter: rule.filter.clone(),
            limit: rule.limit,
            aggregates: rule.allow_aggregations,
            by_pk,
        });
        parts.push(TablePart {
            types: types::read_types(&visible, rule.allow_aggregations),
            scalars: visible.columns.iter().map(|c| c.scalar()).collect(),
            // Resolvers see the whole table: the filter may test columns the role cannot
            // select; the GraphQL types above keep those columns out of reach.
            queries: resolve::query_fields(&full, Some(access)),
            mutations: Vec::new(),
        });
    }
    assemble(parts, false)
}

/// The schema pieces generated for one table.
struct TablePart {
    types: Vec<Type>,
    scalars: Vec<String>,
    queries: Vec<(String, Field)>,
    mutations: Vec<(String, Field)>,
}

fn assemble(parts: Vec<TablePart>, with_mutations: bool) -> Result<Schema, SchemaError> {
    let mut query_fields: BTreeMap<String, Field> = BTreeMap::new();
    let mut mutation_fields: BTreeMap<String, Field> = BTreeMap::new();
    let mut scalars: BTreeSet<String> = BTreeSet::new();
    let mutation_root = with_mutations.then_some(MUTATION_ROOT);
    let mut builder = Schema::build(QUERY_ROOT, mutation_root, None).disable_suggestions();

    for part in parts {
        scalars.extend(part.scalars);
        for ty in part.types {
            builder = builder.register(ty);
        }
        query_fields.extend(part.queries);
        mutation_fields.extend(part.mutations);
    }
    if scalars.contains("jsonb") {
        // jsonb's `_cast` compares as String.
        scalars.insert("String".to_owned());
        builder = builder.register(types::jsonb_cast_exp());
    }
    for scalar in &scalars {
        if !matches!(
            scalar.as_str(),
            "String" | "Int" | "Boolean" | "Float" | "ID"
        ) {
            builder = builder.register(Scalar::new(scalar));
        }
        builder = builder.register(types::comparison_exp(scalar));
    }
    builder = builder.register(order_by_enum());

    let mut query = Object::new(QUERY_ROOT);
    if query_fields.is_empty() {
        // GraphQL needs a field on the query root; Hasura offers this one to roles
        // without any select permission.
        query = query.field(Field::new(
            "no_queries_available",
            TypeRef::named_nn(TypeRef::STRING),
            |_| FieldFuture::new(async { Ok(Some(async_graphql::Value::from(""))) }),
        ));
    }
    for (_, field) in query_fields {
        query = query.field(field);
    }
    builder = builder.register(query);
    if with_mutations {
        let mut mutation = Object::new(MUTATION_ROOT).description("mutation root");
        for (_, field) in mutation_fields {
            mutation = mutation.field(field);
        }
        builder = builder.register(mutation);
    }
    builder.finish()
}

/// The schema as SDL, fields, arguments and enum values sorted as in Hasura's export.
pub fn sdl(schema: &Schema) -> String {
    schema.sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items()
            .use_space_ident()
            .indent_width(2),
    )
}

fn order_by_enum() -> Enum {
    let items = [
        ("asc", "in ascending order, nulls last"),
        ("asc_nulls_first", "in ascending order, nulls first"),
        ("asc_nulls_last", "in ascending order, nulls last"),
        ("desc", "in descending order, nulls first"),
        ("desc_nulls_first", "in descending order, nulls first"),
        ("desc_nulls_last", "in descending order, nulls last"),
    ];
    Enum::new("order_by")
        .description("column ordering options")
        .items(
            items
                .into_iter()
                .map(|(name, desc)| EnumItem::new(name).description(desc)),
        )
}

/// The GraphQL type name of a table: its name in `public`, `schema_name` elsewhere.
pub fn type_name(table: &Table) -> String {
    if table.schema == "public" {
        table.name.clone()
    } else {
        format!("{}_{}", table.schema, table.name)
    }
}

/// How Hasura quotes a table in descriptions: `"name"` or `"schema.name"`.
pub(crate) fn quoted_table(table: &Table) -> String {
    if table.schema == "public" {
        format!("\"{}\"", table.name)
    } else {
        format!("\"{}.{}\"", table.schema, table.name)
    }
}

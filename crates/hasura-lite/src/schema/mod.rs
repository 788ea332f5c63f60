//! Builds the Hasura v2 GraphQL schemas with async-graphql's dynamic schema: the admin
//! schema (`query_root`, `mutation_root`) for the tracked tables, printed as SDL, and the
//! schema of each role from its select, insert, update and delete permissions.

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
use crate::metadata::{Columns, DeleteRule, InsertRule, SelectRule, UpdateRule};

/// GraphQL name of the query root, as Hasura names it.
pub const QUERY_ROOT: &str = "query_root";
/// GraphQL name of the mutation root, as Hasura names it.
pub const MUTATION_ROOT: &str = "mutation_root";

/// Builds the executable admin schema for `tables`: every root field, every column.
pub fn build(tables: Vec<Table>) -> Result<Schema, SchemaError> {
    let parts = tables
        .into_iter()
        .map(|table| {
            let table = Arc::new(table);
            let mut types = types::read_types(&table, true);
            types.push(types::mutation_response(&table, true));
            types.extend(types::insert_types(&table, &table, Some(&table)));
            types.extend(types::update_types(
                &table,
                &table,
                !table.primary_key.is_empty(),
            ));
            TablePart {
                types,
                scalars: table.columns.iter().map(|c| c.scalar()).collect(),
                queries: resolve::query_fields(&table, None),
                mutations: resolve::mutation_fields(&table, None),
            }
        })
        .collect();
    assemble(parts)
}

/// What one role may do with one table: its permissions from metadata, each absent when
/// the role has none of that kind.
#[derive(Debug, Clone, Default)]
pub struct TableAccess {
    /// `select_permissions` entry.
    pub select: Option<SelectRule>,
    /// `insert_permissions` entry.
    pub insert: Option<InsertRule>,
    /// `update_permissions` entry.
    pub update: Option<UpdateRule>,
    /// `delete_permissions` entry.
    pub delete: Option<DeleteRule>,
}

impl TableAccess {
    /// Whether the role may select every primary key column: Hasura's condition for the
    /// `_by_pk` fields (the table must have a primary key).
    pub fn pk_visible(&self, table: &Table) -> bool {
        !table.primary_key.is_empty()
            && self
                .select
                .as_ref()
                .is_some_and(|rule| table.primary_key.iter().all(|k| rule.columns.allows(k)))
    }

    /// The columns the role may give values for on insert.
    pub fn insertable(&self, table: &Table) -> Option<Table> {
        let rule = self.insert.as_ref()?;
        Some(writable(table, &rule.columns, &rule.set))
    }

    /// The columns the role may change on update.
    pub fn updatable(&self, table: &Table) -> Option<Table> {
        let rule = self.update.as_ref()?;
        Some(writable(table, &rule.columns, &rule.set))
    }

    /// Checks the permissions against the catalog: every named column exists, every
    /// filter and check compiles, and an insert permission leaves a column to give.
    pub fn validate(&self, table: &Table) -> Result<(), String> {
        let mut named: Vec<(&str, &String)> = Vec::new();
        let mut expressions: Vec<(&str, &Json)> = Vec::new();
        if let Some(rule) = &self.select {
            named.extend(rule.columns.listed().iter().map(|c| ("select columns", c)));
            expressions.push(("select filter", &rule.filter));
        }
        if let Some(rule) = &self.insert {
            named.extend(rule.columns.listed().iter().map(|c| ("insert columns", c)));
            named.extend(rule.set.keys().map(|c| ("insert set", c)));
            expressions.push(("insert check", &rule.check));
        }
        if let Some(rule) = &self.update {
            named.extend(rule.columns.listed().iter().map(|c| ("update columns", c)));
            named.extend(rule.set.keys().map(|c| ("update set", c)));
            expressions.push(("update filter", &rule.filter));
            expressions.extend(rule.check.iter().map(|c| ("update check", c)));
        }
        if let Some(rule) = &self.delete {
            expressions.push(("delete filter", &rule.filter));
        }
        for (what, column) in named {
            if table.column(column).is_none() {
                return Err(format!("{what}: no column {column:?}"));
            }
        }
        for (what, expression) in expressions {
            crate::sql::bool_exp(table, expression, &mut crate::sql::Params::default(), "$")
                .map_err(|e| format!("{what}: {}", e.message))?;
        }
        if self
            .insertable(table)
            .is_some_and(|columns| columns.columns.is_empty())
        {
            return Err("insert permission leaves no column to insert".to_owned());
        }
        Ok(())
    }
}

/// The columns a write permission lets the role give: permitted and not preset, as Hasura
/// takes preset columns out of the input types.
fn writable(table: &Table, columns: &Columns, preset: &serde_json::Map<String, Json>) -> Table {
    view(table, |c| columns.allows(c) && !preset.contains_key(c))
}

/// `table` with only the columns `keep` accepts; keys and constraints stay whole.
fn view(table: &Table, keep: impl Fn(&str) -> bool) -> Table {
    Table {
        columns: table
            .columns
            .iter()
            .filter(|c| keep(&c.name))
            .cloned()
            .collect(),
        ..table.clone()
    }
}

/// The `x-hasura-*` session variables of a request, names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct SessionVariables(pub BTreeMap<String, String>);

/// Builds the schema of one role from its permissions on each table (tables it has none
/// on are left out), as Hasura does: a root field exists only with the permission it
/// needs, and each input and output type has only the columns that permission allows.
pub fn build_role(tables: &[(Table, TableAccess)]) -> Result<Schema, SchemaError> {
    let mut parts = Vec::with_capacity(tables.len());
    for (table, access) in tables {
        let full = Arc::new(table.clone());
        let access = Arc::new(access.clone());
        let selectable = view(table, |c| {
            access
                .select
                .as_ref()
                .is_some_and(|rule| rule.columns.allows(c))
        });
        let insertable = access.insertable(table);
        let updatable = access.updatable(table);
        let mut types = match &access.select {
            Some(rule) => types::read_types(&selectable, rule.allow_aggregations),
            // Updates and deletes still take a `where`, over no column.
            None => vec![types::bool_exp(&selectable).into()],
        };
        if access.insert.is_some() || access.update.is_some() || access.delete.is_some() {
            types.push(types::mutation_response(table, access.select.is_some()));
        }
        if let Some(insertable) = &insertable {
            types.extend(types::insert_types(table, insertable, updatable.as_ref()));
        }
        if let Some(updatable) = &updatable {
            types.extend(types::update_types(
                table,
                updatable,
                access.pk_visible(table),
            ));
        }
        let scalars = [Some(&selectable), insertable.as_ref(), updatable.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|t| t.columns.iter().map(|c| c.scalar()))
            .collect();
        parts.push(TablePart {
            types,
            scalars,
            // Resolvers see the whole table: filters and checks may test columns the role
            // cannot see; the GraphQL types above keep those columns out of reach.
            queries: if access.select.is_some() {
                resolve::query_fields(&full, Some(access.clone()))
            } else {
                Vec::new()
            },
            mutations: resolve::mutation_fields(&full, Some(access)),
        });
    }
    assemble(parts)
}

/// The schema pieces generated for one table.
struct TablePart {
    types: Vec<Type>,
    scalars: Vec<String>,
    queries: Vec<(String, Field)>,
    mutations: Vec<(String, Field)>,
}

/// The schema from its parts; without any mutation field there is no mutation root.
fn assemble(parts: Vec<TablePart>) -> Result<Schema, SchemaError> {
    let mut query_fields: BTreeMap<String, Field> = BTreeMap::new();
    let mut mutation_fields: BTreeMap<String, Field> = BTreeMap::new();
    let mut scalars: BTreeSet<String> = BTreeSet::new();
    let mut types = Vec::new();
    for part in parts {
        scalars.extend(part.scalars);
        types.extend(part.types);
        query_fields.extend(part.queries);
        mutation_fields.extend(part.mutations);
    }
    let with_mutations = !mutation_fields.is_empty();
    let mutation_root = with_mutations.then_some(MUTATION_ROOT);
    let mut builder = Schema::build(QUERY_ROOT, mutation_root, None).disable_suggestions();
    for ty in types {
        builder = builder.register(ty);
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

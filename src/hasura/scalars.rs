//! Hasura's scalar names mapped to Rust types, once, for every `#[derive(GraphQLQuery)]`.
#![allow(non_camel_case_types)]

pub type uuid = ::uuid::Uuid;
pub type timestamptz = chrono::DateTime<chrono::Utc>;
pub type jsonb = serde_json::Value;
pub type bigint = i64;
pub type numeric = serde_json::Number;
pub type citext = String;

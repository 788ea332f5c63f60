//! What a request is: an AWS JSON-protocol operation (`X-Amz-Target`), an AWS query-protocol
//! action (`Action=` form field), a GraphQL request (`/v1/graphql`), or other HTTP.

use async_graphql_parser::types::{DocumentOperations, OperationType};
use axum::http::{HeaderMap, Method};
use serde_json::Value;

/// The operation name used for GraphQL requests in the per-operation counts.
pub const GRAPHQL_OP: &str = "GraphQL";
/// The operation name used for any other HTTP request.
pub const OTHER_OP: &str = "HTTP";

/// The AWS service a request targets, which decides the shape of injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `AWSCognitoIdentityProviderService.*`.
    Cognito,
    /// Any other AWS JSON or query protocol service (SQS, ...).
    OtherAws,
    /// Not an AWS request.
    NotAws,
}

/// One GraphQL operation found in a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlOperation {
    /// `operationName`, or the name in the document, if any.
    pub name: Option<String>,
    /// `true` for a mutation, `false` for a query or subscription.
    pub mutation: bool,
}

/// The classification of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `ListUsers`, `ReceiveMessage`, [`GRAPHQL_OP`] or [`OTHER_OP`].
    pub op: String,
    /// Which error shape to answer with.
    pub service: Service,
    /// The `Limit` field of an AWS JSON request body, if present.
    pub limit: Option<i64>,
    /// The operations of a GraphQL request (several for a batched request).
    pub graphql: Vec<GraphqlOperation>,
}

/// Classifies a buffered request.
pub fn classify(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Call {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, op) = target.rsplit_once('.').unwrap_or(("", target));
        let service = if prefix == "AWSCognitoIdentityProviderService" {
            Service::Cognito
        } else {
            Service::OtherAws
        };
        let limit = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("Limit").and_then(Value::as_i64));
        return Call {
            op: op.to_string(),
            service,
            limit,
            graphql: Vec::new(),
        };
    }
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if let Some(action) = form.then(|| form_action(body)).flatten() {
        return Call {
            op: action,
            service: Service::OtherAws,
            limit: None,
            graphql: Vec::new(),
        };
    }
    if method == Method::POST && path.ends_with("/v1/graphql") {
        return Call {
            op: GRAPHQL_OP.into(),
            service: Service::NotAws,
            limit: None,
            graphql: graphql_operations(body),
        };
    }
    Call {
        op: OTHER_OP.into(),
        service: Service::NotAws,
        limit: None,
        graphql: Vec::new(),
    }
}

fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(String::from)
}

/// The operations of a GraphQL request body: one object, or an array of them (batch).
/// A body that does not parse counts as one unnamed query.
pub fn graphql_operations(body: &[u8]) -> Vec<GraphqlOperation> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(requests)) => requests.iter().map(graphql_operation).collect(),
        Ok(request) => vec![graphql_operation(&request)],
        Err(_) => vec![GraphqlOperation {
            name: None,
            mutation: false,
        }],
    }
}

fn graphql_operation(request: &Value) -> GraphqlOperation {
    let requested = request
        .get("operationName")
        .and_then(Value::as_str)
        .map(String::from);
    let Some(document) = request
        .get("query")
        .and_then(Value::as_str)
        .and_then(|q| async_graphql_parser::parse_query(q).ok())
    else {
        return GraphqlOperation {
            name: requested,
            mutation: false,
        };
    };
    let (name, ty) = match &document.operations {
        DocumentOperations::Single(op) => (requested, op.node.ty),
        DocumentOperations::Multiple(ops) => {
            let chosen = match &requested {
                Some(wanted) => ops.iter().find(|(name, _)| name.as_str() == wanted),
                None => ops.iter().next(),
            };
            match chosen {
                Some((name, op)) => (Some(name.to_string()), op.node.ty),
                None => (requested, OperationType::Query),
            }
        }
    };
    GraphqlOperation {
        name,
        mutation: ty == OperationType::Mutation,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method};

    use super::*;

    fn aws(target: &'static str, body: &str) -> Call {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", HeaderValue::from_static(target));
        classify(&Method::POST, "/", &headers, body.as_bytes())
    }

    #[test]
    fn names_aws_json_operations_and_reads_limit() {
        let call = aws(
            "AWSCognitoIdentityProviderService.ListUsers",
            r#"{"UserPoolId":"p","Limit":61}"#,
        );
        assert_eq!(
            (call.op.as_str(), call.service, call.limit),
            ("ListUsers", Service::Cognito, Some(61))
        );
        let call = aws("AmazonSQS.ReceiveMessage", r#"{"QueueUrl":"q"}"#);
        assert_eq!(
            (call.op.as_str(), call.service, call.limit),
            ("ReceiveMessage", Service::OtherAws, None)
        );
    }

    #[test]
    fn names_query_protocol_actions() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let call = classify(
            &Method::POST,
            "/",
            &headers,
            b"Action=SendMessage&Version=2012-11-05",
        );
        assert_eq!(call.op, "SendMessage");
    }

    #[test]
    fn splits_graphql_queries_from_mutations() {
        let body = br#"{"query":"mutation Upsert($o: [x!]!) { insert_x(objects: $o) { affected_rows } }","operationName":"Upsert"}"#;
        let call = classify(&Method::POST, "/v1/graphql", &HeaderMap::new(), body);
        assert_eq!(call.op, GRAPHQL_OP);
        assert_eq!(
            call.graphql,
            vec![GraphqlOperation {
                name: Some("Upsert".into()),
                mutation: true
            }]
        );

        let body = br#"[{"query":"{ a }"},{"query":"query A { a } mutation B { b }","operationName":"B"}]"#;
        let ops = graphql_operations(body);
        assert_eq!(
            ops,
            vec![
                GraphqlOperation {
                    name: None,
                    mutation: false
                },
                GraphqlOperation {
                    name: Some("B".into()),
                    mutation: true
                },
            ]
        );
    }

    #[test]
    fn other_requests_are_plain_http() {
        let call = classify(&Method::GET, "/healthz", &HeaderMap::new(), b"");
        assert_eq!(call.op, OTHER_OP);
        assert!(call.graphql.is_empty());
    }
}

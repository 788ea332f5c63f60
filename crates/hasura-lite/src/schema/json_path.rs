//! Hasura's JSON select path for jsonb output fields (`attributes(path: "$.a.b[0]")`).

use serde_json::Value as Json;

/// Evaluates a Hasura JSON select path (`$.a.b[0]`, `a.b`, `$["a"]`); a missing key is null.
pub(crate) fn json_path(value: &Json, path: &str) -> Result<Json, String> {
    let mut rest = path.trim();
    rest = rest.strip_prefix('$').unwrap_or(rest);
    let mut current = value.clone();
    let mut first = true;
    while !rest.is_empty() {
        let key_or_index;
        if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("parse json path error: unclosed bracket in {path:?}"))?;
            let inner = after[..end].trim();
            rest = &after[end + 1..];
            if let Ok(index) = inner.parse::<i64>() {
                current = match &current {
                    Json::Array(items) => {
                        let i = if index < 0 {
                            items.len() as i64 + index
                        } else {
                            index
                        };
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| items.get(i))
                            .cloned()
                            .unwrap_or(Json::Null)
                    }
                    _ => Json::Null,
                };
                first = false;
                continue;
            }
            key_or_index = inner.trim_matches(|c| c == '"' || c == '\'').to_owned();
        } else {
            let body = match rest.strip_prefix('.') {
                Some(body) => body,
                None if first => rest,
                None => {
                    return Err(format!(
                        "parse json path error: unexpected {rest:?} in {path:?}"
                    ));
                }
            };
            let end = body.find(['.', '[']).unwrap_or(body.len());
            key_or_index = body[..end].to_owned();
            rest = &body[end..];
            if key_or_index.is_empty() {
                return Err(format!("parse json path error: empty key in {path:?}"));
            }
        }
        current = match &current {
            Json::Object(map) => map.get(&key_or_index).cloned().unwrap_or(Json::Null),
            _ => Json::Null,
        };
        first = false;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::json_path;
    use serde_json::json;

    #[test]
    fn json_path_follows_keys_and_indexes() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}, "custom:tier": "gold"});
        assert_eq!(json_path(&v, "$.a.b[1].c").unwrap(), json!("x"));
        assert_eq!(json_path(&v, "a.b[0]").unwrap(), json!(10));
        assert_eq!(json_path(&v, "$[\"custom:tier\"]").unwrap(), json!("gold"));
        assert_eq!(json_path(&v, "$.a.b[-1].c").unwrap(), json!("x"));
        assert_eq!(json_path(&v, "$.missing.x").unwrap(), json!(null));
        assert!(json_path(&v, "$.a[").is_err());
    }
}

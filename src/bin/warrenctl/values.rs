//! `key=value` arguments from the command line turned into typed JSON.

use serde_json::{Map, Value};

/// Message properties the management API's publish accepts.
const PROPERTIES: &[&str] = &[
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
];

/// Properties whose value is a number on the wire.
const INTEGER_PROPERTIES: &[&str] = &["delivery_mode", "priority", "timestamp"];

/// A value typed the way a user means it: integers become numbers, `true` and
/// `false` booleans, anything else a string.
pub fn typed(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

/// Parses `key=value` (typed as [`typed`]) or `key:=JSON` (the JSON as given,
/// e.g. `x-version:="1"` for a string that looks like a number).
pub fn key_value(arg: &str) -> Result<(String, Value), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got '{arg}'"))?;
    if let Some(key) = key.strip_suffix(':') {
        if key.is_empty() {
            return Err(format!("missing key in '{arg}'"));
        }
        let json = serde_json::from_str(value)
            .map_err(|e| format!("the value of '{key}' is not JSON: {e}"))?;
        return Ok((key.to_owned(), json));
    }
    if key.is_empty() {
        return Err(format!("missing key in '{arg}'"));
    }
    Ok((key.to_owned(), typed(value)))
}

/// Parses a `--property name=value` for publish: a known property name, with
/// a number where the property is one.
pub fn property(arg: &str) -> Result<(String, Value), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got '{arg}'"))?;
    let key = key.replace('-', "_");
    if !PROPERTIES.contains(&key.as_str()) {
        return Err(format!(
            "unknown property '{key}' (known: {})",
            PROPERTIES.join(", ")
        ));
    }
    if INTEGER_PROPERTIES.contains(&key.as_str()) {
        let n: u64 = value
            .parse()
            .map_err(|_| format!("property '{key}' must be a whole number, got '{value}'"))?;
        return Ok((key, Value::from(n)));
    }
    Ok((key, Value::String(value.to_owned())))
}

/// Collects parsed pairs into a JSON object (a later key wins).
pub fn object(pairs: &[(String, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Map<String, Value>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed() {
        assert_eq!(
            key_value("x-max-length=10"),
            Ok(("x-max-length".into(), json!(10)))
        );
        assert_eq!(
            key_value("x-single-active-consumer=true"),
            Ok(("x-single-active-consumer".into(), json!(true)))
        );
        assert_eq!(
            key_value("x-queue-type=quorum"),
            Ok(("x-queue-type".into(), json!("quorum")))
        );
        assert_eq!(
            key_value("x-expires=-1"),
            Ok(("x-expires".into(), json!(-1)))
        );
        assert_eq!(key_value("k=a=b"), Ok(("k".into(), json!("a=b"))));
        assert_eq!(key_value("v:=\"10\""), Ok(("v".into(), json!("10"))));
        assert_eq!(key_value("l:=[1,2]"), Ok(("l".into(), json!([1, 2]))));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=1").is_err());
        assert!(key_value("j:={").is_err());
    }

    #[test]
    fn properties_are_checked() {
        assert_eq!(property("priority=5"), Ok(("priority".into(), json!(5))));
        assert_eq!(
            property("content-type=text/plain"),
            Ok(("content_type".into(), json!("text/plain")))
        );
        assert_eq!(
            property("expiration=60000"),
            Ok(("expiration".into(), json!("60000")))
        );
        assert!(property("priority=high").is_err());
        assert!(property("colour=red").is_err());
    }
}

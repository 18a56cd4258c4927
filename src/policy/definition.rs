//! A policy's definition: the keys RabbitMQ accepts, its validation texts
//! (`rabbit_policies`), how a policy and an operator policy combine
//! (`merge_policy_value`: the lower limit wins), and the typed values a queue
//! or an exchange applies.

use serde_json::{Map, Value};

/// A definition as given: key to JSON value.
pub type Definition = Map<String, Value>;

/// Keys of regular policies that Warren applies.
const APPLIED: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "delivery-limit",
    "consumer-timeout",
    // The deduplication plugin's keys (queues).
    "x-message-deduplication",
    "x-cache-size",
    // Delayed retries: RabbitMQ 4.3's keys, LavinMQ's multiplier, Warren's jitter.
    "delayed-retry-type",
    "delayed-retry-min",
    "delayed-retry-max",
    "delayed-retry-multiplier",
    "delayed-retry-jitter",
];

/// Keys RabbitMQ accepts that change nothing in Warren (memory modes,
/// stream and quorum placement, classic mirroring of RabbitMQ 3.x): accepted
/// so that existing policies load unchanged.
const ACCEPTED: &[&str] = &[
    "max-in-memory-length",
    "max-in-memory-bytes",
    "queue-mode",
    "queue-version",
    "max-age",
    "max-segment-size",
    "queue-leader-locator",
    "queue-master-locator",
    "initial-cluster-size",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    // The deduplication plugin's keys that only its exchanges read.
    "x-cache-ttl",
    "x-cache-persistence",
];

/// The keys an operator policy may set (RabbitMQ's
/// `operator_policy_validator`s).
const OPERATOR: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// Keys where a policy and an operator policy both set a value: the lower
/// one is in force.
const MIN_MERGED: &[&str] = OPERATOR;

/// Regular policy or operator policy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PolicyKind {
    /// `/api/policies`: set by users with the policymaker tag.
    Policy,
    /// `/api/operator-policies`: set by administrators, capping limits.
    Operator,
}

/// Checks a definition as RabbitMQ does: keys it does not know first (all of
/// them named), then each value. The error is the text after RabbitMQ's
/// `Validation failed`.
pub fn validate(kind: PolicyKind, definition: &Definition) -> Result<(), String> {
    if definition.is_empty() {
        return Err("no policy provided".into());
    }
    let known = |key: &str| match kind {
        PolicyKind::Policy => APPLIED.contains(&key) || ACCEPTED.contains(&key),
        PolicyKind::Operator => OPERATOR.contains(&key),
    };
    let unknown: Vec<String> = definition
        .iter()
        .filter(|(k, _)| !known(k))
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erlang_term(v)))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ));
    }
    for (key, value) in definition {
        validate_value(key, value)?;
    }
    let int = |key: &str| definition.get(key).and_then(Value::as_i64);
    if let (Some(min), Some(max)) = (int("delayed-retry-min"), int("delayed-retry-max"))
        && max < min
    {
        return Err(format!(
            "delayed-retry-max ({max}) must be at least delayed-retry-min ({min})"
        ));
    }
    let enabled = definition
        .get("delayed-retry-type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled");
    if enabled && !definition.contains_key("delayed-retry-min") {
        return Err("delayed-retry-min is required when delayed-retry-type is set".into());
    }
    Ok(())
}

/// One value's check; texts as `rabbit_policies:validate_policy0`.
fn validate_value(key: &str, value: &Value) -> Result<(), String> {
    let invalid = |what: &str| Err(format!("{} is not a valid {what}", erlang_term(value)));
    let integer_at_least = |min: i64| value.as_i64().is_some_and(|v| v >= min);
    match key {
        "alternate-exchange" if !value.is_string() => invalid("alternate exchange name"),
        "dead-letter-exchange" if !value.is_string() => invalid("dead letter exchange name"),
        "dead-letter-routing-key" if !value.is_string() => invalid("dead letter routing key"),
        "message-ttl" if !integer_at_least(0) => invalid("message TTL"),
        "expires" if !integer_at_least(1) => invalid("queue expiry"),
        "max-length" if !integer_at_least(0) => invalid("maximum length"),
        "max-length-bytes" if !integer_at_least(0) => invalid("maximum length in bytes"),
        "max-in-memory-length" | "max-in-memory-bytes" if !integer_at_least(0) => {
            invalid("maximum memory in bytes")
        }
        "delivery-limit" if value.as_i64().is_none() => invalid("delivery limit"),
        "delayed-retry-type"
            if !matches!(
                value.as_str(),
                Some("disabled" | "all" | "failed" | "returned")
            ) =>
        {
            invalid("delayed retry type")
        }
        "delayed-retry-min" | "delayed-retry-max" | "delayed-retry-multiplier"
            if !integer_at_least(1) =>
        {
            invalid(&key.replace('-', " "))
        }
        "delayed-retry-jitter" if !matches!(value.as_str(), Some("none" | "full" | "equal")) => {
            invalid("delayed retry jitter")
        }
        "consumer-timeout" if !integer_at_least(0) => invalid("consumer timeout"),
        "overflow"
            if !matches!(
                value.as_str(),
                Some("drop-head" | "reject-publish" | "reject-publish-dlx")
            ) =>
        {
            invalid("overflow value")
        }
        "queue-mode" if !matches!(value.as_str(), Some("default" | "lazy")) => {
            invalid("queue-mode value")
        }
        // The deduplication plugin's texts (`RabbitMQMessageDeduplication.Policies`).
        "x-message-deduplication" if !value.is_boolean() => Err(format!(
            "\"x-message-deduplication\" must be a boolean, got {}",
            erlang_term(value)
        )),
        "x-cache-size" | "x-cache-ttl" if !integer_at_least(1) => Err(format!(
            "\"{key}\" must be an integer greater than 0, got {}",
            erlang_term(value)
        )),
        "x-cache-persistence" if !matches!(value.as_str(), Some("disk" | "memory")) => {
            Err(format!(
                "\"x-cache-persistence\" must be either \"disk\" or \"memory\", got {}",
                erlang_term(value)
            ))
        }
        _ => Ok(()),
    }
}

/// A JSON value as RabbitMQ prints the Erlang term it decoded it to.
fn erlang_term(value: &Value) -> String {
    match value {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

/// The definition in force when `policy` and `operator` (either may be
/// absent) both apply: every key of either, the lower value where both set
/// a limit.
pub fn merge(policy: Option<&Definition>, operator: Option<&Definition>) -> Definition {
    let mut merged = policy.cloned().unwrap_or_default();
    for (key, op) in operator.into_iter().flatten() {
        let value = match (merged.get(key), MIN_MERGED.contains(&key.as_str())) {
            (Some(own), true) => match (own.as_i64(), op.as_i64()) {
                (Some(a), Some(b)) => Value::from(a.min(b)),
                _ => op.clone(),
            },
            _ => op.clone(),
        };
        merged.insert(key.clone(), value);
    }
    merged
}

/// What a policy sets for a queue, typed (values were validated when the
/// policy was set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePolicy {
    /// `message-ttl` in milliseconds.
    pub message_ttl: Option<u64>,
    /// `expires` in milliseconds.
    pub expires: Option<u64>,
    /// `max-length`.
    pub max_length: Option<u64>,
    /// `max-length-bytes`.
    pub max_length_bytes: Option<u64>,
    /// `overflow`: `drop-head`, `reject-publish` or `reject-publish-dlx`.
    pub overflow: Option<String>,
    /// `dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `delivery-limit`.
    pub delivery_limit: Option<u64>,
    /// `consumer-timeout` in milliseconds.
    pub consumer_timeout: Option<u64>,
    /// The deduplication plugin's `x-message-deduplication`.
    pub deduplication: Option<bool>,
    /// The deduplication plugin's `x-cache-size`.
    pub cache_size: Option<u64>,
    /// `delayed-retry-type`.
    pub delayed_retry_type: Option<String>,
    /// `delayed-retry-min` in milliseconds.
    pub delayed_retry_min: Option<u64>,
    /// `delayed-retry-max` in milliseconds.
    pub delayed_retry_max: Option<u64>,
    /// `delayed-retry-multiplier`.
    pub delayed_retry_multiplier: Option<u64>,
    /// `delayed-retry-jitter`.
    pub delayed_retry_jitter: Option<String>,
    /// `max-age` (streams), as written (`7D`).
    pub max_age: Option<String>,
}

impl QueuePolicy {
    /// The queue keys of a (merged) definition.
    pub fn from_definition(definition: &Definition) -> Self {
        let uint = |key: &str| definition.get(key).and_then(Value::as_u64);
        let text = |key: &str| {
            definition
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        QueuePolicy {
            message_ttl: uint("message-ttl"),
            expires: uint("expires"),
            max_length: uint("max-length"),
            max_length_bytes: uint("max-length-bytes"),
            overflow: text("overflow"),
            dead_letter_exchange: text("dead-letter-exchange"),
            dead_letter_routing_key: text("dead-letter-routing-key"),
            delivery_limit: definition
                .get("delivery-limit")
                .and_then(Value::as_i64)
                .map(|limit| u64::try_from(limit).unwrap_or(u64::MAX)),
            consumer_timeout: uint("consumer-timeout"),
            deduplication: definition
                .get("x-message-deduplication")
                .and_then(Value::as_bool),
            cache_size: uint("x-cache-size"),
            delayed_retry_type: text("delayed-retry-type"),
            delayed_retry_min: uint("delayed-retry-min"),
            delayed_retry_max: uint("delayed-retry-max"),
            delayed_retry_multiplier: uint("delayed-retry-multiplier"),
            delayed_retry_jitter: text("delayed-retry-jitter"),
            max_age: text("max-age"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(value: Value) -> Definition {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn unknown_keys_and_bad_values_get_rabbitmq_texts() {
        assert_eq!(
            validate(PolicyKind::Policy, &def(json!({"foo": "bar"}))),
            Err("[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings".into())
        );
        assert_eq!(
            validate(PolicyKind::Policy, &def(json!({"message-ttl": -1}))),
            Err("-1 is not a valid message TTL".into())
        );
        assert_eq!(
            validate(PolicyKind::Policy, &def(json!({"expires": 0}))),
            Err("0 is not a valid queue expiry".into())
        );
        assert_eq!(
            validate(PolicyKind::Policy, &def(json!({"overflow": "x"}))),
            Err("<<\"x\">> is not a valid overflow value".into())
        );
        assert_eq!(
            validate(PolicyKind::Policy, &def(json!({}))),
            Err("no policy provided".into())
        );
        assert_eq!(
            validate(
                PolicyKind::Operator,
                &def(json!({"dead-letter-exchange": "a"}))
            ),
            Err(
                "[{<<\"dead-letter-exchange\">>,<<\"a\">>}] are not recognised policy settings"
                    .into()
            )
        );
        assert!(validate(PolicyKind::Policy, &def(json!({"ha-mode": "all"}))).is_ok());
        assert!(validate(PolicyKind::Operator, &def(json!({"max-length": 5}))).is_ok());
    }

    #[test]
    fn an_operator_policy_lowers_limits_and_adds_keys() {
        let merged = merge(
            Some(&def(
                json!({"max-length": 10, "message-ttl": 100, "dead-letter-exchange": "d"}),
            )),
            Some(&def(
                json!({"max-length": 3, "message-ttl": 500, "expires": 9}),
            )),
        );
        assert_eq!(
            Value::Object(merged),
            json!({"max-length": 3, "message-ttl": 100, "dead-letter-exchange": "d", "expires": 9})
        );
        assert!(merge(None, None).is_empty());
    }

    #[test]
    fn typed_queue_keys() {
        let p = QueuePolicy::from_definition(&def(
            json!({"message-ttl": 1000, "overflow": "reject-publish", "dead-letter-exchange": "dlx"}),
        ));
        assert_eq!(p.message_ttl, Some(1000));
        assert_eq!(p.overflow.as_deref(), Some("reject-publish"));
        assert_eq!(p.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(p.max_length, None);
    }
}

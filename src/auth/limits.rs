//! Per-vhost and per-user limits as RabbitMQ 3.10+ has them: their names, the
//! validation texts of `rabbit_parameter_validation`, and which value is in
//! force (a negative one is no limit; 0 allows nothing).
//!
//! Vhost limits (`max-connections`, `max-queues`) are RabbitMQ's
//! `vhost-limits` runtime parameter; user limits (`max-connections`,
//! `max-channels`) sit in the user record (`limits` in definitions).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RegistryError;

/// `max-connections`: live AMQP connections (to a vhost, or of a user).
pub const MAX_CONNECTIONS: &str = "max-connections";
/// `max-queues`: queues in a vhost.
pub const MAX_QUEUES: &str = "max-queues";
/// `max-channels`: open channels of a user, over all their connections.
pub const MAX_CHANNELS: &str = "max-channels";

/// The limits a vhost may have.
pub const VHOST_LIMITS: [&str; 2] = [MAX_CONNECTIONS, MAX_QUEUES];
/// The limits a user may have.
pub const USER_LIMITS: [&str; 2] = [MAX_CONNECTIONS, MAX_CHANNELS];

/// One vhost's limits, by name.
pub type Limits = BTreeMap<String, i64>;

/// A vhost's limits as stored (and exported as RabbitMQ's `vhost-limits`
/// parameter: `{"vhost": v, "component": "vhost-limits", "name": "limits",
/// "value": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VHostLimitsDef {
    /// The vhost.
    pub vhost: String,
    /// Its limits.
    pub value: Limits,
}

/// Whose limits: RabbitMQ names the validated term `limits` for a vhost and
/// `user-limits` for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `max-connections`, `max-queues`.
    VHost,
    /// `max-connections`, `max-channels`.
    User,
}

impl Scope {
    fn known(self) -> &'static [&'static str] {
        match self {
            Scope::VHost => &VHOST_LIMITS,
            Scope::User => &USER_LIMITS,
        }
    }

    fn term(self) -> &'static str {
        match self {
            Scope::VHost => "limits",
            Scope::User => "user-limits",
        }
    }
}

/// An Erlang `~p` rendering of a JSON value, as RabbitMQ's texts print it.
fn erlang_term(value: &Value) -> String {
    match value {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Checks a limit as RabbitMQ's `rabbit_parameter_validation` does: a known
/// name and an integer value. Returns the value. The texts are RabbitMQ
/// 3.10.8's: a vhost limit is a runtime parameter, whose errors read
/// `Validation failed\n\n...\n`; a user limit's are bare.
pub fn validate(scope: Scope, name: &str, value: &Value) -> Result<i64, RegistryError> {
    let worded = |text: String| {
        RegistryError::BadLimit(match scope {
            Scope::VHost => format!("Validation failed\n\n{text}\n"),
            Scope::User => text,
        })
    };
    if !scope.known().contains(&name) {
        return Err(worded(format!(
            "Unrecognised terms [{{<<\"{name}\">>,{}}}] in {}",
            erlang_term(value),
            scope.term()
        )));
    }
    value.as_i64().ok_or_else(|| {
        worded(format!(
            "{name} should be a number, actually was {}",
            erlang_term(value)
        ))
    })
}

/// The limit in force for a stored value: none for a negative one.
pub fn in_force(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// Whether `count` live things may become one more under `limit` (RabbitMQ:
/// a limit of 0 allows none, N allows N).
pub fn allows_one_more(limit: Option<u64>, count: usize) -> bool {
    limit.is_none_or(|limit| (count as u64) < limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_follows_rabbitmq() {
        assert_eq!(validate(Scope::VHost, MAX_QUEUES, &json!(3)), Ok(3));
        assert_eq!(validate(Scope::User, MAX_CHANNELS, &json!(-1)), Ok(-1));
        let bad_name = validate(Scope::VHost, MAX_CHANNELS, &json!(1)).expect_err("unknown name");
        assert_eq!(
            bad_name.to_string(),
            "Validation failed\n\nUnrecognised terms [{<<\"max-channels\">>,1}] in limits\n"
        );
        let bad_value =
            validate(Scope::User, MAX_CONNECTIONS, &json!("ten")).expect_err("not a number");
        assert_eq!(
            bad_value.to_string(),
            "max-connections should be a number, actually was <<\"ten\">>"
        );
        assert!(validate(Scope::User, MAX_CONNECTIONS, &json!(1.5)).is_err());
    }

    #[test]
    fn zero_allows_nothing_and_negative_is_no_limit() {
        assert!(!allows_one_more(in_force(Some(0)), 0));
        assert!(allows_one_more(in_force(Some(2)), 1));
        assert!(!allows_one_more(in_force(Some(2)), 2));
        assert!(allows_one_more(in_force(Some(-1)), 1000));
        assert!(allows_one_more(in_force(None), 1000));
    }
}

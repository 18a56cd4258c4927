//! A dynamic shovel's definition: the `value` of a `shovel` runtime
//! parameter, read and validated as RabbitMQ's `rabbit_shovel_parameters`
//! does for the AMQP 0-9-1 protocol (its keys, defaults and refusal texts),
//! into a typed [`ShovelDef`].

use std::time::Duration;

use serde_json::{Map, Value};

use super::uri::ShovelUri;

/// Why a definition is refused (the API answers 400 `bad_request` with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// When to acknowledge a message at the source (`ack-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `on-confirm` (default): after the destination confirmed it.
    OnConfirm,
    /// `on-publish`: once it was sent to the destination.
    OnPublish,
    /// `no-ack`: the source forgets it as it delivers it.
    NoAck,
}

/// When the shovel deletes itself (`src-delete-after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAfter {
    /// `never` (default).
    Never,
    /// `queue-length`: after as many messages as the queue held at start.
    QueueLength,
    /// After this many messages.
    Count(u64),
}

/// Where messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `src-queue` (declared durable when missing, unless predeclared).
    Queue {
        /// Its name.
        name: String,
        /// `src-predeclared`: wait for it instead of declaring it.
        predeclared: bool,
    },
    /// `src-exchange` + `src-exchange-key`: an exclusive server-named
    /// queue bound to it.
    Exchange {
        /// The exchange.
        exchange: String,
        /// The binding key (`""` when absent).
        key: String,
    },
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// `dest-queue`, through the default exchange.
    Queue {
        /// Its name.
        name: String,
        /// `dest-predeclared`: do not declare it.
        predeclared: bool,
    },
    /// `dest-exchange` (or neither key: the message's own exchange), with
    /// `dest-exchange-key` or the message's own routing key.
    Exchange {
        /// `None`: the exchange the message was published to.
        exchange: Option<String>,
        /// `None`: the message's routing key.
        key: Option<String>,
    },
}

/// A validated shovel definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShovelDef {
    /// `src-uri`: tried in order until one connects.
    pub src_uris: Vec<ShovelUri>,
    /// The source.
    pub source: Source,
    /// `dest-uri`: tried in order until one connects.
    pub dest_uris: Vec<ShovelUri>,
    /// The destination.
    pub dest: Dest,
    /// `ack-mode`.
    pub ack_mode: AckMode,
    /// `src-delete-after`.
    pub delete_after: DeleteAfter,
    /// `src-prefetch-count` (default 1000).
    pub prefetch: u16,
    /// `dest-add-forward-headers`: add `x-shovelled`.
    pub add_forward_headers: bool,
    /// `dest-add-timestamp-header`: add `x-shovelled-timestamp`.
    pub add_timestamp_header: bool,
    /// `reconnect-delay` (default 5 s, RabbitMQ's `?DEFAULT_RECONNECT_DELAY`);
    /// 0: no reconnection, a failed shovel stays terminated (as RabbitMQ's
    /// `temporary` worker).
    pub reconnect_delay: Duration,
}

/// The keys Warren reads; their older spellings (RabbitMQ 3.6's
/// `delete-after`, `prefetch-count`, `add-forward-headers`,
/// `add-timestamp-header`) are read too.
const KNOWN: &[&str] = &[
    "src-uri",
    "src-protocol",
    "src-queue",
    "src-exchange",
    "src-exchange-key",
    "src-predeclared",
    "src-delete-after",
    "delete-after",
    "src-prefetch-count",
    "prefetch-count",
    "dest-uri",
    "dest-protocol",
    "dest-queue",
    "dest-exchange",
    "dest-exchange-key",
    "dest-predeclared",
    "dest-add-forward-headers",
    "add-forward-headers",
    "dest-add-timestamp-header",
    "add-timestamp-header",
    "ack-mode",
    "reconnect-delay",
];

/// RabbitMQ keys of features Warren's shovels do not have: refused unless
/// empty, so a definition never silently means less than it says.
const UNSUPPORTED: &[&str] = &[
    "src-queue-args",
    "dest-queue-args",
    "dest-publish-properties",
];

impl ShovelDef {
    /// Reads and validates `value` for the shovel `name`.
    pub fn parse(name: &str, value: &Value) -> Result<Self, ParamError> {
        let err = |s: String| Err(ParamError(s));
        let Some(map) = value.as_object() else {
            return err(format!(
                "the shovel definition of {name} must be a JSON object"
            ));
        };
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN.contains(k) && !UNSUPPORTED.contains(k))
            .collect();
        if !unknown.is_empty() {
            return err(format!("Unrecognised terms {unknown:?} in {name}"));
        }
        for key in UNSUPPORTED {
            match map.get(*key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(o)) if o.is_empty() => {}
                Some(_) => return err(format!("{key} is not supported by Warren's shovels")),
            }
        }
        for key in ["src-protocol", "dest-protocol"] {
            match map.get(key) {
                None => {}
                Some(Value::String(p)) if p == "amqp091" => {}
                Some(other) => {
                    return err(format!(
                        "{key} should be \"amqp091\" (the only protocol Warren's shovels speak), actually was {other}"
                    ));
                }
            }
        }
        let src_uris = uris(map, "src-uri", name)?;
        let dest_uris = uris(map, "dest-uri", name)?;
        let src_queue = string(map, "src-queue")?;
        let src_exchange = string(map, "src-exchange")?;
        let source = match (src_queue, src_exchange) {
            (None, None) => return err("Must specify 'src-exchange' or 'src-queue'".into()),
            (Some(_), Some(_)) => {
                return err("Cannot specify 'src-exchange' and 'src-queue'".into());
            }
            (Some(name), None) => Source::Queue {
                name,
                predeclared: boolean(map, &["src-predeclared"])?,
            },
            (None, Some(exchange)) => Source::Exchange {
                exchange,
                key: string(map, "src-exchange-key")?.unwrap_or_default(),
            },
        };
        let dest_queue = string(map, "dest-queue")?;
        let dest_exchange = string(map, "dest-exchange")?;
        let dest = match (dest_queue, dest_exchange) {
            (Some(_), Some(_)) => {
                return err("Cannot specify 'dest-exchange' and 'dest-queue'".into());
            }
            (Some(name), None) => Dest::Queue {
                name,
                predeclared: boolean(map, &["dest-predeclared"])?,
            },
            (None, exchange) => Dest::Exchange {
                exchange,
                key: string(map, "dest-exchange-key")?,
            },
        };
        let ack_mode = match map.get("ack-mode") {
            None => AckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-confirm" => AckMode::OnConfirm,
            Some(Value::String(m)) if m == "on-publish" => AckMode::OnPublish,
            Some(Value::String(m)) if m == "no-ack" => AckMode::NoAck,
            Some(other) => {
                return err(format!(
                    "ack-mode should be one of [\"no-ack\",\"on-publish\",\"on-confirm\"], actually was {other}"
                ));
            }
        };
        let delete_after = match first(map, &["src-delete-after", "delete-after"]) {
            None => DeleteAfter::Never,
            Some((_, Value::String(s))) if s == "never" => DeleteAfter::Never,
            Some((_, Value::String(s))) if s == "queue-length" => DeleteAfter::QueueLength,
            Some((_, Value::Number(n))) if n.as_u64().is_some() => {
                DeleteAfter::Count(n.as_u64().unwrap_or_default())
            }
            Some((key, other)) => {
                return err(format!(
                    "{key} should be a number greater than or equal to 0, \"never\" or \"queue-length\", actually was {other}"
                ));
            }
        };
        if ack_mode == AckMode::NoAck && matches!(delete_after, DeleteAfter::Count(_)) {
            return err("Cannot specify 'no-ack' and numerical 'delete-after'".into());
        }
        let prefetch = match first(map, &["src-prefetch-count", "prefetch-count"]) {
            None => 1000,
            Some((key, v)) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    return err(format!(
                        "{key} should be a number from 0 to 65535, actually was {v}"
                    ));
                }
            },
        };
        let reconnect_delay = match map.get("reconnect-delay") {
            None => Duration::from_secs(5),
            Some(v) => match v.as_f64().filter(|s| s.is_finite() && *s >= 0.0) {
                Some(s) => Duration::from_secs_f64(s.min(86_400.0)),
                None => {
                    return err(format!(
                        "reconnect-delay should be a number greater than or equal to 0, actually was {v}"
                    ));
                }
            },
        };
        Ok(ShovelDef {
            src_uris,
            source,
            dest_uris,
            dest,
            ack_mode,
            delete_after,
            prefetch,
            add_forward_headers: boolean(
                map,
                &["dest-add-forward-headers", "add-forward-headers"],
            )?,
            add_timestamp_header: boolean(
                map,
                &["dest-add-timestamp-header", "add-timestamp-header"],
            )?,
            reconnect_delay,
        })
    }
}

/// The first of `keys` present, with its value.
fn first<'a>(map: &'a Map<String, Value>, keys: &[&'a str]) -> Option<(&'a str, &'a Value)> {
    keys.iter().find_map(|k| map.get(*k).map(|v| (*k, v)))
}

/// A string key, if present.
fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ParamError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ParamError(format!(
            "{key} should be a string, actually was {other}"
        ))),
    }
}

/// A boolean key (the first of its spellings present), false when absent.
fn boolean(map: &Map<String, Value>, keys: &[&str]) -> Result<bool, ParamError> {
    match first(map, keys) {
        None => Ok(false),
        Some((_, Value::Bool(b))) => Ok(*b),
        Some((key, other)) => Err(ParamError(format!(
            "{key} should be boolean, actually was {other}"
        ))),
    }
}

/// `src-uri` / `dest-uri`: mandatory, a string or a non-empty list of them.
fn uris(map: &Map<String, Value>, key: &str, name: &str) -> Result<Vec<ShovelUri>, ParamError> {
    let list = match map.get(key) {
        None | Some(Value::Null) => {
            return Err(ParamError(format!("Key <<\"{key}\">> not found in {name}")));
        }
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    ParamError(format!("{key} should be a string or a list of strings"))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ParamError(format!(
                "{key} should be a string or a non-empty list of strings"
            )));
        }
    };
    list.into_iter().map(ShovelUri::parse).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<ShovelDef, String> {
        ShovelDef::parse("s", &v).map_err(|e| e.0)
    }

    #[test]
    fn defaults() {
        let d = parse(json!({"src-uri": "amqp://", "src-queue": "a", "dest-uri": ["amqp://h1", "amqp://h2"], "dest-queue": "b"}))
            .expect("valid");
        assert_eq!(d.ack_mode, AckMode::OnConfirm);
        assert_eq!(d.delete_after, DeleteAfter::Never);
        assert_eq!(d.prefetch, 1000);
        assert_eq!(d.reconnect_delay, Duration::from_secs(5));
        assert_eq!(d.dest_uris.len(), 2);
        assert!(!d.add_forward_headers);
    }

    #[test]
    fn refusals_as_rabbitmq_words_them() {
        let base = json!({"src-uri": "amqp://", "dest-uri": "amqp://"});
        let with = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            parse(v).expect_err("refused")
        };
        assert_eq!(
            with(json!({})),
            "Must specify 'src-exchange' or 'src-queue'"
        );
        assert_eq!(
            with(json!({"src-queue": "a", "src-exchange": "x"})),
            "Cannot specify 'src-exchange' and 'src-queue'"
        );
        assert!(with(json!({"src-queue": "a", "ack-mode": "sometimes"})).starts_with("ack-mode"));
        assert_eq!(
            with(json!({"src-queue": "a", "ack-mode": "no-ack", "src-delete-after": 3})),
            "Cannot specify 'no-ack' and numerical 'delete-after'"
        );
        assert!(
            with(json!({"src-queue": "a", "src-delete-after": "soon"})).contains("queue-length")
        );
        assert!(with(json!({"src-queue": "a", "src-protocol": "amqp10"})).contains("amqp091"));
        assert!(with(json!({"src-queue": "a", "colour": "red"})).starts_with("Unrecognised"));
        assert_eq!(
            parse(json!({"src-queue": "a", "dest-uri": "amqp://"})).expect_err("no src-uri"),
            "Key <<\"src-uri\">> not found in s"
        );
    }
}

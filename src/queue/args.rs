//! Queue `x-` arguments: parsed and validated once, at declare, into [`QueueArgs`].
//! No hot path looks into the declare's field table again.
//!
//! Errors read as RabbitMQ's: `PRECONDITION_FAILED - invalid arg 'x-message-ttl'
//! for queue 'q' in vhost '/': {value_negative,-1}`.

use warren_codec::types::{AMQPValue, FieldTable};

use crate::error::AmqpError;

/// What to do when a length limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest message.
    #[default]
    DropHead,
    /// Refuse the new message (nack to a confirming publisher).
    RejectPublish,
    /// Refuse and dead-letter the new message.
    RejectPublishDlx,
}

/// A queue's `x-` arguments, typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    /// `x-message-ttl` in milliseconds.
    pub message_ttl: Option<u64>,
    /// `x-expires` in milliseconds.
    pub expires: Option<u64>,
    /// `x-max-length` in messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes` in body bytes.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority` (1-255).
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit`.
    pub delivery_limit: Option<u64>,
}

/// Arguments RabbitMQ compares when a queue is declared again.
pub const EQUIVALENCE_KEYS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-single-active-consumer",
    "x-queue-type",
    "x-delivery-limit",
];

/// Arguments RabbitMQ knows that Warren accepts without acting on them: they tune
/// RabbitMQ's internals (storage mode, placement, quorum replication).
const ACCEPTED: &[&str] = &[
    "x-queue-type",
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
    "x-queue-leader-locator",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-dead-letter-strategy",
    "x-quorum-initial-group-size",
    "x-quorum-target-group-size",
    "x-consumer-timeout",
];

impl QueueArgs {
    /// Parses a queue.declare argument table; `queue` is `queue 'q' in vhost '/'`.
    pub fn parse(table: &FieldTable, queue: &str) -> Result<Self, AmqpError> {
        let mut args = QueueArgs::default();
        for (key, value) in table.inner() {
            let key = key.as_str();
            let invalid = |why: String| {
                AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {why}"))
            };
            match key {
                "x-message-ttl" => args.message_ttl = Some(non_negative(value).map_err(invalid)?),
                "x-expires" => {
                    let ms = non_negative(value).map_err(invalid)?;
                    if ms == 0 {
                        return Err(invalid("{value_zero,0}".into()));
                    }
                    args.expires = Some(ms);
                }
                "x-max-length" => args.max_length = Some(non_negative(value).map_err(invalid)?),
                "x-max-length-bytes" => {
                    args.max_length_bytes = Some(non_negative(value).map_err(invalid)?);
                }
                "x-delivery-limit" => {
                    args.delivery_limit = Some(non_negative(value).map_err(invalid)?);
                }
                "x-max-priority" => {
                    let p = non_negative(value).map_err(invalid)?;
                    if p > 255 {
                        return Err(invalid(format!("{{value_too_large,{p},255}}")));
                    }
                    args.max_priority = (p > 0).then_some(p as u8);
                }
                "x-overflow" => {
                    args.overflow = match string(value).map_err(invalid)?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => return Err(invalid(format!("{{invalid_value,<<\"{other}\">>}}"))),
                    }
                }
                "x-dead-letter-exchange" => {
                    args.dead_letter_exchange = Some(string(value).map_err(invalid)?);
                }
                "x-dead-letter-routing-key" => {
                    args.dead_letter_routing_key = Some(string(value).map_err(invalid)?);
                }
                "x-single-active-consumer" => match value {
                    AMQPValue::Boolean(b) => args.single_active_consumer = *b,
                    other => {
                        return Err(invalid(format!(
                            "{{unacceptable_type,{}}}",
                            type_name(other)
                        )));
                    }
                },
                "x-queue-type" => {
                    let t = string(value).map_err(invalid)?;
                    if !matches!(t.as_str(), "classic" | "quorum") {
                        return Err(invalid(format!("{{unsupported_queue_type,<<\"{t}\">>}}")));
                    }
                }
                k if ACCEPTED.contains(&k) => {}
                k if k.starts_with("x-") => return Err(invalid("unknown argument".into())),
                // Arguments without the x- prefix are the application's own.
                _ => {}
            }
        }
        if args.dead_letter_routing_key.is_some() && args.dead_letter_exchange.is_none() {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-dead-letter-routing-key' for {queue}: {{no_dlx,\"x-dead-letter-exchange must be set\"}}"
            )));
        }
        Ok(args)
    }
}

/// The 406 when a redeclare's arguments differ from the queue's in a key RabbitMQ
/// compares. Integers of any width compare by value, as in RabbitMQ.
pub fn assert_equivalent(
    current: &FieldTable,
    wanted: &FieldTable,
    queue: &str,
) -> Result<(), AmqpError> {
    for key in EQUIVALENCE_KEYS {
        let now = current.inner().get(*key);
        let new = wanted.inner().get(*key);
        if !same(now, new) {
            let show = |v: Option<&AMQPValue>| match v {
                None => "none".to_owned(),
                Some(v) => format!("the value '{}' of type '{}'", display(v), type_name(v)),
            };
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for {queue}: received {} but current is {}",
                show(new),
                show(now)
            )));
        }
    }
    Ok(())
}

fn same(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (integer(a), integer(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

fn integer(value: &AMQPValue) -> Option<i128> {
    Some(match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        _ => return None,
    })
}

fn non_negative(value: &AMQPValue) -> Result<u64, String> {
    match integer(value) {
        Some(v) if v < 0 => Err(format!("{{value_negative,{v}}}")),
        Some(v) => Ok(u64::try_from(v).unwrap_or(u64::MAX)),
        None => Err(format!("{{unacceptable_type,{}}}", type_name(value))),
    }
}

fn string(value: &AMQPValue) -> Result<String, String> {
    match value {
        AMQPValue::LongString(s) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Ok(s.as_str().to_owned()),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

fn display(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => integer(other).map_or_else(|| format!("{other:?}"), |i| i.to_string()),
    }
}

/// RabbitMQ's name for a field type, as used in its error texts.
pub fn type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "queue 'q' in vhost '/'";

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn parses_known_arguments() {
        let args = QueueArgs::parse(
            &table(&[
                ("x-message-ttl", AMQPValue::LongInt(1000)),
                ("x-max-length", AMQPValue::ShortShortUInt(5)),
                ("x-overflow", AMQPValue::LongString("reject-publish".into())),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString("dlx".into()),
                ),
                ("x-max-priority", AMQPValue::LongLongInt(10)),
                ("x-queue-type", AMQPValue::LongString("classic".into())),
                ("app-specific", AMQPValue::Boolean(true)),
            ]),
            Q,
        )
        .expect("valid");
        assert_eq!(args.message_ttl, Some(1000));
        assert_eq!(args.max_length, Some(5));
        assert_eq!(args.overflow, Overflow::RejectPublish);
        assert_eq!(args.max_priority, Some(10));
        assert_eq!(args.dead_letter_exchange.as_deref(), Some("dlx"));
    }

    #[test]
    fn refuses_bad_and_unknown_arguments() {
        let e = QueueArgs::parse(&table(&[("x-message-ttl", AMQPValue::LongInt(-1))]), Q)
            .expect_err("negative");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        let e = QueueArgs::parse(
            &table(&[("x-expires", AMQPValue::LongString("1".into()))]),
            Q,
        )
        .expect_err("type");
        assert!(
            e.text.ends_with("{unacceptable_type,longstr}"),
            "{}",
            e.text
        );
        assert!(QueueArgs::parse(&table(&[("x-expires", AMQPValue::LongInt(0))]), Q).is_err());
        assert!(
            QueueArgs::parse(&table(&[("x-max-priority", AMQPValue::LongInt(256))]), Q).is_err()
        );
        assert!(QueueArgs::parse(&table(&[("x-bogus", AMQPValue::LongInt(1))]), Q).is_err());
        assert!(
            QueueArgs::parse(
                &table(&[(
                    "x-dead-letter-routing-key",
                    AMQPValue::LongString("k".into())
                )]),
                Q
            )
            .is_err()
        );
    }

    #[test]
    fn equivalence_compares_integers_by_value() {
        let a = table(&[("x-message-ttl", AMQPValue::LongInt(1000))]);
        let b = table(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]);
        assert!(assert_equivalent(&a, &b, Q).is_ok());
        let e = assert_equivalent(&FieldTable::default(), &a, Q).expect_err("differs");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received the value '1000' of type 'signedint' but current is none"
        );
    }
}

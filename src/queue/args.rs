//! Queue `x-` arguments: parsed and validated once, at declare, into [`QueueArgs`].
//! No hot path looks into the declare's field table again.
//!
//! Errors read as RabbitMQ's: `PRECONDITION_FAILED - invalid arg 'x-message-ttl'
//! for queue 'q' in vhost '/': {value_negative,-1}`.

use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::type_name;

use crate::equivalence;
use warren_exchanges::integer;

use super::QueueType;
use super::retry::{DEFAULT_RETRY_DELIVERY_LIMIT, RetryArgs, RetrySettings};
use super::stream::StreamArgs;
use crate::dedup::DedupArgs;
use crate::error::AmqpError;
use crate::policy::QueuePolicy;

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
    /// `x-overflow` was given (a policy's `overflow` then does not apply).
    pub overflow_given: bool,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority` (1-255).
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit` (`u64::MAX`: a negative value, no limit).
    pub delivery_limit: Option<u64>,
    /// `x-queue-type`.
    pub queue_type: QueueType,
    /// `x-consumer-timeout` in milliseconds: how long its consumers may hold
    /// a delivery unacknowledged.
    pub consumer_timeout: Option<u64>,
    /// `x-message-deduplication` and its cache settings (`None`: off).
    pub deduplication: Option<DedupArgs>,
    /// The `x-delayed-retry-*` arguments as given.
    pub retry_settings: RetrySettings,
    /// Delayed retries in force (`None`: a return is ready at once).
    pub retry: Option<RetryArgs>,
    /// A stream's arguments (`Some` exactly when `x-queue-type` is `stream`).
    pub stream: Option<StreamArgs>,
}

/// Arguments RabbitMQ compares when a classic queue is declared again, in the
/// order it compares them (the first difference is the one reported), and
/// Warren's `x-delivery-limit`.
pub const EQUIVALENCE_KEYS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-delivery-limit",
];

/// The longest TTL or expiry RabbitMQ takes: ten years in milliseconds.
const MAX_EXPIRY_MS: u64 = 315_360_000_000;

impl QueueArgs {
    /// Parses a new queue's declare arguments; `queue` is `queue 'q' in vhost '/'`.
    ///
    /// Checks run in RabbitMQ's order, so the argument named in the 406 is the one
    /// RabbitMQ names: the dead-letter exchange's type (checked by the channel),
    /// then `x-queue-type`, then the others. `x-` arguments RabbitMQ does not know
    /// are ignored, as RabbitMQ ignores them.
    pub fn parse(table: &FieldTable, queue: &str) -> Result<Self, AmqpError> {
        let get = |key: &str| table.inner().get(key);
        if let Some(v) = get("x-dead-letter-exchange")
            && string(v).is_err()
        {
            return Err(AmqpError::precondition_failed(format!(
                "invalid type '{}' for arg 'x-dead-letter-exchange' in {queue}",
                type_name(v)
            )));
        }
        let invalid = |key: &str, why: String| {
            AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {why}"))
        };
        let mut args = QueueArgs::default();
        if let Some(v) = get("x-queue-type") {
            let t = string(v).map_err(|e| invalid("x-queue-type", e))?;
            match QueueType::from_name(&t) {
                Some(kind) if kind.supported() => args.queue_type = kind,
                _ => {
                    return Err(invalid(
                        "x-queue-type",
                        format!("\"unsupported queue type '{t}'\""),
                    ));
                }
            }
        }
        if args.queue_type == QueueType::Stream {
            // A stream takes its own arguments and refuses the classic ones.
            args.stream = Some(StreamArgs::parse(table, queue)?);
            return Ok(args);
        }
        if let Some(v) = get("x-expires") {
            let ms = int(v).map_err(|e| invalid("x-expires", e))?;
            if ms == 0 {
                return Err(invalid("x-expires", "{value_zero,0}".into()));
            }
            args.expires = Some(expiry(ms).map_err(|e| invalid("x-expires", e))?);
        }
        if let Some(v) = get("x-message-ttl") {
            let ms = int(v).map_err(|e| invalid("x-message-ttl", e))?;
            args.message_ttl = Some(expiry(ms).map_err(|e| invalid("x-message-ttl", e))?);
        }
        if let Some(v) = get("x-dead-letter-exchange") {
            args.dead_letter_exchange =
                Some(string(v).map_err(|e| invalid("x-dead-letter-exchange", e))?);
        }
        if let Some(v) = get("x-dead-letter-routing-key") {
            let key = string(v).map_err(|e| invalid("x-dead-letter-routing-key", e))?;
            if args.dead_letter_exchange.is_none() {
                return Err(invalid(
                    "x-dead-letter-routing-key",
                    "routing_key_but_no_dlx_defined".into(),
                ));
            }
            args.dead_letter_routing_key = Some(key);
        }
        if let Some(v) = get("x-delivery-limit") {
            // Negative: no limit, as RabbitMQ 4 reads it.
            let limit = int(v).map_err(|e| invalid("x-delivery-limit", e))?;
            args.delivery_limit = Some(u64::try_from(limit).unwrap_or(u64::MAX));
        }
        for (key, slot) in [
            ("x-max-length", &mut args.max_length),
            ("x-max-length-bytes", &mut args.max_length_bytes),
            ("x-consumer-timeout", &mut args.consumer_timeout),
        ] {
            if let Some(v) = get(key) {
                *slot = Some(non_negative(v).map_err(|e| invalid(key, e))?);
            }
        }
        for key in ["x-max-in-memory-length", "x-max-in-memory-bytes"] {
            if let Some(v) = get(key) {
                non_negative(v).map_err(|e| invalid(key, e))?;
            }
        }
        if let Some(v) = get("x-max-priority") {
            let p = non_negative(v).map_err(|e| invalid("x-max-priority", e))?;
            if p > 255 {
                return Err(invalid(
                    "x-max-priority",
                    format!("{{max_value_exceeded,{p}}}"),
                ));
            }
            args.max_priority = u8::try_from(p).ok().filter(|&p| p > 0);
        }
        if let Some(v) = get("x-overflow") {
            args.overflow_given = true;
            args.overflow = match string(v).map_err(|e| invalid("x-overflow", e))?.as_str() {
                "drop-head" => Overflow::DropHead,
                "reject-publish" => Overflow::RejectPublish,
                "reject-publish-dlx" => Overflow::RejectPublishDlx,
                _ => return Err(invalid("x-overflow", "invalid_overflow".into())),
            }
        }
        if let Some(v) = get("x-queue-mode") {
            let mode = string(v).map_err(|e| invalid("x-queue-mode", e))?;
            if !matches!(mode.as_str(), "default" | "lazy") {
                return Err(invalid(
                    "x-queue-mode",
                    format!("\"unsupported queue mode '{mode}'\""),
                ));
            }
        }
        if let Some(v) = get("x-queue-version") {
            let version = non_negative(v).map_err(|e| invalid("x-queue-version", e))?;
            if !matches!(version, 1 | 2) {
                return Err(invalid(
                    "x-queue-version",
                    format!("\"unsupported queue version '{version}'\""),
                ));
            }
        }
        if let Some(v) = get("x-single-active-consumer") {
            match v {
                AMQPValue::Boolean(b) => args.single_active_consumer = *b,
                other => {
                    return Err(invalid(
                        "x-single-active-consumer",
                        format!("{{unacceptable_type,{}}}", type_name(other)),
                    ));
                }
            }
        }
        args.deduplication = DedupArgs::for_queue(table)?;
        args.retry_settings = RetrySettings::from_arguments(table, queue)?;
        args.retry = args.retry_settings.resolve();
        Ok(args)
    }

    /// The delivery limit in force: `x-delivery-limit`, else 20 on a queue
    /// with delayed retries (LavinMQ's default, and RabbitMQ 4's for quorum
    /// queues); `None`: unlimited.
    pub fn delivery_limit(&self) -> Option<u64> {
        let default = self.retry.map(|_| DEFAULT_RETRY_DELIVERY_LIMIT);
        self.delivery_limit
            .or(default)
            .filter(|&limit| limit != u64::MAX)
    }

    /// Whether deliveries carry `x-delivery-count` once they came back: as on
    /// RabbitMQ's quorum queues, and on any queue that counts returns
    /// (a delivery limit or delayed retries).
    pub fn counts_deliveries(&self) -> bool {
        self.queue_type == QueueType::Quorum
            || self.delivery_limit.is_some()
            || self.retry.is_some()
    }
}

impl QueueArgs {
    /// The arguments in force under a policy, by RabbitMQ's per-key rule for
    /// classic queues (`rabbit_amqqueue_process:process_args_policy`): for
    /// limits and times (`message-ttl`, `expires`, `max-length`,
    /// `max-length-bytes`, `delivery-limit`, `consumer-timeout`) the lower of
    /// the argument and the policy; for `dead-letter-exchange`,
    /// `dead-letter-routing-key` and `overflow` the queue's own argument when
    /// it has one, else the policy's.
    pub fn with_policy(&self, policy: &QueuePolicy) -> QueueArgs {
        let mut args = self.clone();
        args.message_ttl = lower(self.message_ttl, policy.message_ttl);
        args.expires = lower(self.expires, policy.expires);
        args.max_length = lower(self.max_length, policy.max_length);
        args.max_length_bytes = lower(self.max_length_bytes, policy.max_length_bytes);
        args.delivery_limit = lower(self.delivery_limit, policy.delivery_limit);
        args.consumer_timeout = lower(self.consumer_timeout, policy.consumer_timeout);
        if self.dead_letter_exchange.is_none() {
            args.dead_letter_exchange = policy.dead_letter_exchange.clone();
        }
        if self.dead_letter_routing_key.is_none() {
            args.dead_letter_routing_key = policy.dead_letter_routing_key.clone();
        }
        // The deduplication plugin reads the policy's `x-message-deduplication`
        // before the queue's argument: the policy wins.
        match policy.deduplication {
            Some(false) => args.deduplication = None,
            Some(true) if self.deduplication.is_none() => {
                args.deduplication = Some(DedupArgs::for_queue_policy(policy.cache_size));
            }
            _ => {}
        }
        args.retry_settings = self
            .retry_settings
            .with_policy(&RetrySettings::from_policy(policy));
        args.retry = args.retry_settings.resolve();
        if !self.overflow_given {
            args.overflow = match policy.overflow.as_deref() {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            };
        }
        args
    }
}

/// RabbitMQ's rule for a limit set by both an argument and a policy: the
/// lower of the two, else whichever is set.
pub fn lower(own: Option<u64>, policy: Option<u64>) -> Option<u64> {
    match (own, policy) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The 406 when a redeclare's arguments differ from the queue's in a key RabbitMQ
/// compares. Integers of any width compare by value, as in RabbitMQ; a queue
/// declared without `x-queue-type` equals one declared `classic`.
pub fn assert_equivalent(
    current: &FieldTable,
    wanted: &FieldTable,
    queue: &str,
) -> Result<(), AmqpError> {
    let is_stream = current
        .inner()
        .get("x-queue-type")
        .is_some_and(|v| string(v).is_ok_and(|t| t == "stream"));
    let keys = if is_stream {
        super::stream::args::EQUIVALENCE_KEYS
    } else {
        EQUIVALENCE_KEYS
    };
    for key in keys {
        let now = current.inner().get(*key);
        let new = wanted.inner().get(*key);
        if *key == "x-queue-type" && classic(now) && classic(new) {
            continue;
        }
        equivalence::assert_arg(key, queue, now, new)?;
    }
    Ok(())
}

/// No `x-queue-type`, or `classic`.
fn classic(value: Option<&AMQPValue>) -> bool {
    value.is_none_or(|v| string(v).is_ok_and(|t| t == "classic"))
}

/// An integer argument; RabbitMQ's text for any other type.
fn int(value: &AMQPValue) -> Result<i128, String> {
    integer(value).ok_or_else(|| format!("\"expected integer, got {}\"", type_name(value)))
}

pub(super) fn non_negative(value: &AMQPValue) -> Result<u64, String> {
    match int(value)? {
        v if v < 0 => Err(format!("{{value_negative,{v}}}")),
        v => Ok(u64::try_from(v).unwrap_or(u64::MAX)),
    }
}

/// A TTL or expiry in milliseconds: RabbitMQ's `check_expiry`.
fn expiry(ms: i128) -> Result<u64, String> {
    match u64::try_from(ms) {
        Err(_) => Err(format!("{{value_negative,{ms}}}")),
        Ok(v) if v > MAX_EXPIRY_MS => Err(format!("{{value_too_large,{v}}}")),
        Ok(v) => Ok(v),
    }
}

pub(super) fn string(value: &AMQPValue) -> Result<String, String> {
    match value {
        AMQPValue::LongString(s) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Ok(s.as_str().to_owned()),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
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
    fn refuses_bad_arguments_with_rabbitmq_texts() {
        let refused = |key: &str, value: AMQPValue| {
            QueueArgs::parse(&table(&[(key, value)]), Q)
                .expect_err(key)
                .reply_text()
        };
        assert_eq!(
            refused("x-message-ttl", AMQPValue::LongInt(-1)),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        assert!(
            refused("x-expires", AMQPValue::LongString("1".into()))
                .ends_with(": \"expected integer, got longstr\""),
        );
        assert!(refused("x-expires", AMQPValue::LongInt(0)).ends_with(": {value_zero,0}"));
        assert!(
            refused("x-message-ttl", AMQPValue::LongLongInt(315_360_000_001))
                .ends_with(": {value_too_large,315360000001}")
        );
        assert!(
            refused("x-max-priority", AMQPValue::LongInt(256))
                .ends_with(": {max_value_exceeded,256}")
        );
        assert!(
            refused("x-overflow", AMQPValue::LongString("x".into()))
                .ends_with(": invalid_overflow")
        );
        assert!(
            refused(
                "x-dead-letter-routing-key",
                AMQPValue::LongString("k".into())
            )
            .ends_with(": routing_key_but_no_dlx_defined")
        );
        assert_eq!(
            refused("x-dead-letter-exchange", AMQPValue::Boolean(true)),
            "PRECONDITION_FAILED - invalid type 'bool' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
        );
        assert!(
            refused("x-queue-version", AMQPValue::LongInt(3))
                .ends_with(": \"unsupported queue version '3'\"")
        );
    }

    #[test]
    fn a_policy_lowers_limits_and_fills_in_what_the_arguments_lack() {
        let declared = QueueArgs::parse(
            &table(&[
                ("x-message-ttl", AMQPValue::LongInt(1000)),
                ("x-max-length", AMQPValue::LongInt(5)),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString("own".into()),
                ),
                ("x-overflow", AMQPValue::LongString("drop-head".into())),
            ]),
            Q,
        )
        .expect("valid");
        let policy = QueuePolicy {
            message_ttl: Some(5000),
            max_length: Some(2),
            expires: Some(60_000),
            dead_letter_exchange: Some("policy".into()),
            dead_letter_routing_key: Some("k".into()),
            overflow: Some("reject-publish".into()),
            ..QueuePolicy::default()
        };
        let args = declared.with_policy(&policy);
        assert_eq!(args.message_ttl, Some(1000));
        assert_eq!(args.max_length, Some(2));
        assert_eq!(args.expires, Some(60_000));
        assert_eq!(args.dead_letter_exchange.as_deref(), Some("own"));
        assert_eq!(args.dead_letter_routing_key.as_deref(), Some("k"));
        assert_eq!(args.overflow, Overflow::DropHead);
        let bare = QueueArgs::default().with_policy(&policy);
        assert_eq!(bare.overflow, Overflow::RejectPublish);
        assert_eq!(bare.dead_letter_exchange.as_deref(), Some("policy"));
        assert_eq!(declared.with_policy(&QueuePolicy::default()), declared);
    }

    #[test]
    fn unknown_x_arguments_are_ignored_as_in_rabbitmq() {
        let args = QueueArgs::parse(&table(&[("x-bogus", AMQPValue::LongInt(1))]), Q);
        assert_eq!(args, Ok(QueueArgs::default()));
    }

    #[test]
    fn the_first_bad_argument_in_rabbitmq_order_is_named() {
        let e = QueueArgs::parse(
            &table(&[
                ("x-max-length", AMQPValue::LongInt(-1)),
                ("x-expires", AMQPValue::LongInt(0)),
            ]),
            Q,
        )
        .expect_err("both bad");
        assert!(e.text.contains("'x-expires'"), "{}", e.text);
    }

    #[test]
    fn equivalence_compares_integers_by_value() {
        let a = table(&[("x-message-ttl", AMQPValue::LongInt(1000))]);
        let b = table(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]);
        assert!(assert_equivalent(&a, &b, Q).is_ok());
        let classic = table(&[("x-queue-type", AMQPValue::LongString("classic".into()))]);
        assert!(assert_equivalent(&FieldTable::default(), &classic, Q).is_ok());
        let c = table(&[("x-message-ttl", AMQPValue::LongInt(2000))]);
        assert_eq!(
            assert_equivalent(&a, &c, Q)
                .expect_err("differs")
                .reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but current is '1000'"
        );
        let e = assert_equivalent(&FieldTable::default(), &a, Q).expect_err("differs");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received the value '1000' of type 'signedint' but current is none"
        );
    }
}

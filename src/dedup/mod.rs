//! Message deduplication, compatible with the community
//! `rabbitmq-message-deduplication` plugin (and LavinMQ's): a message whose
//! `x-deduplication-header` value was seen is not routed by an exchange that
//! has `x-message-deduplication`, and not enqueued by such a queue while the
//! message that brought the value is still in it.
//!
//! - `args.rs`: the declare arguments and their 406 texts.
//! - `cache.rs`: the bounded FIFO of ids with expiry.
//! - `exchange.rs`: an exchange's cache, kept in the store (`Kind::Dedup`)
//!   for durable exchanges so it survives a restart.
//! - `queue.rs`: a queue's cache (ids of messages in the queue), kept under
//!   the queue's lock and rebuilt from the queue's messages at start.
//!
//! Deduplication is off unless declared: exchanges and queues without it hold
//! `None` and pay one branch on the publish path.

mod args;
mod cache;
mod exchange;
mod queue;

use warren_codec::types::{AMQPValue, FieldTable};

pub use args::{DEDUP_HEADER, DedupArgs, TTL_ARG};
pub use cache::{Cache, DedupKey, Lookup};
pub use exchange::{ExchangeDedup, NewId, StoredEntry, Verdict};
pub use queue::{QueueDedup, Slot};

/// The deduplication id a message carries in `header`, in canonical bytes
/// (a type tag, then the value), `None` when it has none. Strings of either
/// AMQP width compare equal, as do integers of any width, as in the plugin
/// (Erlang compares them by value); arrays and tables are not ids.
pub fn key_of(headers: Option<&FieldTable>, header: &str) -> Option<DedupKey> {
    let value = headers?.inner().get(header)?;
    let mut key = Vec::new();
    match value {
        AMQPValue::LongString(s) => {
            key.push(b's');
            key.extend_from_slice(s.as_bytes());
        }
        AMQPValue::ShortString(s) => {
            key.push(b's');
            key.extend_from_slice(s.as_str().as_bytes());
        }
        AMQPValue::ByteArray(b) => {
            key.push(b's');
            key.extend_from_slice(b.as_slice());
        }
        AMQPValue::Boolean(b) => key.extend_from_slice(if *b { b"btrue" } else { b"bfalse" }),
        AMQPValue::Float(f) => key.extend_from_slice(format!("f{f}").as_bytes()),
        AMQPValue::Double(f) => key.extend_from_slice(format!("f{f}").as_bytes()),
        AMQPValue::Timestamp(t) => key.extend_from_slice(format!("t{t}").as_bytes()),
        AMQPValue::Void => key.push(b'v'),
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => return None,
        other => {
            let n = warren_exchanges::integer(other)?;
            key.extend_from_slice(format!("i{n}").as_bytes());
        }
    }
    Some(key.into())
}

/// The per-message `x-cache-ttl` header in milliseconds, if it is a positive integer.
pub fn message_ttl(headers: Option<&FieldTable>) -> Option<u64> {
    let value = headers?.inner().get(TTL_ARG)?;
    let n = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        other => warren_exchanges::integer(other)?,
    };
    u64::try_from(n).ok().filter(|&n| n > 0)
}

/// Wall-clock milliseconds since the Unix epoch (what stored expiries are in).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_widths_and_integer_widths_compare_equal() {
        let mut a = FieldTable::default();
        a.insert(DEDUP_HEADER.into(), AMQPValue::LongString("id-1".into()));
        let mut b = FieldTable::default();
        b.insert(DEDUP_HEADER.into(), AMQPValue::ShortString("id-1".into()));
        assert_eq!(
            key_of(Some(&a), DEDUP_HEADER),
            key_of(Some(&b), DEDUP_HEADER)
        );
        let mut c = FieldTable::default();
        c.insert(DEDUP_HEADER.into(), AMQPValue::LongInt(7));
        let mut d = FieldTable::default();
        d.insert(DEDUP_HEADER.into(), AMQPValue::LongLongInt(7));
        assert_eq!(
            key_of(Some(&c), DEDUP_HEADER),
            key_of(Some(&d), DEDUP_HEADER)
        );
        assert_ne!(
            key_of(Some(&a), DEDUP_HEADER),
            key_of(Some(&c), DEDUP_HEADER)
        );
        assert_eq!(key_of(None, DEDUP_HEADER), None);
    }
}

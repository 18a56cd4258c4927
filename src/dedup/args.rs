//! The deduplication declare arguments, parsed once at declare into
//! [`DedupArgs`], with the plugin's 406 texts (`rabbitmq-message-deduplication`,
//! `RabbitMQMessageDeduplication.Exchange.validate/1`).
//!
//! `x-message-deduplication: true` turns deduplication on for an exchange of
//! any type (LavinMQ's form) or a queue (the plugin's and LavinMQ's);
//! `x-cache-size`, `x-cache-ttl`, `x-cache-persistence` and
//! `x-deduplication-header` are read only then.

use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::integer;

use crate::error::AmqpError;

/// The header a message carries its deduplication id in (unless the
/// `x-deduplication-header` argument names another).
pub const DEDUP_HEADER: &str = "x-deduplication-header";
/// The argument that turns deduplication on.
pub const ENABLE_ARG: &str = "x-message-deduplication";
/// Cache size in entries (an argument), also nothing else.
pub const SIZE_ARG: &str = "x-cache-size";
/// Cache TTL in milliseconds: an exchange argument and a message header.
pub const TTL_ARG: &str = "x-cache-ttl";
/// The plugin's `disk` / `memory` choice (Warren keeps durable exchanges' caches on disk anyway).
pub const PERSISTENCE_ARG: &str = "x-cache-persistence";

/// An exchange cache's size when `x-cache-size` is not given (LavinMQ's default).
pub const DEFAULT_EXCHANGE_CACHE_SIZE: usize = 128;
/// A queue cache's size when `x-cache-size` is not given: the plugin's queue
/// cache has no bound; Warren's is bounded so memory is.
pub const DEFAULT_QUEUE_CACHE_SIZE: usize = 100_000;

/// Deduplication settings of an exchange or a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupArgs {
    /// The most ids the cache holds (`x-cache-size`).
    pub cache_size: usize,
    /// How long an id counts, in milliseconds (`x-cache-ttl`; exchanges only).
    pub cache_ttl: Option<u64>,
    /// The header holding the id (`x-deduplication-header` argument, LavinMQ's).
    pub header: String,
}

impl DedupArgs {
    /// An exchange's settings, `None` when deduplication is off; 406 for a bad value.
    pub fn for_exchange(table: &FieldTable) -> Result<Option<DedupArgs>, AmqpError> {
        Self::parse(table, Some(DEFAULT_EXCHANGE_CACHE_SIZE), false)
    }

    /// The settings of an exchange of the plugin's type `x-message-deduplication`:
    /// always on, `x-cache-size` required (406 as the plugin when missing).
    pub fn for_exchange_type(table: &FieldTable) -> Result<DedupArgs, AmqpError> {
        Self::parse(table, None, true)?.ok_or_else(|| invalid("deduplication is off"))
    }

    /// A queue's settings, `None` when deduplication is off; 406 for a bad value.
    pub fn for_queue(table: &FieldTable) -> Result<Option<DedupArgs>, AmqpError> {
        Self::parse(table, Some(DEFAULT_QUEUE_CACHE_SIZE), false)
    }

    /// A queue's settings from a policy's `x-cache-size` (the default when absent).
    pub fn for_queue_policy(cache_size: Option<u64>) -> DedupArgs {
        DedupArgs {
            cache_size: cache_size
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_QUEUE_CACHE_SIZE),
            cache_ttl: None,
            header: DEDUP_HEADER.to_owned(),
        }
    }

    /// `default_size`: `None` when `x-cache-size` is required; `always`: on
    /// whatever `x-message-deduplication` says (the plugin's exchange type).
    fn parse(
        table: &FieldTable,
        default_size: Option<usize>,
        always: bool,
    ) -> Result<Option<DedupArgs>, AmqpError> {
        let get = |key: &str| table.inner().get(key);
        match get(ENABLE_ARG) {
            _ if always => {}
            None | Some(AMQPValue::Boolean(false)) => return Ok(None),
            Some(AMQPValue::Boolean(true)) => {}
            Some(_) => return Err(invalid(&format!("'{ENABLE_ARG}' must be a boolean"))),
        }
        let size = get(SIZE_ARG).map_or(default_size.map(Some), |v| {
            Some(positive(v).and_then(|n| usize::try_from(n).ok()))
        });
        let cache_size = match size {
            Some(Some(size)) => size,
            _ => {
                return Err(AmqpError::precondition_failed(format!(
                    "Missing or invalid argument, '{SIZE_ARG}' must be an integer greater than 0"
                )));
            }
        };
        let cache_ttl = match get(TTL_ARG) {
            None => None,
            Some(v) => Some(positive(v).ok_or_else(|| {
                invalid(&format!("'{TTL_ARG}' must be an integer greater than 0"))
            })?),
        };
        match get(PERSISTENCE_ARG).map(text) {
            None | Some(Some("disk" | "memory")) => {}
            Some(_) => {
                return Err(invalid(&format!(
                    "'{PERSISTENCE_ARG}' must be either 'disk' or 'memory'"
                )));
            }
        }
        let header = match get(DEDUP_HEADER) {
            None => DEDUP_HEADER.to_owned(),
            Some(v) => text(v)
                .filter(|h| !h.is_empty())
                .ok_or_else(|| invalid(&format!("'{DEDUP_HEADER}' must be a string")))?
                .to_owned(),
        };
        Ok(Some(DedupArgs {
            cache_size,
            cache_ttl,
            header,
        }))
    }
}

fn invalid(why: &str) -> AmqpError {
    AmqpError::precondition_failed(format!("Invalid argument, {why}"))
}

/// A positive integer, given as a number or as a string of digits (the plugin
/// takes both).
fn positive(value: &AMQPValue) -> Option<u64> {
    let n = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        AMQPValue::ShortString(s) => s.as_str().parse().ok()?,
        other => integer(other)?,
    };
    u64::try_from(n).ok().filter(|&n| n > 0)
}

fn text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn off_unless_enabled() {
        let t = table(&[(SIZE_ARG, AMQPValue::LongInt(0))]);
        assert_eq!(DedupArgs::for_exchange(&t).ok(), Some(None));
    }

    #[test]
    fn sizes_and_ttls_as_numbers_or_strings() {
        let t = table(&[
            (ENABLE_ARG, AMQPValue::Boolean(true)),
            (SIZE_ARG, AMQPValue::LongString("5".into())),
            (TTL_ARG, AMQPValue::LongLongInt(1000)),
        ]);
        let args = DedupArgs::for_exchange(&t).ok().flatten();
        assert_eq!(args.as_ref().map(|a| a.cache_size), Some(5));
        assert_eq!(args.and_then(|a| a.cache_ttl), Some(1000));
    }

    #[test]
    fn bad_values_are_refused_with_the_plugins_texts() {
        let refused = |pairs: &[(&str, AMQPValue)]| {
            let mut all = vec![(ENABLE_ARG, AMQPValue::Boolean(true))];
            all.extend_from_slice(pairs);
            DedupArgs::for_exchange(&table(&all))
                .err()
                .map(|e| e.text)
                .unwrap_or_default()
        };
        assert!(refused(&[(SIZE_ARG, AMQPValue::LongInt(0))]).contains("'x-cache-size' must be"));
        assert!(refused(&[(TTL_ARG, AMQPValue::LongInt(-1))]).contains("'x-cache-ttl' must be"));
        assert!(
            refused(&[(PERSISTENCE_ARG, AMQPValue::LongString("tape".into()))])
                .contains("'disk' or 'memory'")
        );
        let missing = DedupArgs::for_exchange_type(&FieldTable::default()).err();
        assert!(missing.is_some_and(|e| e.text.contains("Missing or invalid argument")));
        let not_bool = table(&[(ENABLE_ARG, AMQPValue::LongString("yes".into()))]);
        assert!(DedupArgs::for_queue(&not_bool).is_err());
    }
}

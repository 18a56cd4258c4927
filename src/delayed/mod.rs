//! Delayed messages: the `x-delayed-message` exchange type, as
//! `rabbitmq_delayed_message_exchange` has it (the `x-delayed-type` argument,
//! the `x-delay` header in milliseconds), kept in the store instead of a
//! node-local table.
//!
//! Each delayed exchange has a [`DelayedIndex`]: its messages live in the
//! store's `Delayed` key space under the exchange's own prefix, keyed by due
//! time then arrival, so key order is due order and the next due messages
//! are one bounded range read away. Memory holds per exchange a count and
//! the next due time, never an entry per message, so millions can wait.
//! Records are written with the publish's group commit (a persistent
//! message's confirm waits for the fsync, as for queues); they are removed
//! after they were routed, in the same store, so a crash between the two
//! delivers a message again rather than losing it.
//!
//! The task that routes due messages lives with the exchanges (`vhost`);
//! this room only stores and reads, and remembers where a mandatory message
//! goes back ([`ReturnTo`], in memory: its publisher's channel does not
//! outlive a restart either).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use tokio::sync::Notify;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::integer;
use warren_storage::{Kind, StorageError};

use crate::durable::Storage;
use crate::durable::records::{decode_message, encode_message};
use crate::message::Message;
use crate::outbound::OutboundTx;

/// The exchange type.
pub const EXCHANGE_TYPE: &str = "x-delayed-message";
/// The declare argument naming the type a delayed exchange routes as.
pub const DELAYED_TYPE_ARG: &str = "x-delayed-type";
/// The message header with the delay in milliseconds.
pub const DELAY_HEADER: &str = "x-delay";

/// How many due messages one round reads and routes.
pub const PAGE: usize = 256;

/// The delay a message asks for: its `x-delay` header when it is an integer
/// above 0 (a missing, zero or negative delay routes at once, as in the
/// plugin; a value that is not an integer too).
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let value = headers?.inner().get(DELAY_HEADER)?;
    let ms = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        other => integer(other)?,
    };
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

/// Where a message published with `mandatory` goes back when nothing takes
/// it at its due time: its publisher's channel, while that is open.
#[derive(Debug, Clone)]
pub struct ReturnTo {
    /// The publisher's connection writer.
    pub out: OutboundTx,
    /// The publisher's channel number.
    pub channel: u16,
    /// Alive while that channel is open (a closed one's number may be reused).
    pub open: Weak<dyn Any + Send + Sync>,
}

/// Milliseconds since the Unix epoch: due times survive a restart.
pub use crate::durable::records::wall_clock_ms as now_ms;

/// One delayed exchange's waiting messages.
#[derive(Debug)]
pub struct DelayedIndex {
    storage: Arc<Storage>,
    /// The exchange's key prefix: length-prefixed vhost and name, so no
    /// exchange's prefix starts another's.
    prefix: Vec<u8>,
    /// Waiting messages.
    count: AtomicU64,
    /// The earliest due time (ms since the epoch); `u64::MAX`: none.
    next_due: AtomicU64,
    /// Makes keys of equal due times unique, in arrival order.
    next_seq: AtomicU64,
    /// Wakes the exchange's task when an earlier message arrives or the
    /// exchange goes (the task holds this, not the index, while it sleeps).
    pub wake: Arc<Notify>,
    /// Where waiting mandatory messages go back, by key.
    returns: Mutex<HashMap<Vec<u8>, ReturnTo>>,
}

/// A due message read from the index.
#[derive(Debug)]
pub struct Due {
    /// Its key, to remove it once routed.
    pub key: Vec<u8>,
    /// The message as published.
    pub message: Message,
}

/// The delayed exchanges (vhost, name) the store holds messages for: one
/// read per exchange, skipping over its keys.
pub fn stored_exchanges(storage: &Storage) -> Result<Vec<(String, String)>, StorageError> {
    let mut found = Vec::new();
    let mut from = Vec::new();
    loop {
        let page = storage
            .store()
            .definitions_range(Kind::Delayed, &[], &from, 1)?;
        let Some((key, _)) = page.first() else {
            return Ok(found);
        };
        let Some((vhost, name, prefix_len)) = split_prefix(key) else {
            // Not a key this room wrote: step past it.
            from = key.clone();
            from.push(0);
            continue;
        };
        // Past every (due, seq) suffix of this prefix, before the next
        // exchange's (prefixes are length-delimited: none extends another).
        from = key[..prefix_len].to_vec();
        from.extend_from_slice(&[0xFF; 17]);
        found.push((vhost, name));
    }
}

/// The vhost, the exchange name and the prefix length of a delayed key.
fn split_prefix(key: &[u8]) -> Option<(String, String, usize)> {
    let mut at = 0;
    let mut part = || -> Option<String> {
        let len = usize::from(u16::from_be_bytes(key.get(at..at + 2)?.try_into().ok()?));
        let text = std::str::from_utf8(key.get(at + 2..at + 2 + len)?).ok()?;
        at += 2 + len;
        Some(text.to_owned())
    };
    let vhost = part()?;
    let name = part()?;
    Some((vhost, name, at))
}

impl DelayedIndex {
    /// The index of exchange `name` in `vhost`, with what the store holds
    /// (counted by reading the keys a page at a time).
    pub fn open(storage: Arc<Storage>, vhost: &str, name: &str) -> Result<Arc<Self>, StorageError> {
        let mut prefix = Vec::with_capacity(4 + vhost.len() + name.len());
        for part in [vhost, name] {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            prefix.extend_from_slice(&len.to_be_bytes());
            prefix.extend_from_slice(part.as_bytes());
        }
        let index = DelayedIndex {
            storage,
            prefix,
            count: AtomicU64::new(0),
            next_due: AtomicU64::new(u64::MAX),
            next_seq: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            returns: Mutex::default(),
        };
        let mut from = index.prefix.clone();
        let (mut count, mut max_seq, mut first) = (0u64, None::<u64>, None::<u64>);
        loop {
            let page = index.storage.store().definitions_range(
                Kind::Delayed,
                &index.prefix,
                &from,
                4096,
            )?;
            let Some((last, _)) = page.last() else {
                break;
            };
            from = last.clone();
            from.push(0);
            for (key, _) in &page {
                if let Some((due, seq)) = index.split(key) {
                    first.get_or_insert(due);
                    max_seq = Some(max_seq.map_or(seq, |m| m.max(seq)));
                    count += 1;
                }
            }
        }
        index.count.store(count, Ordering::Relaxed);
        index
            .next_due
            .store(first.unwrap_or(u64::MAX), Ordering::Relaxed);
        index
            .next_seq
            .store(max_seq.map_or(0, |s| s + 1), Ordering::Relaxed);
        Ok(Arc::new(index))
    }

    fn key(&self, due: u64, seq: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 16);
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(&due.to_be_bytes());
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// (due, seq) of one of this index's keys.
    fn split(&self, key: &[u8]) -> Option<(u64, u64)> {
        let rest = key.strip_prefix(self.prefix.as_slice())?;
        let due = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
        Some((due, seq))
    }

    /// Keeps `message` until `due` (ms since the epoch), to be returned to
    /// `return_to` if nothing takes it then (mandatory). The write joins the
    /// next group commit: the caller waits for it before confirming a
    /// persistent message.
    pub fn put(
        &self,
        message: &Message,
        due: u64,
        return_to: Option<ReturnTo>,
    ) -> Result<(), StorageError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let record = encode_message(message, 0, 0);
        let key = self.key(due, seq);
        self.storage
            .store()
            .put_definition(Kind::Delayed, &key, &record)?;
        if let Some(return_to) = return_to {
            self.returns.lock().insert(key, return_to);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.next_due.fetch_min(due, Ordering::AcqRel) > due {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Up to [`PAGE`] messages due at `now` or before, earliest first.
    /// Unreadable records are removed (and logged) instead of returned.
    pub fn take_due(&self, now: u64) -> Result<Vec<Due>, StorageError> {
        let page = self.storage.store().definitions_range(
            Kind::Delayed,
            &self.prefix,
            &self.prefix,
            PAGE,
        )?;
        let mut due = Vec::new();
        let mut bad = Vec::new();
        for (key, value) in page {
            match self.split(&key) {
                Some((at, _)) if at > now => break,
                Some(_) => match decode_message(value) {
                    Some((message, _, _)) => due.push(Due { key, message }),
                    None => bad.push(key),
                },
                None => bad.push(key),
            }
        }
        if !bad.is_empty() {
            tracing::error!(count = bad.len(), "dropping unreadable delayed messages");
            self.remove(&bad)?;
        }
        Ok(due)
    }

    /// Forgets routed (or unreadable) messages and looks up the next due time.
    pub fn remove(&self, keys: &[Vec<u8>]) -> Result<(), StorageError> {
        for key in keys {
            self.storage.store().remove_definition(Kind::Delayed, key)?;
        }
        let removed = keys.len() as u64;
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_sub(removed))
            });
        let next = self
            .storage
            .store()
            .definitions_range(Kind::Delayed, &self.prefix, &self.prefix, 1)?
            .first()
            .and_then(|(key, _)| self.split(key))
            .map_or(u64::MAX, |(due, _)| due);
        self.next_due.store(next, Ordering::Release);
        Ok(())
    }

    /// Where the message of `key` goes back if nothing takes it (forgotten
    /// either way: it is being routed).
    pub fn take_return(&self, key: &[u8]) -> Option<ReturnTo> {
        let mut returns = self.returns.lock();
        if returns.is_empty() {
            return None;
        }
        returns.remove(key)
    }

    /// Forgets every waiting message (the exchange was deleted).
    pub fn clear(&self) -> Result<(), StorageError> {
        self.returns.lock().clear();
        loop {
            let page = self.storage.store().definitions_range(
                Kind::Delayed,
                &self.prefix,
                &self.prefix,
                4096,
            )?;
            if page.is_empty() {
                break;
            }
            for (key, _) in page {
                self.storage
                    .store()
                    .remove_definition(Kind::Delayed, &key)?;
            }
        }
        self.count.store(0, Ordering::Relaxed);
        self.next_due.store(u64::MAX, Ordering::Relaxed);
        Ok(())
    }

    /// How many messages wait.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// When the next one is due (ms since the epoch).
    pub fn next_due(&self) -> Option<u64> {
        Some(self.next_due.load(Ordering::Acquire)).filter(|&d| d != u64::MAX)
    }

    /// Asks for the next group commit (after routed messages were removed).
    pub fn request_commit(&self) {
        self.storage.request();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_codec::ContentHeader;
    use warren_codec::types::{LongString, ShortString};

    fn headers(value: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(ShortString::from(DELAY_HEADER), value);
        t
    }

    #[test]
    fn delays_as_the_plugin_reads_them() {
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::LongInt(5000)))),
            Some(5000)
        );
        assert_eq!(delay_of(Some(&headers(AMQPValue::LongLongInt(1)))), Some(1));
        assert_eq!(delay_of(Some(&headers(AMQPValue::LongInt(0)))), None);
        assert_eq!(delay_of(Some(&headers(AMQPValue::LongInt(-10)))), None);
        assert_eq!(
            delay_of(Some(&headers(AMQPValue::LongString(LongString::from(
                "250"
            ))))),
            Some(250)
        );
        assert_eq!(delay_of(Some(&headers(AMQPValue::Boolean(true)))), None);
        assert_eq!(delay_of(Some(&FieldTable::default())), None);
        assert_eq!(delay_of(None), None);
    }

    fn message(body: &'static [u8]) -> Message {
        let properties = warren_codec::protocol::BasicProperties::default();
        Message {
            exchange: "d".into(),
            routing_key: "k".into(),
            header: ContentHeader::from_properties(body.len() as u64, &properties).expect("header"),
            properties: properties.into(),
            body: Bytes::from_static(body),
            cc_routed: true,
            frames: Default::default(),
        }
    }

    #[test]
    fn due_messages_come_back_in_due_order_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::open(dir.path(), 8 << 20, Default::default()).expect("store");
        let index = DelayedIndex::open(storage.clone(), "/", "d").expect("index");
        let other = DelayedIndex::open(storage.clone(), "/", "d2").expect("index");
        index.put(&message(b"late"), 3000, None).expect("put");
        index.put(&message(b"early"), 1000, None).expect("put");
        index.put(&message(b"also early"), 1000, None).expect("put");
        other.put(&message(b"elsewhere"), 10, None).expect("put");
        assert_eq!((index.count(), index.next_due()), (3, Some(1000)));
        assert!(index.take_due(999).expect("read").is_empty());
        let due = index.take_due(2000).expect("read");
        let bodies: Vec<&[u8]> = due.iter().map(|d| &d.message.body[..]).collect();
        assert_eq!(bodies, [&b"early"[..], b"also early"]);
        let keys: Vec<Vec<u8>> = due.into_iter().map(|d| d.key).collect();
        index.remove(&keys).expect("remove");
        assert_eq!((index.count(), index.next_due()), (1, Some(3000)));

        let reopened = DelayedIndex::open(storage.clone(), "/", "d").expect("reopen");
        assert_eq!((reopened.count(), reopened.next_due()), (1, Some(3000)));
        reopened.put(&message(b"new"), 3000, None).expect("put");
        let due = reopened.take_due(u64::MAX).expect("read");
        let bodies: Vec<&[u8]> = due.iter().map(|d| &d.message.body[..]).collect();
        assert_eq!(bodies, [&b"late"[..], b"new"]);
        reopened.clear().expect("clear");
        assert_eq!(reopened.count(), 0);
        assert_eq!(other.count(), 1);
    }
}

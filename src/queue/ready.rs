//! The ready list: messages waiting for a consumer, in delivery order (higher
//! priority first, then arrival), with their body bytes and an index by expiry
//! so that expired messages go in bounded time wherever they sit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::time::Instant;

use super::SeqId;
use crate::message::Message;

/// A message in a queue, ready or delivered and waiting for its ack.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// When it expires (the lower of the queue's and the message's TTL).
    pub expires_at: Option<Instant>,
    /// Its priority for ordering: 0 unless the queue has `x-max-priority`, then
    /// the message's priority capped at the maximum.
    pub priority: u8,
    /// How often it came back unsettled (for `x-delivery-limit`).
    pub returns: u64,
    /// Written to the store (removed from it when the message leaves the queue).
    pub stored: bool,
    /// When it arrived in the queue, wall-clock ms (the age of the oldest).
    pub arrived_ms: u64,
}

/// An entry whose message is on its way to a consumer: everything but the
/// message, and the message again if the queue keeps it until an ack.
#[derive(Debug)]
pub(super) struct Taken {
    pub redelivered: bool,
    pub expires_at: Option<Instant>,
    pub priority: u8,
    pub returns: u64,
    pub stored: bool,
    pub arrived_ms: u64,
    /// A copy of the message (acked-mode deliveries only).
    pub kept: Option<Arc<Message>>,
}

impl Entry {
    /// Takes the message out to deliver it, keeping a copy if `keep`.
    pub fn take_message(self, keep: bool) -> (Taken, Arc<Message>) {
        let kept = keep.then(|| self.message.clone());
        let taken = Taken {
            redelivered: self.redelivered,
            expires_at: self.expires_at,
            priority: self.priority,
            returns: self.returns,
            stored: self.stored,
            arrived_ms: self.arrived_ms,
            kept,
        };
        (taken, self.message)
    }
}

impl Taken {
    /// The entry again, with its message.
    pub fn with_message(self, message: Arc<Message>) -> Entry {
        Entry {
            message,
            redelivered: self.redelivered,
            expires_at: self.expires_at,
            priority: self.priority,
            returns: self.returns,
            stored: self.stored,
            arrived_ms: self.arrived_ms,
        }
    }
}

/// A ready message's place: priorities descending, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    priority: Reverse<u8>,
    seq: SeqId,
}

impl Key {
    fn of(seq: SeqId, entry: &Entry) -> Self {
        Key {
            priority: Reverse(entry.priority),
            seq,
        }
    }
}

/// Ready messages.
#[derive(Debug, Default)]
pub(super) struct Ready {
    entries: BTreeMap<Key, Entry>,
    /// The ready messages that have an expiry.
    expiries: BTreeSet<(Instant, Key)>,
    /// Sum of their body sizes (what `x-max-length-bytes` limits).
    bytes: u64,
}

impl Ready {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Puts a message at its place (a requeued one at its original place).
    pub fn insert(&mut self, seq: SeqId, entry: Entry) {
        let key = Key::of(seq, &entry);
        if let Some(at) = entry.expires_at {
            self.expiries.insert((at, key));
        }
        self.bytes += entry.message.body_size() as u64;
        self.entries.insert(key, entry);
    }

    /// Whether the message `seq` of priority `priority` is here.
    pub fn contains(&self, seq: SeqId, priority: u8) -> bool {
        self.entries.contains_key(&Key {
            priority: Reverse(priority),
            seq,
        })
    }

    /// Takes the next message to deliver.
    pub fn pop_first(&mut self) -> Option<(SeqId, Entry)> {
        let (key, entry) = self.entries.pop_first()?;
        self.forget(key, &entry);
        Some((key.seq, entry))
    }

    fn forget(&mut self, key: Key, entry: &Entry) {
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, key));
        }
        self.bytes -= entry.message.body_size() as u64;
    }

    /// When the next ready message expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Takes the messages whose expiry is `now` or earlier, in queue order.
    pub fn take_expired(&mut self, now: Instant) -> Vec<(SeqId, Entry)> {
        if self.next_expiry().is_none_or(|at| at > now) {
            return Vec::new();
        }
        let mut keys = Vec::new();
        while let Some(&(at, key)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            keys.push(key);
        }
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|key| {
                let entry = self.entries.remove(&key)?;
                self.bytes -= entry.message.body_size() as u64;
                Some((key.seq, entry))
            })
            .collect()
    }

    /// Takes everything, in queue order.
    pub fn drain(&mut self) -> Vec<(SeqId, Entry)> {
        self.expiries.clear();
        self.bytes = 0;
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(key, entry)| (key.seq, entry))
            .collect()
    }

    /// The messages in queue order.
    pub fn iter(&self) -> impl Iterator<Item = (&SeqId, &Entry)> {
        self.entries.iter().map(|(key, entry)| (&key.seq, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use warren_codec::ContentHeader;
    use warren_codec::protocol::BasicProperties;

    fn entry(body: &'static [u8], priority: u8, expires_at: Option<Instant>) -> Entry {
        let properties = BasicProperties::default();
        let header =
            ContentHeader::from_properties(body.len() as u64, &properties).expect("header");
        Entry {
            message: Arc::new(Message {
                exchange: String::new(),
                routing_key: String::new(),
                header,
                properties,
                body: bytes::Bytes::from_static(body),
                cc_routed: true,
            }),
            redelivered: false,
            expires_at,
            priority,
            returns: 0,
            stored: false,
            arrived_ms: 0,
        }
    }

    fn bodies(ready: &mut Ready) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| ready.pop_first())
            .map(|(_, e)| e.message.body.to_vec())
            .collect()
    }

    #[test]
    fn higher_priority_first_then_arrival_order() {
        let mut ready = Ready::default();
        ready.insert(0, entry(b"a", 0, None));
        ready.insert(1, entry(b"b", 5, None));
        ready.insert(2, entry(b"c", 0, None));
        ready.insert(3, entry(b"d", 5, None));
        assert_eq!(ready.bytes(), 4);
        assert_eq!(
            bodies(&mut ready),
            [b"b", b"d", b"a", b"c"].map(|b| b.to_vec())
        );
        assert_eq!(ready.bytes(), 0);
    }

    #[test]
    fn expired_messages_leave_from_anywhere_in_queue_order() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut ready = Ready::default();
        ready.insert(0, entry(b"a", 0, Some(later)));
        ready.insert(1, entry(b"b", 0, Some(now)));
        ready.insert(2, entry(b"c", 0, None));
        ready.insert(3, entry(b"d", 0, Some(now - Duration::from_millis(5))));
        let expired: Vec<_> = ready
            .take_expired(now)
            .into_iter()
            .map(|(_, e)| e.message.body.clone())
            .collect();
        assert_eq!(expired, [&b"b"[..], &b"d"[..]]);
        assert_eq!(ready.len(), 2);
        assert_eq!(ready.bytes(), 2);
        assert_eq!(ready.next_expiry(), Some(later));
    }
}

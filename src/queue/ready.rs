//! The ready list: messages waiting for a consumer, in delivery order (higher
//! priority first, then arrival), with their body bytes and an index by expiry
//! so that expired messages go in bounded time wherever they sit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
///
/// Most arrive in key order (a new message has the highest seq; one taken and
/// refused comes back first), so they live in `run`, a deque in key order
/// appended at either end; a B-tree per message cost about 10% of a 1p1c
/// delivery's instructions. Only the rest (a requeue between ready ones,
/// another priority) goes to `others`; the head is the lower of the two
/// firsts.
#[derive(Debug, Default)]
pub(super) struct Ready {
    /// In key order; `None` where one left from the middle (expiry), never at
    /// either end.
    run: VecDeque<(Key, Option<Entry>)>,
    /// The `Some` entries of `run`.
    run_len: usize,
    /// Those that came out of order.
    others: BTreeMap<Key, Entry>,
    /// The ready messages that have an expiry.
    expiries: BTreeSet<(Instant, Key)>,
    /// Sum of their body sizes (what `x-max-length-bytes` limits).
    bytes: u64,
}

impl Ready {
    pub fn len(&self) -> usize {
        self.run_len + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        match (self.run.front(), self.run.back()) {
            (Some((first, _)), Some((last, _))) if key < *first || key > *last => {
                if key > *last {
                    self.run.push_back((key, Some(entry)));
                } else {
                    self.run.push_front((key, Some(entry)));
                }
                self.run_len += 1;
            }
            (Some(_), _) => {
                self.others.insert(key, entry);
            }
            (None, _) => {
                self.run.push_back((key, Some(entry)));
                self.run_len += 1;
            }
        }
    }

    /// Where `key` is in `run`, if it is there.
    fn find(&self, key: &Key) -> Option<usize> {
        let at = self.run.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        self.run[at].1.is_some().then_some(at)
    }

    /// Whether the message `seq` of priority `priority` is here.
    pub fn contains(&self, seq: SeqId, priority: u8) -> bool {
        let key = Key {
            priority: Reverse(priority),
            seq,
        };
        self.find(&key).is_some() || self.others.contains_key(&key)
    }

    /// Whether the head is `run`'s first (rather than `others`').
    fn head_in_run(&self) -> Option<bool> {
        match (self.run.front(), self.others.first_key_value()) {
            (Some((a, _)), Some((b, _))) => Some(a < b),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// The next message to deliver, left in place.
    pub fn first(&self) -> Option<&Entry> {
        if self.head_in_run()? {
            self.run.front().and_then(|(_, e)| e.as_ref())
        } else {
            self.others.first_key_value().map(|(_, e)| e)
        }
    }

    /// Takes the next message to deliver.
    pub fn pop_first(&mut self) -> Option<(SeqId, Entry)> {
        let (key, entry) = if self.head_in_run()? {
            let (key, entry) = self.run.pop_front()?;
            self.run_len -= 1;
            self.trim_front();
            (key, entry?)
        } else {
            self.others.pop_first()?
        };
        self.forget(key, &entry);
        Some((key.seq, entry))
    }

    /// Takes the entry of `key` out, wherever it is.
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        match self.find(key) {
            Some(at) => {
                let entry = self.run[at].1.take();
                self.run_len -= 1;
                self.trim();
                entry
            }
            None => self.others.remove(key),
        }
    }

    /// Drops the holes at `run`'s ends, and memory a burst left behind.
    fn trim(&mut self) {
        while self.run.back().is_some_and(|(_, e)| e.is_none()) {
            self.run.pop_back();
        }
        self.trim_front();
    }

    /// Drops the holes at `run`'s head; now and then (every 1024 lengths)
    /// gives back memory a burst left behind.
    fn trim_front(&mut self) {
        while let Some((_, None)) = self.run.front() {
            self.run.pop_front();
        }
        let len = self.run.len();
        if len.is_multiple_of(1024) && self.run.capacity() > 4096 && len < self.run.capacity() / 8 {
            self.run.shrink_to(len * 2);
        }
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
                let entry = self.remove(&key)?;
                self.bytes -= entry.message.body_size() as u64;
                Some((key.seq, entry))
            })
            .collect()
    }

    /// Takes everything, in queue order.
    pub fn drain(&mut self) -> Vec<(SeqId, Entry)> {
        self.expiries.clear();
        self.bytes = 0;
        let mut all = Vec::with_capacity(self.len());
        let mut run = std::mem::take(&mut self.run)
            .into_iter()
            .filter_map(|(key, entry)| Some((key, entry?)))
            .peekable();
        let mut others = std::mem::take(&mut self.others).into_iter().peekable();
        self.run_len = 0;
        loop {
            let from_run = match (run.peek(), others.peek()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if from_run { run.next() } else { others.next() };
            all.extend(next.map(|(key, entry)| (key.seq, entry)));
        }
        all
    }

    /// The messages in queue order.
    pub fn iter(&self) -> impl Iterator<Item = (&SeqId, &Entry)> {
        let mut run = self
            .run
            .iter()
            .filter_map(|(key, entry)| Some((key, entry.as_ref()?)))
            .peekable();
        let mut others = self.others.iter().peekable();
        std::iter::from_fn(move || {
            let from_run = match (run.peek(), others.peek()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let next = if from_run { run.next() } else { others.next() };
            next.map(|(key, entry)| (&key.seq, entry))
        })
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
                exchange: Default::default(),
                routing_key: Default::default(),
                header,
                properties: properties.into(),
                body: bytes::Bytes::from_static(body),
                cc_routed: true,
                frames: Default::default(),
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

    #[test]
    fn out_of_order_inserts_keep_queue_order() {
        let mut ready = Ready::default();
        for seq in [5, 6, 8] {
            ready.insert(seq, entry(b"x", 0, None));
        }
        // Taken and put back at the head, requeued in the middle, at the end.
        ready.insert(4, entry(b"x", 0, None));
        ready.insert(7, entry(b"x", 0, None));
        ready.insert(1, entry(b"x", 0, None));
        ready.insert(3, entry(b"x", 0, None));
        ready.insert(9, entry(b"x", 0, None));
        assert!(ready.contains(7, 0) && ready.contains(4, 0) && !ready.contains(2, 0));
        let order: Vec<_> = ready.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(order, [1, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(ready.first().map(|e| e.priority), Some(0));
        let (first, _) = ready.pop_first().expect("head");
        assert_eq!(first, 1);
        let drained: Vec<_> = ready.drain().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(drained, [3, 4, 5, 6, 7, 8, 9]);
        assert!(ready.is_empty());
        assert_eq!(ready.bytes(), 0);
    }

    #[test]
    fn expiry_from_the_middle_leaves_no_trace() {
        let now = Instant::now();
        let mut ready = Ready::default();
        for seq in 0..6 {
            let expires = (seq % 2 == 1).then_some(now);
            ready.insert(seq, entry(b"x", 0, expires));
        }
        let expired: Vec<_> = ready
            .take_expired(now)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(expired, [1, 3, 5]);
        assert!(!ready.contains(3, 0) && ready.contains(2, 0));
        assert_eq!(ready.len(), 3);
        // A put-back between holes still comes out in order.
        let (head, e) = ready.pop_first().expect("head");
        assert_eq!(head, 0);
        ready.insert(head, e);
        let order: Vec<_> = std::iter::from_fn(|| ready.pop_first())
            .map(|(s, _)| s)
            .collect();
        assert_eq!(order, [0, 2, 4]);
        assert!(ready.is_empty());
    }
}

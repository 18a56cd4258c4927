//! A queue's deduplication cache: the ids of messages in the queue.
//!
//! The plugin removes an id when its message leaves the queue (ack, no-ack
//! delivery, reject, drop, expiry). Warren checks instead, when an id is seen
//! again, whether the message that brought it is still in the queue (ready,
//! paged or delivered and unacked): one check on the publish path of
//! deduplicating queues, no hook on any way out. Entries whose message left
//! stay until they are looked up or evicted (oldest first at `x-cache-size`),
//! so memory stays bounded. At start the cache is rebuilt from the queue's
//! recovered messages; it lives under the queue's lock, so it has none.

use tokio::time::Instant;

use super::{Cache, DedupArgs, DedupKey, Lookup, key_of};
use crate::message::Message;

/// Where the message that brought an id sits in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Its seq.
    pub seq: u64,
    /// Its priority (the ready list is ordered by it).
    pub priority: u8,
    /// When it expires (it no longer counts after that).
    pub expires_at: Option<Instant>,
}

/// One queue's cache (see the module's doc).
#[derive(Debug)]
pub struct QueueDedup {
    header: String,
    cache: Cache<Slot>,
}

impl QueueDedup {
    /// An empty cache with the queue's settings.
    pub fn new(args: &DedupArgs) -> Self {
        QueueDedup {
            header: args.header.clone(),
            cache: Cache::new(args.cache_size),
        }
    }

    /// The id `message` carries, if any.
    pub fn key(&self, message: &Message) -> Option<DedupKey> {
        key_of(message.properties.headers().as_ref(), &self.header)
    }

    /// Whether the id `key` belongs to a message still in the queue, as
    /// `held` tells; an entry whose message left is dropped.
    pub fn is_duplicate(&mut self, key: &[u8], now: Instant, held: impl Fn(Slot) -> bool) -> bool {
        let slot = match self.cache.get(key, 0) {
            Lookup::Live(slot) => *slot,
            Lookup::Absent | Lookup::Expired(_) => return false,
        };
        if slot.expires_at.is_none_or(|at| at > now) && held(slot) {
            return true;
        }
        self.cache.remove(key);
        false
    }

    /// Records that the message at `slot` brought `key`.
    pub fn insert(&mut self, key: DedupKey, slot: Slot) {
        self.cache.insert(key, slot, None);
    }

    /// Forgets every id (the queue was purged).
    pub fn clear(&mut self) {
        self.cache.clear();
    }

    /// Ids in the cache now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// The most ids it holds (`x-cache-size`).
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Whether the cache holds no id.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

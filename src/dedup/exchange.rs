//! An exchange's deduplication cache: ids seen recently, each for the
//! exchange's `x-cache-ttl` or the message's own `x-cache-ttl` header.
//!
//! A durable exchange keeps its cache in the store, one definition record of
//! kind `Kind::Dedup` per id (key: vhost, exchange, id; value: the entry's
//! place in the FIFO and its expiry), written when an id is cached and
//! removed when it is evicted or the exchange goes. Why definitions and not
//! the segment log: entries are removed out of order (eviction, expiry,
//! replacement) and looked up by key at start, which a key-value tree does
//! directly; the cache is bounded, so the records are too (`x-cache-size` per
//! exchange), and memory holds only the bounded cache. The writes are held by
//! the store and written at the next group commit, after the messages
//! (`Store::put_definition_after_messages`), which a confirmed persistent
//! message routed through the exchange waits for: its id survives a crash
//! along with it, and an id never survives without its message (a publisher
//! retrying an unconfirmed publish must not have the retry swallowed).

use parking_lot::Mutex;
use warren_codec::types::FieldTable;
use warren_storage::Kind;

use super::{Cache, DedupArgs, DedupKey, Lookup, key_of, message_ttl, now_ms};
use crate::durable::Storage;
use std::sync::Arc;

/// Where a durable exchange's entries are stored.
#[derive(Debug)]
struct Stored {
    storage: Arc<Storage>,
    /// The key prefix: vhost and exchange name, each with its length.
    prefix: Vec<u8>,
}

/// One exchange's cache (see the module's doc).
#[derive(Debug)]
pub struct ExchangeDedup {
    args: DedupArgs,
    /// A leaf lock: the store's internal locks are the only ones under it.
    cache: Mutex<Cache<()>>,
    stored: Option<Stored>,
}

/// A new id's store record: written by [`NewId::store`] once the message it
/// came with is enqueued, so that it never reaches the disk before it.
#[derive(Debug, Clone)]
pub struct NewId {
    storage: Arc<Storage>,
    record: Vec<u8>,
    value: Vec<u8>,
}

impl NewId {
    /// Hands the record to the store, to be written after the messages
    /// written so far (its message among them), and asks for a commit.
    pub fn store(&self) {
        self.storage
            .store()
            .put_definition_after_messages(Kind::Dedup, &self.record, &self.value);
        // Held until a commit: ask for one, so that held ids stay few.
        self.storage.request();
    }
}

/// What the cache says of a message.
#[derive(Debug)]
pub enum Verdict {
    /// Seen before: not routed.
    Duplicate,
    /// New (or without an id); a durable exchange's new id to store once the
    /// message is enqueued.
    New(Option<NewId>),
}

/// A stored cache entry read back at start.
#[derive(Debug)]
pub struct StoredEntry {
    /// The vhost's name.
    pub vhost: String,
    /// The exchange's name.
    pub exchange: String,
    /// The id.
    pub key: DedupKey,
    /// Its place in the FIFO.
    pub generation: u64,
    /// When it stops counting (wall-clock milliseconds).
    pub expires_ms: Option<u64>,
}

impl ExchangeDedup {
    /// A cache for the exchange `exchange` of `vhost`; `storage` when it is
    /// durable (its entries are then written to the store).
    pub fn new(
        args: DedupArgs,
        vhost: &str,
        exchange: &str,
        storage: Option<Arc<Storage>>,
    ) -> Arc<Self> {
        let stored = storage.map(|storage| Stored {
            storage,
            prefix: prefix(vhost, exchange),
        });
        Arc::new(ExchangeDedup {
            cache: Mutex::new(Cache::new(args.cache_size)),
            args,
            stored,
        })
    }

    /// The settings it was declared with.
    pub fn args(&self) -> &DedupArgs {
        &self.args
    }

    /// Ids in the cache now (what the management API shows).
    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    /// Whether the cache holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a message with these headers is a duplicate (not to be routed);
    /// a new id is cached, as the plugin does, before the message is routed,
    /// and stored once the message is enqueued ([`NewId::store`]).
    pub fn check(&self, headers: Option<&FieldTable>) -> Verdict {
        let Some(key) = key_of(headers, &self.args.header) else {
            return Verdict::New(None);
        };
        let now = now_ms();
        let mut cache = self.cache.lock();
        match cache.get(&key, now) {
            Lookup::Live(()) => return Verdict::Duplicate,
            Lookup::Expired(old) => self.unstore(&old),
            Lookup::Absent => {}
        }
        let ttl = message_ttl(headers).or(self.args.cache_ttl);
        let expires_ms = ttl.map(|ttl| now.saturating_add(ttl));
        let inserted = cache.insert(key.clone(), (), expires_ms);
        for old in &inserted.evicted {
            self.unstore(old);
        }
        let new = self.stored.as_ref().map(|stored| {
            let mut value = Vec::with_capacity(16);
            value.extend_from_slice(&inserted.generation.to_be_bytes());
            value.extend_from_slice(&expires_ms.unwrap_or(0).to_be_bytes());
            NewId {
                storage: stored.storage.clone(),
                record: [stored.prefix.as_slice(), &key].concat(),
                value,
            }
        });
        Verdict::New(new)
    }

    /// Puts back an entry read from the store at start (oldest first); an
    /// expired one is removed from the store instead.
    pub fn restore(&self, entry: StoredEntry, now: u64) {
        if entry.expires_ms.is_some_and(|at| at <= now) {
            self.unstore(&entry.key);
            return;
        }
        let inserted =
            self.cache
                .lock()
                .insert_at(entry.generation, entry.key, (), entry.expires_ms);
        for old in &inserted.evicted {
            self.unstore(old);
        }
    }

    /// The exchange is deleted: its stored entries go.
    pub fn forget_all(&self) {
        let keys = self.cache.lock().clear();
        for key in &keys {
            self.unstore(key);
        }
    }

    fn unstore(&self, key: &[u8]) {
        if let Some(stored) = &self.stored {
            let record = [stored.prefix.as_slice(), key].concat();
            // In order with the held puts.
            stored
                .storage
                .store()
                .remove_definition_after_messages(Kind::Dedup, &record);
        }
    }
}

fn prefix(vhost: &str, exchange: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + vhost.len() + exchange.len());
    // Vhost and exchange names are AMQP short strings: at most 255 bytes.
    key.push(u8::try_from(vhost.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(vhost.as_bytes());
    key.push(u8::try_from(exchange.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(exchange.as_bytes());
    key
}

impl StoredEntry {
    /// Decodes a `Kind::Dedup` record; `None` if it is not one.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<StoredEntry> {
        let (&vlen, rest) = key.split_first()?;
        let vhost = rest.get(..usize::from(vlen))?;
        let rest = rest.get(usize::from(vlen)..)?;
        let (&xlen, rest) = rest.split_first()?;
        let exchange = rest.get(..usize::from(xlen))?;
        let id = rest.get(usize::from(xlen)..)?;
        let generation = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
        let expires = u64::from_be_bytes(value.get(8..16)?.try_into().ok()?);
        Some(StoredEntry {
            vhost: String::from_utf8(vhost.to_vec()).ok()?,
            exchange: String::from_utf8(exchange.to_vec()).ok()?,
            key: id.into(),
            generation,
            expires_ms: (expires != 0).then_some(expires),
        })
    }

    /// The record key this entry came from (to remove a stray one).
    pub fn record_key(&self) -> Vec<u8> {
        [prefix(&self.vhost, &self.exchange).as_slice(), &self.key].concat()
    }
}

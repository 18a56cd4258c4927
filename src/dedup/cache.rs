//! The deduplication cache: a bounded map from deduplication ids to what the
//! owner keeps about them, evicting the oldest entry (first in, first out) at
//! its size, with an optional expiry per entry checked when it is looked up.
//!
//! The plugin evicts an unspecified entry (the first of an unordered Mnesia
//! table); LavinMQ evicts the oldest. The oldest is what users can reason
//! about, so Warren does that. Memory is bounded by `capacity` entries
//! whatever the number of distinct ids seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A deduplication id in canonical bytes (see [`super::key_of`]).
pub type DedupKey = Arc<[u8]>;

#[derive(Debug)]
struct Slot<V> {
    /// Insertion order (the FIFO's position), never reused.
    generation: u64,
    /// Wall-clock milliseconds at which the entry stops counting.
    expires_ms: Option<u64>,
    value: V,
}

/// A bounded FIFO of ids with per-entry expiry.
#[derive(Debug)]
pub struct Cache<V> {
    capacity: usize,
    entries: HashMap<DedupKey, Slot<V>>,
    /// Generation -> id, oldest first.
    order: BTreeMap<u64, DedupKey>,
    next_generation: u64,
}

impl<V> Cache<V> {
    /// An empty cache holding at most `capacity` ids (at least one).
    pub fn new(capacity: usize) -> Self {
        Cache {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_generation: 0,
        }
    }

    /// How many ids it holds (expired ones not yet looked at included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no id.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most ids it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The live entry for `key`; an expired one is removed (returned in `expired`).
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Lookup<'_, V> {
        let expired = match self.entries.get(key) {
            None => return Lookup::Absent,
            Some(slot) => slot.expires_ms.is_some_and(|at| at <= now_ms),
        };
        if expired {
            return match self.remove(key) {
                Some((key, _)) => Lookup::Expired(key),
                None => Lookup::Absent,
            };
        }
        match self.entries.get(key) {
            Some(slot) => Lookup::Live(&slot.value),
            None => Lookup::Absent,
        }
    }

    /// Inserts (or replaces) `key` as the newest entry; returns its generation
    /// and the ids evicted to stay within capacity.
    pub fn insert(&mut self, key: DedupKey, value: V, expires_ms: Option<u64>) -> Inserted {
        let generation = self.next_generation;
        self.insert_at(generation, key, value, expires_ms)
    }

    /// Inserts `key` at a known generation (restoring a stored cache, oldest first).
    pub fn insert_at(
        &mut self,
        generation: u64,
        key: DedupKey,
        value: V,
        expires_ms: Option<u64>,
    ) -> Inserted {
        self.next_generation = self.next_generation.max(generation + 1);
        self.remove(&key);
        let mut evicted = Vec::new();
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            evicted.push(oldest);
        }
        self.order.insert(generation, key.clone());
        self.entries.insert(
            key,
            Slot {
                generation,
                expires_ms,
                value,
            },
        );
        Inserted {
            generation,
            evicted,
        }
    }

    /// Removes `key`; returns it and its value if it was there.
    pub fn remove(&mut self, key: &[u8]) -> Option<(DedupKey, V)> {
        let (key, slot) = self.entries.remove_entry(key)?;
        self.order.remove(&slot.generation);
        Some((key, slot.value))
    }

    /// Removes every entry; returns the ids.
    pub fn clear(&mut self) -> Vec<DedupKey> {
        self.order.clear();
        self.entries.drain().map(|(key, _)| key).collect()
    }
}

/// What [`Cache::get`] found.
#[derive(Debug)]
pub enum Lookup<'a, V> {
    /// Not there.
    Absent,
    /// There, expired, and now removed.
    Expired(DedupKey),
    /// There and live.
    Live(&'a V),
}

/// What [`Cache::insert`] did.
#[derive(Debug)]
pub struct Inserted {
    /// The new entry's generation (its place in the FIFO).
    pub generation: u64,
    /// Ids evicted to make room, oldest first.
    pub evicted: Vec<DedupKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> DedupKey {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn evicts_the_oldest_at_capacity() {
        let mut cache = Cache::new(2);
        cache.insert(key("a"), (), None);
        cache.insert(key("b"), (), None);
        let inserted = cache.insert(key("c"), (), None);
        assert_eq!(inserted.evicted, vec![key("a")]);
        assert!(matches!(cache.get(b"a", 0), Lookup::Absent));
        assert!(matches!(cache.get(b"b", 0), Lookup::Live(_)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn memory_stays_within_capacity_for_many_ids() {
        let mut cache = Cache::new(100);
        for i in 0..10_000 {
            cache.insert(key(&i.to_string()), (), None);
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.order.len(), 100);
    }

    #[test]
    fn expired_entries_are_removed_when_looked_up() {
        let mut cache = Cache::new(4);
        cache.insert(key("a"), (), Some(10));
        assert!(matches!(cache.get(b"a", 9), Lookup::Live(_)));
        assert!(matches!(cache.get(b"a", 10), Lookup::Expired(_)));
        assert!(cache.is_empty());
    }

    #[test]
    fn replacing_an_id_moves_it_to_the_back() {
        let mut cache = Cache::new(2);
        cache.insert(key("a"), 1, None);
        cache.insert(key("b"), 2, None);
        cache.insert(key("a"), 3, None);
        let inserted = cache.insert(key("c"), 4, None);
        assert_eq!(inserted.evicted, vec![key("b")]);
        assert!(matches!(cache.get(b"a", 0), Lookup::Live(3)));
    }
}

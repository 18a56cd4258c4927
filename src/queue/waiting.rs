//! A queue's messages that are not ready before a due time (delayed
//! retries, `x-opt-delivery-time`), by due time, outside the ready list so
//! that they block nothing behind them.
//!
//! Memory holds them up to [`WINDOW`]; past it, a message that is in the
//! store anyway (persistent, durable queue) keeps only what the queue needs
//! to put it back ([`Meta`]) and is read back from the store when it is due,
//! so millions of waiting retries cost a few dozen bytes each, not their
//! bodies. Priority queues keep everything in memory, as their ready list
//! does.

use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use super::SeqId;
use super::ready::Entry;

/// Waiting messages kept whole in memory before stored ones keep only [`Meta`].
pub(super) const WINDOW: usize = 4096;

/// What a waiting message on disk only keeps in memory.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub redelivered: bool,
    pub expires_at: Option<Instant>,
    pub priority: u8,
    pub returns: u64,
    /// Body bytes (what the length limits count).
    pub size: u64,
}

impl Meta {
    /// What `entry` needs to come back from the store.
    pub fn of(entry: &Entry) -> Self {
        Meta {
            redelivered: entry.redelivered,
            expires_at: entry.expires_at,
            priority: entry.priority,
            returns: entry.returns,
            size: entry.message.body_size() as u64,
        }
    }
}

/// A waiting message: whole, or on disk with its [`Meta`].
#[derive(Debug)]
pub(super) enum Parked {
    Memory(Entry),
    Stored(Meta),
}

impl Parked {
    fn size(&self) -> u64 {
        match self {
            Parked::Memory(entry) => entry.message.body_size() as u64,
            Parked::Stored(meta) => meta.size,
        }
    }

    /// Its copy in the store, if it has one (to remove when it goes).
    pub fn stored(&self) -> bool {
        match self {
            Parked::Memory(entry) => entry.stored,
            Parked::Stored(_) => true,
        }
    }
}

/// The waiting messages, by due time.
#[derive(Debug)]
pub(super) struct Waiting {
    by_due: BTreeMap<(Instant, SeqId), Parked>,
    due_of: HashMap<SeqId, Instant>,
    bytes: u64,
    /// How many are [`Parked::Memory`].
    in_memory: usize,
    /// Stored ones may leave their bodies on disk (not a priority queue).
    pages: bool,
}

impl Waiting {
    /// An empty list; `pages`: stored messages past [`WINDOW`] stay on disk.
    pub fn new(pages: bool) -> Self {
        Waiting {
            by_due: BTreeMap::new(),
            due_of: HashMap::new(),
            bytes: 0,
            in_memory: 0,
            pages,
        }
    }

    /// Parks `entry` until `due`: past the window, a stored one leaves its
    /// body on disk.
    pub fn insert(&mut self, due: Instant, seq: SeqId, entry: Entry) {
        let parked = if self.pages && entry.stored && self.in_memory >= WINDOW {
            Parked::Stored(Meta::of(&entry))
        } else {
            Parked::Memory(entry)
        };
        self.park(due, seq, parked);
    }

    /// Parks a message as it is (whole, or on disk).
    pub fn park(&mut self, due: Instant, seq: SeqId, parked: Parked) {
        self.bytes += parked.size();
        if matches!(parked, Parked::Memory(_)) {
            self.in_memory += 1;
        }
        self.due_of.insert(seq, due);
        self.by_due.insert((due, seq), parked);
    }

    pub fn len(&self) -> usize {
        self.by_due.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many are held whole in memory.
    #[cfg(test)]
    pub fn in_memory(&self) -> usize {
        self.in_memory
    }

    pub fn contains(&self, seq: SeqId) -> bool {
        self.due_of.contains_key(&seq)
    }

    /// When the first one is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.keys().next().map(|&(due, _)| due)
    }

    /// Takes the ones due at `now` or earlier, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<(SeqId, Parked)> {
        let mut due = Vec::new();
        while let Some(entry) = self.by_due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), parked) = entry.remove_entry();
            self.forget(seq, &parked);
            due.push((seq, parked));
        }
        due
    }

    /// Takes them all (purge, delete).
    pub fn drain(&mut self) -> Vec<(SeqId, Parked)> {
        self.due_of.clear();
        self.bytes = 0;
        self.in_memory = 0;
        std::mem::take(&mut self.by_due)
            .into_iter()
            .map(|((_, seq), parked)| (seq, parked))
            .collect()
    }

    fn forget(&mut self, seq: SeqId, parked: &Parked) {
        self.due_of.remove(&seq);
        self.bytes = self.bytes.saturating_sub(parked.size());
        if matches!(parked, Parked::Memory(_)) {
            self.in_memory -= 1;
        }
    }
}

//! What the WAL keeps in memory: each group's vote, committed id, purge point and the place
//! of every live entry, and for each file the highest index it holds per group.
//!
//! Replay and live writes go through the same [`GroupState::apply`], so the state after a
//! reopen is the state before the crash (up to the last durable record).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use openraft::entry::RaftEntry;

use super::record::Body;
use crate::types::{Entry, GroupId, LogId, Vote};

/// How many recent entries each group keeps decoded in memory.
pub const CACHE: usize = 1024;

/// At most this many bytes of them (their records' lengths): a quorum queue's entries carry
/// message bodies, and 1024 batches of them could hold hundreds of MiB per group. The
/// newest entry stays whatever its size; older ones are read from the pending buffer or
/// their file.
pub const CACHE_BYTES: u64 = 8 << 20;

/// Where an entry's record lies.
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    /// The file's sequence number.
    pub seq: u64,
    /// The record's offset in the file.
    pub offset: u64,
    /// The record's total length.
    pub len: u32,
    /// The entry's log id.
    pub log_id: LogId,
}

/// One group's log as the WAL knows it.
#[derive(Debug, Default)]
pub struct GroupState {
    /// The saved vote.
    pub vote: Option<Vote>,
    /// The saved committed id.
    pub committed: Option<LogId>,
    /// The last purged id.
    pub purged: Option<LogId>,
    /// Every live entry's place, by index.
    pub entries: BTreeMap<u64, Loc>,
    /// Recent entries, decoded.
    pub cache: BTreeMap<u64, Entry>,
    /// Their records' bytes.
    pub cache_bytes: u64,
}

impl GroupState {
    /// The last log id (the purge point if every entry is purged).
    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|l| l.log_id)
            .or(self.purged)
    }

    /// Applies one record found in file `seq` at `offset`, `len` bytes long.
    pub fn apply(&mut self, body: &Body, seq: u64, offset: u64, len: u32) {
        match body {
            Body::Entry(entry) => {
                let loc = Loc {
                    seq,
                    offset,
                    len,
                    log_id: entry.log_id(),
                };
                let index = entry.index();
                if self.purged.is_some_and(|p| p.index() >= index) {
                    return;
                }
                self.cut_from(index);
                self.entries.insert(index, loc);
            }
            Body::Vote(vote) => self.vote = Some(*vote),
            Body::Committed(committed) => self.committed = *committed,
            Body::TruncateAfter(last) => self.cut_from(last.map_or(0, |id| id.index() + 1)),
            Body::Purge(upto) => {
                if self.purged.is_some_and(|p| p.index() >= upto.index()) {
                    return;
                }
                self.purged = Some(*upto);
                let after = Bound::Excluded(upto.index());
                self.entries = split_from(&mut self.entries, after);
                self.cache = split_from(&mut self.cache, after);
                self.recount_cache();
            }
        }
    }

    /// Keeps `entry` decoded, dropping the oldest beyond [`CACHE`] entries or
    /// [`CACHE_BYTES`].
    pub fn remember(&mut self, entry: Entry) {
        let index = entry.index();
        if self.cache.insert(index, entry).is_some() {
            self.recount_cache();
        } else {
            self.cache_bytes += self.record_len(index);
        }
        while self.cache.len() > CACHE || (self.cache_bytes > CACHE_BYTES && self.cache.len() > 1) {
            if let Some((old, _)) = self.cache.pop_first() {
                self.cache_bytes = self.cache_bytes.saturating_sub(self.record_len(old));
            }
        }
    }

    fn record_len(&self, index: u64) -> u64 {
        self.entries.get(&index).map_or(0, |l| u64::from(l.len))
    }

    /// Counts [`GroupState::cache_bytes`] again (after the cache lost a range).
    fn recount_cache(&mut self) {
        self.cache_bytes = self.cache.keys().map(|&i| self.record_len(i)).sum();
    }

    /// Drops every entry from `index` on.
    fn cut_from(&mut self, index: u64) {
        let _ = self.entries.split_off(&index);
        if self.cache.split_off(&index).is_empty() {
            return;
        }
        self.recount_cache();
    }

    /// The records that restate this group's state at the head of a new file.
    pub fn checkpoint(&self) -> Vec<Body> {
        let mut out = Vec::new();
        if let Some(vote) = self.vote {
            out.push(Body::Vote(vote));
        }
        if self.committed.is_some() {
            out.push(Body::Committed(self.committed));
        }
        if let Some(purged) = self.purged {
            out.push(Body::Purge(purged));
        }
        out
    }
}

/// The entries of `map` after `from` (the rest is dropped).
fn split_from<V>(map: &mut BTreeMap<u64, V>, from: Bound<u64>) -> BTreeMap<u64, V> {
    match from {
        Bound::Excluded(i) => map.split_off(&(i.saturating_add(1))),
        Bound::Included(i) => map.split_off(&i),
        Bound::Unbounded => std::mem::take(map),
    }
}

/// What one WAL file holds, for reclamation.
#[derive(Debug, Default)]
pub struct FileInfo {
    /// The highest entry index per group in this file.
    pub max: HashMap<GroupId, u64>,
}

impl FileInfo {
    /// Notes an entry of `group` at `index`.
    pub fn note(&mut self, group: GroupId, index: u64) {
        let max = self.max.entry(group).or_insert(index);
        *max = (*max).max(index);
    }

    /// Whether every group's purge point passed everything this file holds.
    pub fn reclaimable(&self, groups: &HashMap<GroupId, GroupState>) -> bool {
        self.max.iter().all(|(group, max)| {
            groups
                .get(group)
                .and_then(|g| g.purged)
                .is_some_and(|p| p.index() >= *max)
        })
    }
}

//! A queue's ready messages, in memory up to a window and on disk past it, and
//! its persistent messages on disk.
//!
//! - A persistent message in a durable queue is written to the store when it
//!   arrives (the confirm waits for the group commit) and removed when it
//!   leaves the queue for good ([`Backlog::forget`]).
//! - Past [`WINDOW`] messages (or [`WINDOW_BYTES`] of bodies) in memory, new
//!   messages that are on disk anyway (persistent, durable queue) stay on
//!   disk only ("paged": the store holds every message from `paged.start`
//!   on, transient ones too once paging started) and are read back in
//!   batches as consumers drain the head. Memory then holds a window per
//!   queue, not the backlog. Transient messages page past a larger window
//!   of their own (`transient_window`, 16384 messages, or
//!   [`TRANSIENT_WINDOW_BYTES`]), so a long overload does not grow RSS, and
//!   past [`WINDOW`] under memory pressure (`memory_paging_ratio`); below
//!   it they stay in memory, where they are fastest (a queue whose consumers
//!   keep up never pages). Priority queues keep every message in memory.
//! - Invariant: every message in memory has a lower seq than every paged one,
//!   so delivery order is kept.
//!
//! Paged messages expire when they are read back: like RabbitMQ's classic
//! queues, expiry is found at the head of the queue.
//!
//! A stored message that waits for a due time (a delayed retry, or
//! `x-opt-delivery-time`) has its record rewritten with the due time and its
//! returns (`records::Retry`); at start it comes back waiting, wherever its
//! seq lies (a paged range skips it).

use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::time::Instant;

use warren_storage::QueueId;

mod recover;

use super::SeqId;
use super::ready::{Entry, Ready};
use super::waiting::{Meta, Parked};
use crate::durable::Storage;
use crate::durable::records::{
    KEEP, REDELIVERED, Retry, Stamps, decode_message, encode_stored, expiry_from_wall,
    expiry_to_wall, stamps_of, wall_clock_ms,
};

/// Messages kept in memory before new ones are paged to disk.
const WINDOW: usize = 4096;
/// Body bytes kept in memory before new messages are paged to disk.
const WINDOW_BYTES: u64 = 16 << 20;
/// Transient body bytes kept in memory before new ones are paged to disk
/// (without memory pressure; the count is `Storage::transient_window`).
const TRANSIENT_WINDOW_BYTES: u64 = 64 << 20;
/// Read back from disk when memory holds fewer than this.
const REFILL_BELOW: usize = 1024;
/// Messages read back per refill.
const REFILL_BATCH: usize = 2048;

/// The messages on disk only.
#[derive(Debug, Default)]
struct Paged {
    /// Every paged message has this seq or a higher one.
    start: SeqId,
    count: u64,
    bytes: u64,
    /// Paged messages below this seq were recovered after a crash: they may
    /// have been delivered before.
    redelivered_below: SeqId,
    /// Seqs in the paged range that came back waiting (not counted, skipped
    /// when read back).
    skip: BTreeSet<SeqId>,
}

/// A queue's ready messages and its link to the store.
#[derive(Debug)]
pub(super) struct Backlog {
    memory: Ready,
    paged: Paged,
    storage: Arc<Storage>,
    id: QueueId,
    /// Persistent messages are written (the queue is durable, not exclusive).
    keeps: bool,
    /// New messages may be paged (not a priority queue).
    pages: bool,
    /// Stored seqs that left the queue, removed from the store in one batch.
    gone: Vec<SeqId>,
    max_priority: Option<u8>,
    /// Stored messages that came back at start still waiting for their due
    /// time (taken by the queue after [`Backlog::recover`]).
    recovered_waiting: Vec<(SeqId, Parked, Instant)>,
}

impl Backlog {
    pub fn new(storage: Arc<Storage>, id: QueueId, keeps: bool, max_priority: Option<u8>) -> Self {
        Backlog {
            memory: Ready::default(),
            paged: Paged::default(),
            storage,
            id,
            keeps,
            pages: max_priority.is_none(),
            gone: Vec::new(),
            max_priority,
            recovered_waiting: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.memory.len() + self.paged.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.paged.count == 0
    }

    pub fn bytes(&self) -> u64 {
        self.memory.bytes() + self.paged.bytes
    }

    /// Ready messages on disk only, and their body bytes.
    pub fn paged_out(&self) -> (u64, u64) {
        (self.paged.count, self.paged.bytes)
    }

    /// The next message to deliver, if it is in memory (it is whenever the
    /// queue is not empty, but for a moment while a refill is due).
    pub fn head(&self) -> Option<&Entry> {
        self.memory.first()
    }

    /// Writes a new message to the store if the queue keeps it (with its due
    /// time if it waits `wait_ms` first); false if the store failed (the
    /// publisher must not get a positive confirm).
    pub fn store_new(&mut self, seq: SeqId, entry: &mut Entry, wait_ms: Option<u64>) -> bool {
        if !self.keeps || !entry.message.is_persistent() {
            return true;
        }
        let stamps = Stamps {
            arrived_ms: Some(entry.arrived_ms),
            retry: wait_ms.map(|wait| Retry {
                due_ms: due_wall_ms(wait),
                returns: 0,
            }),
        };
        let record = encode_stored(
            &entry.message,
            KEEP,
            expiry_to_wall(entry.expires_at),
            stamps,
        );
        match self.storage.store().put_message(self.id, seq, &record) {
            Ok(()) => {
                entry.stored = true;
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot store a persistent message");
                false
            }
        }
    }

    /// A stored message starts waiting `delay_ms` for a retry: its record
    /// gets the due time and its returns, so that a restart keeps both.
    pub fn store_waiting(&mut self, seq: SeqId, entry: &Entry, delay_ms: u64) {
        if !entry.stored {
            return;
        }
        let stamps = Stamps {
            arrived_ms: Some(entry.arrived_ms),
            retry: Some(Retry {
                due_ms: due_wall_ms(delay_ms),
                returns: entry.returns,
            }),
        };
        let flags = KEEP | if entry.redelivered { REDELIVERED } else { 0 };
        let record = encode_stored(
            &entry.message,
            flags,
            expiry_to_wall(entry.expires_at),
            stamps,
        );
        if let Err(error) = self.storage.store().put_message(self.id, seq, &record) {
            tracing::error!(%error, "cannot record a waiting retry");
        }
        // Nobody waits for it, but the due time and count should not wait
        // for the next publish's commit to become durable.
        self.storage.request();
    }

    /// A waiting message kept on disk only, read back when it is due.
    pub fn load(&mut self, seq: SeqId, meta: Meta) -> Option<Entry> {
        let batch = match self.storage.store().messages(self.id, seq, 1) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read a waiting message back");
                return None;
            }
        };
        let (found, record) = batch.into_iter().next()?;
        if found != seq {
            return None;
        }
        let arrived_ms = stamps_of(&record).arrived_ms.unwrap_or_else(wall_clock_ms);
        let (message, _, _) = decode_message(record)?;
        Some(Entry {
            message: Arc::new(message),
            redelivered: meta.redelivered,
            expires_at: meta.expires_at,
            priority: meta.priority,
            returns: meta.returns,
            stored: true,
            arrived_ms,
        })
    }

    /// The stored messages that came back waiting at start, with their due
    /// times.
    pub fn take_recovered_waiting(&mut self) -> Vec<(SeqId, Parked, Instant)> {
        std::mem::take(&mut self.recovered_waiting)
    }

    /// Puts a requeued message back at its original place (always in memory:
    /// it is older than every paged one).
    pub fn insert(&mut self, seq: SeqId, entry: Entry) {
        self.memory.insert(seq, entry);
    }

    /// Appends a new message (the newest seq): past the window, to disk only
    /// if it is there anyway (persistent in a durable queue) or memory is short,
    /// past the transient window in any case; once some are paged, every newer
    /// one is too (delivery order).
    pub fn push(&mut self, seq: SeqId, mut entry: Entry) {
        let page = self.pages && (self.paged.count > 0 || self.past_window(&entry));
        if page {
            let size = entry.message.body_size() as u64;
            let written = entry.stored || {
                let flags = if entry.redelivered { REDELIVERED } else { 0 };
                let stamps = Stamps {
                    arrived_ms: Some(entry.arrived_ms),
                    retry: None,
                };
                let record = encode_stored(
                    &entry.message,
                    flags,
                    expiry_to_wall(entry.expires_at),
                    stamps,
                );
                match self.storage.store().put_message(self.id, seq, &record) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot page a message out; keeping it in memory");
                        false
                    }
                }
            };
            if written {
                if self.paged.count == 0 {
                    self.paged.start = seq;
                }
                self.paged.count += 1;
                self.paged.bytes += size;
                return;
            }
            entry.stored = false;
        }
        self.memory.insert(seq, entry);
    }

    /// Whether a new message would not fit in memory: past the window if it
    /// is on disk anyway or memory is short, past the transient window in any
    /// case. A few comparisons while the queue is short (the hot path).
    fn past_window(&self, entry: &Entry) -> bool {
        let (len, bytes) = (self.memory.len(), self.memory.bytes());
        if (len >= WINDOW || bytes >= WINDOW_BYTES)
            && (entry.stored || self.storage.memory_pressure())
        {
            return true;
        }
        let transient = self.storage.transient_window();
        transient > 0 && (len >= transient || bytes >= TRANSIENT_WINDOW_BYTES)
    }

    /// Whether the ready message `seq` (of `priority`) is still here, in
    /// memory or paged (paged ones are every seq from the first paged one on).
    pub fn holds(&self, seq: SeqId, priority: u8) -> bool {
        self.memory.contains(seq, priority)
            || (self.paged.count > 0 && seq >= self.paged.start && !self.paged.skip.contains(&seq))
    }

    /// Calls `f` with each message in the store, in seq order (at start,
    /// after [`Backlog::recover`]: the queue's recovered messages).
    pub fn for_each_stored(
        &self,
        mut f: impl FnMut(SeqId, &crate::message::Message, Option<Instant>),
    ) {
        let mut from = 0;
        loop {
            let batch = match self.storage.store().messages(self.id, from, REFILL_BATCH) {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot read a queue's messages");
                    return;
                }
            };
            let Some(&(last, _)) = batch.last() else {
                return;
            };
            for (seq, record) in batch {
                if let Some((message, _, expires)) = decode_message(record) {
                    f(seq, &message, expiry_from_wall(expires));
                }
            }
            from = last + 1;
        }
    }

    /// Takes the next message to deliver.
    pub fn pop_first(&mut self) -> Option<(SeqId, Entry)> {
        if self.memory.is_empty() {
            self.refill();
        }
        let first = self.memory.pop_first();
        self.refill_if_low();
        first
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.memory.next_expiry()
    }

    /// Takes the messages whose expiry has come (they leave the queue), in
    /// queue order, handing each to `expired`.
    pub fn take_expired(&mut self, now: Instant, mut expired: impl FnMut(Entry)) {
        // The usual case, on every publish: nothing has an expiry yet (no
        // list made and dropped: about 20 instructions a publish).
        if self.memory.next_expiry().is_none_or(|at| at > now) {
            self.refill_if_low();
            return;
        }
        loop {
            let taken = self.memory.take_expired(now);
            let more = !taken.is_empty();
            for (seq, entry) in taken {
                self.forget(seq, &entry);
                expired(entry);
            }
            // A drained head may uncover paged messages that expired too.
            if !more || !self.memory.is_empty() || self.paged.count == 0 {
                break;
            }
            self.refill();
        }
        self.refill_if_low();
    }

    /// Drops every ready message (purge, delete); returns how many there were.
    pub fn clear(&mut self) -> usize {
        let count = self.len();
        for (seq, entry) in self.memory.drain() {
            self.forget(seq, &entry);
        }
        if self.paged.count > 0 {
            self.drop_paged();
        }
        self.flush_gone();
        count
    }

    /// Forgets every ready message without touching the store (the queue is
    /// deleted and its stored messages go all at once); returns how many.
    pub fn discard_all(&mut self) -> usize {
        let count = self.len();
        self.memory.drain();
        self.paged = Paged::default();
        self.gone.clear();
        count
    }

    /// A message left the queue for good: its stored copy goes.
    pub fn forget(&mut self, seq: SeqId, entry: &Entry) {
        if entry.stored {
            self.forget_seq(seq);
        }
    }

    /// The stored message `seq` left the queue for good.
    pub fn forget_seq(&mut self, seq: SeqId) {
        self.gone.push(seq);
    }

    /// Removes what [`Backlog::forget`] collected.
    pub fn flush_gone(&mut self) {
        if self.gone.is_empty() {
            return;
        }
        if let Err(error) = self.storage.store().remove_messages(self.id, &self.gone) {
            tracing::error!(%error, "cannot remove settled messages from the store");
        }
        self.gone.clear();
    }

    fn drop_paged(&mut self) {
        let mut from = self.paged.start;
        loop {
            let batch = match self.storage.store().messages(self.id, from, REFILL_BATCH) {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot read paged messages");
                    break;
                }
            };
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let seqs: Vec<SeqId> = batch.into_iter().map(|(seq, _)| seq).collect();
            if let Err(error) = self.storage.store().remove_messages(self.id, &seqs) {
                tracing::error!(%error, "cannot remove paged messages");
                break;
            }
            from = last + 1;
        }
        self.paged.count = 0;
        self.paged.bytes = 0;
    }

    fn refill_if_low(&mut self) {
        if self.paged.count > 0 && self.memory.len() < REFILL_BELOW {
            self.refill();
        }
    }

    /// Reads the next batch of paged messages into memory.
    fn refill(&mut self) {
        if self.paged.count == 0 {
            return;
        }
        let batch = match self
            .storage
            .store()
            .messages(self.id, self.paged.start, REFILL_BATCH)
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read paged messages back");
                return;
            }
        };
        if batch.is_empty() {
            tracing::error!(
                missing = self.paged.count,
                "paged messages are missing from the store"
            );
            self.paged.count = 0;
            self.paged.bytes = 0;
            return;
        }
        for (seq, record) in batch {
            self.paged.start = seq + 1;
            if self.paged.skip.remove(&seq) {
                // Waiting for its due time: the queue holds it.
                continue;
            }
            self.paged.count = self.paged.count.saturating_sub(1);
            let stamps = stamps_of(&record);
            let Some((message, flags, expires)) = decode_message(record) else {
                tracing::error!(seq, "dropping an unreadable stored message");
                self.gone.push(seq);
                continue;
            };
            self.paged.bytes = self.paged.bytes.saturating_sub(message.body_size() as u64);
            let stored = flags & KEEP != 0;
            if !stored {
                // A transient message's copy was only there to save memory.
                self.gone.push(seq);
            }
            let redelivered = flags & REDELIVERED != 0 || seq < self.paged.redelivered_below;
            let entry = self.entry(
                message,
                redelivered,
                expiry_from_wall(expires),
                stored,
                stamps,
            );
            self.memory.insert(seq, entry);
        }
        if self.paged.count == 0 {
            self.paged.bytes = 0;
            self.paged.skip.clear();
        }
        self.flush_gone();
    }

    /// A message read back from the store, with what its record's stamps
    /// say (a record without an arrival time arrived now, as far as anyone
    /// can tell).
    fn entry(
        &self,
        message: crate::message::Message,
        redelivered: bool,
        expires_at: Option<Instant>,
        stored: bool,
        stamps: Stamps,
    ) -> Entry {
        let priority = self
            .max_priority
            .map_or(0, |max| message.properties.priority().unwrap_or(0).min(max));
        Entry {
            message: Arc::new(message),
            redelivered,
            expires_at,
            priority,
            returns: stamps.retry.map_or(0, |r| r.returns),
            stored,
            arrived_ms: stamps.arrived_ms.unwrap_or_else(wall_clock_ms),
        }
    }

    /// At a clean shutdown: records which kept messages were delivered before,
    /// so that they come back redelivered (`outstanding`: those still unacked).
    pub fn save_redelivered<'a>(
        &'a self,
        outstanding: impl Iterator<Item = (&'a SeqId, &'a Entry)>,
    ) {
        let store = self.storage.store();
        let in_memory = self.memory.iter().filter(|(_, e)| e.redelivered);
        let mut saved: Vec<(SeqId, &Entry)> = in_memory
            .chain(outstanding)
            .filter(|(_, e)| e.stored)
            .map(|(&seq, e)| (seq, e))
            .collect();
        // In seq order: the segment log appends a run of ascending seqs to one
        // segment, where a random order would start a segment per step back.
        saved.sort_unstable_by_key(|&(seq, _)| seq);
        for (seq, entry) in saved {
            // The returns count on (delivery limit, backoff, x-delivery-count).
            let stamps = Stamps {
                arrived_ms: Some(entry.arrived_ms),
                retry: (entry.returns > 0).then_some(Retry {
                    due_ms: 0,
                    returns: entry.returns,
                }),
            };
            let record = encode_stored(
                &entry.message,
                KEEP | REDELIVERED,
                expiry_to_wall(entry.expires_at),
                stamps,
            );
            if let Err(error) = store.put_message(self.id, seq, &record) {
                tracing::error!(%error, "cannot record a redelivered message");
            }
        }
    }
}

/// The wall-clock due time, in ms, of a wait of `wait_ms` starting now,
/// rounded up: the clock's ms are truncated, and a due time read back after
/// a restart must never come before the wait is over.
fn due_wall_ms(wait_ms: u64) -> u64 {
    wall_clock_ms().saturating_add(wait_ms).saturating_add(1)
}

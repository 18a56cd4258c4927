//! A queue's messages read back at start, and the marks a clean shutdown
//! leaves on them: the head up to the window decoded into memory, the rest
//! paged, summed from the store's segment summaries where it can (a deep
//! queue comes back without a read of every record), read otherwise.

use std::time::Duration;
use tokio::time::Instant;

use super::{Backlog, REFILL_BATCH, WINDOW, WINDOW_BYTES};
use crate::durable::records::{
    KEEP, REDELIVERED, RETRY, Retry, decode_message, expiry_from_wall, peek_message, stamps_of,
    wall_clock_ms,
};
use crate::queue::SeqId;
use crate::queue::ready::Entry;
use crate::queue::waiting::{self, Meta, Parked};

impl Backlog {
    /// Rebuilds the queue from the store at start: the head in memory, the rest
    /// paged; transient leftovers removed. After a crash (`clean` false) every
    /// message may have been delivered, so all come back redelivered. Returns
    /// the next seq to use.
    pub fn recover(&mut self, clean: bool) -> SeqId {
        let mut from = 0;
        let mut next_seq = 0;
        'batches: loop {
            let batch = match self.storage.store().messages(self.id, from, REFILL_BATCH) {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot read a queue's messages");
                    break;
                }
            };
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let now_ms = wall_clock_ms();
            for (seq, record) in batch {
                next_seq = seq + 1;
                let keep = peek_message(&record).filter(|(flags, _)| flags & KEEP != 0);
                let Some((_, size)) = keep else {
                    self.gone.push(seq);
                    continue;
                };
                let stamps = stamps_of(&record);
                if let Some(retry) = stamps.retry.filter(|r| r.due_ms > now_ms) {
                    self.recover_waiting(seq, record, retry, now_ms);
                    continue;
                }
                let to_memory = self.paged.count == 0
                    && (!self.pages
                        || (self.memory.len() < WINDOW && self.memory.bytes() < WINDOW_BYTES));
                if to_memory {
                    match self.read_entry(record, |flags| !clean || flags & REDELIVERED != 0) {
                        Some(entry) => self.memory.insert(seq, entry),
                        None => self.gone.push(seq),
                    }
                } else {
                    if self.paged.count == 0 {
                        self.paged.start = seq;
                        let overhead = (record.len() as u64).saturating_sub(size);
                        if let Some((count, bytes, next)) = self.summarised_rest(seq, overhead) {
                            self.paged.count = count;
                            self.paged.bytes = bytes;
                            next_seq = next.max(seq + 1);
                            break 'batches;
                        }
                    }
                    self.paged.count += 1;
                    self.paged.bytes += size;
                }
            }
            from = last + 1;
            if self.gone.len() >= REFILL_BATCH {
                self.flush_gone();
            }
        }
        if !clean {
            self.paged.redelivered_below = next_seq;
        }
        self.flush_gone();
        next_seq
    }

    /// The paged rest of a deep queue from `from` on, from the store's
    /// summaries instead of a read of every record: its count, body bytes
    /// (estimated with `overhead`, the record bytes around the body of the
    /// message at `from`) and the next seq. Only if every record there is
    /// kept and none waits for a retry; otherwise the rest is read.
    fn summarised_rest(&self, from: SeqId, overhead: u64) -> Option<(u64, u64, SeqId)> {
        let summary = match self.storage.store().live_summary(self.id, from) {
            Ok(summary) => summary?,
            Err(error) => {
                tracing::warn!(%error, "cannot sum a queue's stored messages; reading them");
                return None;
            }
        };
        if summary.first_and & KEEP == 0 || summary.first_or & RETRY != 0 {
            return None;
        }
        let bytes = summary
            .value_bytes
            .saturating_sub(summary.count.saturating_mul(overhead));
        Some((summary.count, bytes, summary.next_seq))
    }

    /// A kept record read back at start as an entry (`redelivered` tells
    /// from its flags); `None` if it cannot be read.
    fn read_entry(&self, record: Vec<u8>, redelivered: impl FnOnce(u8) -> bool) -> Option<Entry> {
        let stamps = stamps_of(&record);
        let (message, flags, expires) = decode_message(record)?;
        Some(self.entry(
            message,
            redelivered(flags),
            expiry_from_wall(expires),
            true,
            stamps,
        ))
    }

    /// A stored message found waiting at start: decoded and kept for the
    /// queue's waiting list; in a paged range, skipped when read back.
    fn recover_waiting(&mut self, seq: SeqId, record: Vec<u8>, retry: Retry, now_ms: u64) {
        let read = self.read_entry(record, |flags| {
            flags & REDELIVERED != 0 || retry.returns > 0
        });
        let Some(entry) = read else {
            self.gone.push(seq);
            return;
        };
        let due = Instant::now() + Duration::from_millis(retry.due_ms - now_ms);
        if self.paged.count > 0 {
            self.paged.skip.insert(seq);
        }
        // Past the waiting list's window only what puts it back stays in memory.
        let parked = if self.pages && self.recovered_waiting.len() >= waiting::WINDOW {
            Parked::Stored(Meta::of(&entry))
        } else {
            Parked::Memory(entry)
        };
        self.recovered_waiting.push((seq, parked, due));
    }
}

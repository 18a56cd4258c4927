//! What memory knows of one segment file, without a per-message index.

use std::collections::HashSet;

use super::super::format::Layout;
use super::super::summary::Summary;
use crate::Seq;

/// One sparse index entry per this many bytes of segment.
const SPARSE_STEP: u64 = 64 << 10;

/// What memory knows of one segment file: no per-message index, only a range,
/// counts, a sparse index and the removed seqs of a partly removed segment.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) no: u64,
    /// How its file lays out records.
    pub(super) layout: Layout,
    /// Lowest and highest seq of its records (records are in seq order).
    pub(super) min: Seq,
    pub(super) max: Seq,
    pub(super) records: u64,
    pub(super) live: u64,
    /// Bytes of records (written or buffered), from the start of the file.
    pub(super) len: u64,
    /// Seqs of records removed while others are still live.
    pub(super) removed: Removed,
    /// `(seq, offset)` of a record every [`SPARSE_STEP`] bytes.
    pub(super) sparse: Vec<(Seq, u64)>,
    /// Bytes of its records' values.
    pub(super) value_bytes: u64,
    /// OR and AND of the first byte of every record's value (the broker's
    /// flags: whether any or all records have one).
    pub(super) first_or: u8,
    pub(super) first_and: u8,
    /// Acks entries not yet written to the acks file.
    pub(super) acks_pending: Vec<u8>,
    /// Bytes of the acks file.
    pub(super) acks_len: u64,
}

impl Segment {
    pub(super) fn new(no: u64, layout: Layout) -> Self {
        Segment {
            no,
            layout,
            min: 0,
            max: 0,
            records: 0,
            live: 0,
            len: layout.file_header_len(),
            removed: Removed::default(),
            sparse: Vec::new(),
            value_bytes: 0,
            first_or: 0,
            first_and: u8::MAX,
            acks_pending: Vec::new(),
            acks_len: 0,
        }
    }

    /// Notes a record of `size` bytes (header and value) appended at
    /// `offset`, its value `value_len` bytes starting with `first`.
    pub(super) fn note(&mut self, seq: Seq, offset: u64, size: u64, value_len: u64, first: u8) {
        self.value_bytes += value_len;
        self.first_or |= first;
        self.first_and &= first;
        if self.records == 0 {
            self.min = seq;
            self.removed.below = seq;
        }
        self.max = seq;
        self.records += 1;
        self.live += 1;
        self.len = offset + size;
        if self
            .sparse
            .last()
            .is_none_or(|&(_, at)| offset >= at + SPARSE_STEP)
        {
            self.sparse.push((seq, offset));
        }
    }

    /// What its summary file keeps (once it is sealed).
    pub(super) fn summary(&self) -> Summary {
        Summary {
            min: self.min,
            max: self.max,
            records: self.records,
            len: self.len,
            value_bytes: self.value_bytes,
            first_or: self.first_or,
            first_and: self.first_and,
            sparse: self.sparse.clone(),
        }
    }

    /// A sealed segment as its summary describes it, every record live.
    pub(super) fn from_summary(no: u64, layout: Layout, summary: Summary) -> Self {
        let mut segment = Segment::new(no, layout);
        segment.min = summary.min;
        segment.max = summary.max;
        segment.records = summary.records;
        segment.live = summary.records;
        segment.len = summary.len;
        segment.removed.below = summary.min;
        segment.sparse = summary.sparse;
        segment.value_bytes = summary.value_bytes;
        segment.first_or = summary.first_or;
        segment.first_and = summary.first_and;
        segment
    }

    /// Live records with a seq of `from` or more, if that is known without
    /// reading the file (the segment starts there, or it has no gaps).
    pub(super) fn live_from(&self, from: Seq) -> Option<u64> {
        if from <= self.min {
            return Some(self.live);
        }
        if from > self.max {
            return Some(0);
        }
        if !self.dense() {
            return None;
        }
        let prefix = self.removed.below.min(self.max + 1).saturating_sub(from);
        let others = self.removed.others.iter().filter(|&&s| s >= from).count() as u64;
        Some((self.max - from + 1).saturating_sub(prefix + others))
    }

    /// Every seq of the range is a record (no need to look at the file).
    pub(super) fn dense(&self) -> bool {
        self.records > 0 && self.max - self.min + 1 == self.records
    }

    /// An offset at or before the first record with a seq >= `seq`.
    pub(super) fn start_for(&self, seq: Seq) -> u64 {
        let i = self.sparse.partition_point(|&(s, _)| s <= seq);
        match i {
            0 => self.layout.file_header_len(),
            i => self.sparse[i - 1].1,
        }
    }
}

/// A segment's removed seqs: a prefix (acks mostly come in order, so this
/// stays small while a segment drains from its head) and the others.
#[derive(Debug, Default)]
pub(super) struct Removed {
    /// Every seq from the segment's first up to this one (excluded) is removed.
    pub(super) below: Seq,
    /// Seqs are ours, not a client's: a fast hash.
    pub(super) others: HashSet<Seq, foldhash::fast::RandomState>,
}

impl Removed {
    pub(super) fn contains(&self, seq: &Seq) -> bool {
        *seq < self.below || self.others.contains(seq)
    }

    pub(super) fn insert(&mut self, seq: Seq) {
        if seq != self.below {
            self.others.insert(seq);
            return;
        }
        self.below += 1;
        while self.others.remove(&self.below) {
            self.below += 1;
        }
    }
}

//! The in-memory index of a stream: per segment its offset and timestamp
//! range and length, and a sparse chunk index (one entry per `step` bytes of
//! file), so memory grows with the number of segments and the bytes on disk
//! divided by the step, never with the number of messages.

use std::path::{Path, PathBuf};

use super::chunk::SEGMENT_MAGIC;

/// One sparse index entry: a chunk's first offset, timestamp and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The chunk's first offset.
    pub offset: u64,
    /// The chunk's timestamp.
    pub timestamp_ms: u64,
    /// Where the chunk starts in its file.
    pub pos: u64,
}

/// What the log keeps in memory about one segment file.
#[derive(Debug)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// The offset of its first message (the file is named after it).
    pub first_offset: u64,
    /// The offset after its last message (`first_offset` when empty).
    pub next_offset: u64,
    /// Its length in bytes, the magic and buffered chunks included.
    pub len: u64,
    /// The timestamp of its first chunk (`None` when empty).
    pub first_ts: Option<u64>,
    /// The timestamp of its last chunk (`None` when empty).
    pub last_ts: Option<u64>,
    /// The first offset of its last chunk (`None` when empty).
    pub last_chunk: Option<u64>,
    /// The sparse chunk index: the first chunk, then a chunk every `step`
    /// bytes or more; offsets, timestamps and positions all increase.
    pub sparse: Vec<IndexEntry>,
}

/// The file name of the segment whose first offset is `first_offset`: the
/// offset, zero-padded so that names sort like offsets (as RabbitMQ's
/// `00000000000000000117.segment`).
pub fn segment_path(dir: &Path, first_offset: u64) -> PathBuf {
    dir.join(format!("{first_offset:020}.seg"))
}

/// The first offset a segment file's name gives, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

impl Segment {
    /// An empty segment (only its magic).
    pub fn new(path: PathBuf, first_offset: u64) -> Self {
        Segment {
            path,
            first_offset,
            next_offset: first_offset,
            len: SEGMENT_MAGIC.len() as u64,
            first_ts: None,
            last_ts: None,
            last_chunk: None,
            sparse: Vec::new(),
        }
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.next_offset == self.first_offset
    }

    /// Records a chunk appended at `pos` (which must be `self.len`).
    pub fn add_chunk(&mut self, pos: u64, first: u64, count: u64, ts: u64, len: u64, step: u64) {
        debug_assert_eq!(pos, self.len);
        let due = match self.sparse.last() {
            None => true,
            Some(last) => pos - last.pos >= step,
        };
        if due {
            self.sparse.push(IndexEntry {
                offset: first,
                timestamp_ms: ts,
                pos,
            });
        }
        if self.is_empty() {
            self.first_ts = Some(ts);
        }
        self.last_ts = Some(ts);
        self.last_chunk = Some(first);
        self.next_offset = first + count;
        self.len = pos + len;
    }

    /// The indexed chunk to start scanning from for `offset`: the last entry
    /// at or before it (the first entry if `offset` is before the segment).
    pub fn seek(&self, offset: u64) -> Option<IndexEntry> {
        let i = self.sparse.partition_point(|e| e.offset <= offset);
        self.sparse.get(i.saturating_sub(1)).copied()
    }

    /// The indexed chunk to start scanning from for the first chunk whose
    /// timestamp is at least `ts`: the last entry before it.
    pub fn seek_ts(&self, ts: u64) -> Option<IndexEntry> {
        let i = self.sparse.partition_point(|e| e.timestamp_ms < ts);
        self.sparse.get(i.saturating_sub(1)).copied()
    }
}

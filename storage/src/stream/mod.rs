//! The stream log: a stream queue's messages in an append-only, segmented log
//! on disk, read by any number of consumers from their own offsets (issue 17;
//! RabbitMQ's behaviour: `docs/streams-rabbitmq-behaviour.md`).
//!
//! On disk, one directory per stream:
//!
//! ```text
//! <dir>/<first offset, 20 digits>.seg   "WRNSTR01", then chunks (see chunk.rs)
//! ```
//!
//! A chunk is a batch of messages appended together (one publish batch, one
//! group commit): one header (offsets, timestamp, bloom filter of the
//! messages' filter values, checksums) for many messages, so per-message
//! overhead is 4 bytes and a reader checks and skips a batch at a time.
//! Offsets are dense: every message takes one, starting at 0, across segment
//! files (RabbitMQ spends one on a tracking chunk at each segment's start;
//! Warren has no such chunk, so its offsets stay contiguous). A segment file
//! is named after its first offset, so an emptied segment (a tail cut at
//! open) still says where offsets continue.
//!
//! Writes are buffered ([`StreamLog::append`]); [`StreamLog::flush`] writes
//! and fsyncs them (and the directory when a segment was created), and only
//! then do readers see them: a consumer never gets a message a crash could
//! take back, as RabbitMQ's readers only see committed chunks. A segment is
//! closed once it has reached the segment size limit (RabbitMQ's rule: the
//! chunk that crosses the limit still goes in), and the next chunk starts a
//! new one.
//!
//! Memory: per segment its range, length and a sparse chunk index (one entry
//! per [`StreamConfig::index_step`] bytes), never an entry per message, and no
//! cache of message data: readers ([`StreamReader`]) read the files with
//! their own positioned reads, so a consumer far behind costs its own reads
//! and evicts nothing the log keeps (the page cache is the kernel's).
//!
//! Retention ([`StreamLog::apply_retention`]) drops whole segments, oldest
//! first, never the active one, RabbitMQ's granularity; the caller decides
//! when (RabbitMQ evaluates it when a segment rolls over).
//!
//! - `chunk.rs`: the bytes of a chunk, the bloom filter.
//! - `index.rs`: the per-segment in-memory index.
//! - `recover.rs`: checking and indexing the files at open.
//! - `read.rs`: readers (cursors), reading from an offset, filtering.

mod chunk;
mod index;
mod read;
mod recover;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use index::{Segment, segment_path};
pub use read::{ReadFilter, ReadLimits, StreamMessage, StreamReader};

/// Buffered chunk bytes are written out (not fsynced) past this size, so an
/// unflushed burst does not grow memory without bound.
const WRITE_BEHIND: usize = 1 << 20;

/// A stream's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// A segment is closed once it is this long (`x-stream-max-segment-size-bytes`;
    /// RabbitMQ's default is 500 MB).
    pub max_segment_size: u64,
    /// Bloom filter bytes per chunk that has filter values
    /// (`x-stream-filter-size-bytes`, 16 to 255 in RabbitMQ, default 16).
    pub filter_size_bytes: u8,
    /// One sparse index entry per this many bytes of segment.
    pub index_step: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_segment_size: 500_000_000,
            filter_size_bytes: 16,
            index_step: 64 << 10,
        }
    }
}

/// The files a flush must fsync ([`StreamLog::begin_sync`]).
#[derive(Debug)]
pub struct PendingSync {
    files: Vec<File>,
    /// The directory, when a segment file was created.
    dir: Option<PathBuf>,
    next_offset: u64,
    last_chunk: Option<u64>,
}

impl PendingSync {
    /// Fsyncs the files (and the directory); needs no lock on the log.
    pub fn sync(&self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        match &self.dir {
            // A stream deleted meanwhile has nothing left to make durable.
            Some(dir) => match sync_dir(dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }
}

/// A stream's messages on disk (see the module doc).
#[derive(Debug)]
pub struct StreamLog {
    dir: PathBuf,
    config: StreamConfig,
    /// By first offset; the last is the active one. Never empty.
    segments: VecDeque<Segment>,
    /// The active segment, opened for appending.
    active: File,
    /// Chunk bytes of the active segment not yet written to it.
    pending: Vec<u8>,
    /// Closed segments written since the last flush, to fsync at the next.
    unsynced: Vec<File>,
    /// Whether a segment file was created since the last flush.
    dir_dirty: bool,
    /// The offset the next message gets.
    next_offset: u64,
    /// Offsets below this are durable and readable.
    durable_next: u64,
    /// The first offset of the last durable chunk.
    durable_last_chunk: Option<u64>,
    /// The last chunk's timestamp: chunk timestamps never go backwards.
    last_ts: u64,
    /// A write or fsync failed: the files' state is unknown, every call fails.
    failed: bool,
}

fn failed_error() -> io::Error {
    io::Error::other("stream log: an earlier write failed")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl StreamLog {
    /// Opens (creating it if needed) the stream in `dir` with the default
    /// configuration.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, StreamConfig::default())
    }

    /// Opens (creating it if needed) the stream in `dir`: every chunk is
    /// checked, torn or damaged tails are cut (see `recover.rs`).
    pub fn open_with(dir: &Path, config: StreamConfig) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let firsts = recover::list_segments(dir)?;
        let mut segments = VecDeque::with_capacity(firsts.len());
        for (i, first) in firsts.iter().enumerate() {
            let segment = recover::recover_segment(dir, *first, config.index_step.max(1))?;
            if segment.is_empty() && i + 1 < firsts.len() {
                // Emptied by a cut; later segments say where offsets go on.
                tracing::warn!(file = %segment.path.display(), "removing an empty stream segment");
                fs::remove_file(&segment.path)?;
                continue;
            }
            segments.push_back(segment);
        }
        let mut dir_dirty = false;
        if segments.is_empty() {
            let path = segment_path(dir, 0);
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)?;
            file.write_all(chunk::SEGMENT_MAGIC)?;
            file.sync_all()?;
            dir_dirty = true;
            segments.push_back(Segment::new(path, 0));
        }
        let last = segments.back().ok_or_else(failed_error)?;
        let active = OpenOptions::new().append(true).open(&last.path)?;
        let next_offset = last.next_offset;
        let last_ts = segments.iter().filter_map(|s| s.last_ts).max().unwrap_or(0);
        let durable_last_chunk = segments.iter().rev().find_map(|s| s.last_chunk);
        if dir_dirty {
            sync_dir(dir)?;
        }
        Ok(StreamLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            active,
            pending: Vec::new(),
            unsynced: Vec::new(),
            dir_dirty: false,
            next_offset,
            durable_next: next_offset,
            durable_last_chunk,
            last_ts,
            failed: false,
        })
    }

    /// The stream's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one chunk of `messages` (value, optional filter value) with
    /// the wall-clock `timestamp_ms` of its first message; returns the first
    /// message's offset. Buffered: durable and readable after
    /// [`StreamLog::flush`]. A timestamp before the previous chunk's is
    /// raised to it, so timestamps never go backwards and
    /// [`StreamLog::offset_at_timestamp`] can search (a clock stepping back
    /// must not hide later messages from a timestamp consumer).
    pub fn append(
        &mut self,
        messages: &[(&[u8], Option<&[u8]>)],
        timestamp_ms: u64,
    ) -> io::Result<u64> {
        if self.failed {
            return Err(failed_error());
        }
        let first = self.next_offset;
        if messages.is_empty() {
            return Ok(first);
        }
        let ts = timestamp_ms.max(self.last_ts);
        let roll = match self.segments.back() {
            Some(s) => !s.is_empty() && s.len >= self.config.max_segment_size,
            None => true,
        };
        if roll {
            self.roll().inspect_err(|_| self.failed = true)?;
        }
        let len = chunk::encode_chunk(
            &mut self.pending,
            first,
            ts,
            messages,
            self.config.filter_size_bytes,
        )?;
        let step = self.config.index_step.max(1);
        let segment = self.segments.back_mut().ok_or_else(failed_error)?;
        segment.add_chunk(segment.len, first, messages.len() as u64, ts, len, step);
        self.next_offset = first + messages.len() as u64;
        self.last_ts = ts;
        if self.pending.len() >= WRITE_BEHIND {
            self.write_pending().inspect_err(|_| self.failed = true)?;
        }
        Ok(first)
    }

    /// Writes the buffered chunks to the active segment (no fsync).
    fn write_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.active.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Closes the active segment and starts one at the next offset.
    fn roll(&mut self) -> io::Result<()> {
        self.write_pending()?;
        let path = segment_path(&self.dir, self.next_offset);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let old = std::mem::replace(&mut self.active, file);
        self.unsynced.push(old);
        self.pending.extend_from_slice(chunk::SEGMENT_MAGIC);
        self.dir_dirty = true;
        self.segments
            .push_back(Segment::new(path, self.next_offset));
        Ok(())
    }

    /// Writes and fsyncs everything appended so far; readers see it after.
    /// A failure is permanent: every later call fails, so nobody is told a
    /// message is safe after the disk failed.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(failed_error());
        }
        let result = self.flush_inner();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn flush_inner(&mut self) -> io::Result<()> {
        let sync = self.begin_sync()?;
        sync.sync()?;
        self.finish_sync(sync);
        Ok(())
    }

    /// The first half of a flush that lets readers go on while the disk
    /// syncs: writes the buffered chunks out and returns what must be
    /// fsynced ([`PendingSync::sync`], without the log's lock), then
    /// [`StreamLog::finish_sync`] makes it readable. A failure here, or of the
    /// sync (report it with [`StreamLog::mark_failed`]), is permanent.
    pub fn begin_sync(&mut self) -> io::Result<PendingSync> {
        if self.failed {
            return Err(failed_error());
        }
        let files = (|| {
            self.write_pending()?;
            let mut files: Vec<File> = self.unsynced.drain(..).collect();
            files.push(self.active.try_clone()?);
            Ok(files)
        })();
        let files = files.inspect_err(|_: &io::Error| self.failed = true)?;
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        Ok(PendingSync {
            files,
            dir,
            next_offset: self.next_offset,
            last_chunk: self.segments.iter().rev().find_map(|s| s.last_chunk),
        })
    }

    /// The second half of a flush: what `sync` covered is durable and readable.
    pub fn finish_sync(&mut self, sync: PendingSync) {
        if self.failed {
            return;
        }
        self.durable_next = self.durable_next.max(sync.next_offset);
        if sync.last_chunk.is_some() {
            self.durable_last_chunk = sync.last_chunk;
        }
    }

    /// A sync failed: every later call fails, readers see nothing more.
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// Whether a write or sync failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The first offset still in the stream; `None` when it holds no message.
    pub fn first_offset(&self) -> Option<u64> {
        let front = self.segments.front()?;
        (self.next_offset > front.first_offset).then_some(front.first_offset)
    }

    /// The last offset appended (buffered included); `None` when empty.
    pub fn last_offset(&self) -> Option<u64> {
        self.first_offset().map(|_| self.next_offset - 1)
    }

    /// The offset the next appended message gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Offsets below this are durable and readable.
    pub fn committed_next_offset(&self) -> u64 {
        self.durable_next
    }

    /// Where `x-stream-offset = last` starts: the first offset of the last
    /// committed chunk (RabbitMQ's "last": a whole chunk, not one message);
    /// `None` when no message is committed.
    pub fn last_chunk_offset(&self) -> Option<u64> {
        let first = self.first_offset()?;
        let last = self.durable_last_chunk?;
        (first < self.durable_next).then_some(last.max(first))
    }

    /// Bytes on disk (and buffered), all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// How many segment files the stream has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// How many sparse index entries memory holds (for tests and metrics).
    pub fn index_entries(&self) -> usize {
        self.segments.iter().map(|s| s.sparse.len()).sum()
    }

    /// Drops whole segments, oldest first, never the active one: while the
    /// stream is over `max_bytes`, and those whose newest chunk is older than
    /// `max_age_ms` at `now_ms`. Returns how many were dropped. Readers
    /// positioned in a dropped segment move on to the new first offset.
    pub fn apply_retention(
        &mut self,
        max_bytes: Option<u64>,
        max_age_ms: Option<u64>,
        now_ms: u64,
    ) -> io::Result<usize> {
        let mut total = self.size_bytes();
        let mut dropped = 0;
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.front() else {
                break;
            };
            let over_size = max_bytes.is_some_and(|max| total > max);
            let too_old = match (max_age_ms, oldest.last_ts) {
                (Some(age), Some(ts)) => ts < now_ms.saturating_sub(age),
                _ => false,
            };
            if !over_size && !too_old {
                break;
            }
            match fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total -= oldest.len;
            self.segments.pop_front();
            dropped += 1;
        }
        Ok(dropped)
    }

    /// The offset to start from for a timestamp (`x-stream-offset` as a
    /// timestamp or an interval): the first offset of the first chunk whose
    /// timestamp is at or after `ts_ms`; the committed end if there is none.
    /// Chunk granularity, as RabbitMQ: a consumer may get messages published
    /// shortly before `ts_ms`.
    pub fn offset_at_timestamp(&self, ts_ms: u64) -> io::Result<u64> {
        let i = self
            .segments
            .partition_point(|s| s.last_ts.is_none_or(|last| last < ts_ms));
        let Some(segment) = self.segments.get(i) else {
            return Ok(self.durable_next);
        };
        let Some(start) = segment.seek_ts(ts_ms) else {
            return Ok(self.durable_next);
        };
        if start.timestamp_ms >= ts_ms {
            return Ok(start.offset.min(self.durable_next));
        }
        let file = File::open(&segment.path)?;
        let (mut pos, mut first) = (start.pos, start.offset);
        while first < segment.next_offset && first < self.durable_next {
            let (header, _) = chunk::read_header_at(&file, pos)?;
            if header.timestamp_ms >= ts_ms {
                return Ok(header.first_offset);
            }
            pos += header.total_len();
            first = header.end_offset();
        }
        Ok(first.min(self.durable_next))
    }
}

//! One queue's messages: its segment files, their summaries in memory, and
//! the reads, writes and removals on them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod recover;
mod segment;

use super::format::{self, Layout, Reader};
use crate::{LiveSummary, Seq};
use segment::Segment;

/// A segment stops taking new records past this size.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// The segment being written is deleted as soon as it is empty once it holds
/// this much (smaller ones are kept, so a queue that is drained message by
/// message does not create and delete a file for every message).
const RECYCLE_BYTES: u64 = 1 << 20;
/// Unwritten bytes a segment buffers before `put` writes them (without fsync),
/// so that memory stays bounded when nobody asks for a flush (paging).
const WRITE_BEHIND: usize = 1 << 20;
/// Unwritten acks entries a segment buffers before they are written.
const ACKS_BEHIND: usize = 64 << 10;
/// Buffered acks are written (not fsynced) once the oldest is this old, so
/// that a crash between flushes brings back few acked messages.
const ACKS_AGE: Duration = Duration::from_millis(200);

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    no: u64,
    file: Arc<File>,
    /// Bytes written to the file.
    written: u64,
    /// Bytes appended but not written yet.
    pending: Vec<u8>,
    /// Written but not fsynced.
    unsynced: bool,
}

/// A reader's next record in a read's merge: smallest seq first, then the
/// newest segment; with the reader's index and the value's length.
type Head = Reverse<(Seq, Reverse<u64>, usize, usize)>;

/// Where the last read stopped, so that the next one goes on from there.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    segment: u64,
    offset: u64,
    /// The seq of the record before `offset`.
    last: Seq,
}

/// What a flush has to make durable for one queue, gathered under its lock.
#[derive(Debug, Default)]
pub struct ToSync {
    /// Segment files to fsync (the one being written).
    pub files: Vec<Arc<File>>,
    /// Segment files to fsync by path (left by the writer: no descriptor is
    /// kept open for them, so that paging gigabytes without a flush does not
    /// hold a descriptor per segment); one deleted since needs none.
    pub paths: Vec<PathBuf>,
    /// Directories to fsync (new files in them).
    pub dirs: Vec<PathBuf>,
    /// Summaries of sealed segments, written once `paths` are fsynced.
    pub summaries: Vec<(PathBuf, Vec<u8>)>,
}

/// One queue's segments.
#[derive(Debug)]
pub struct QueueLog {
    dir: PathBuf,
    /// In file order (segment number).
    segments: Vec<Segment>,
    active: Option<Active>,
    next_no: u64,
    /// Segments written but not yet fsynced, that the writer left.
    unsynced: Vec<u64>,
    /// Files were created or deleted in `dir` since the last flush.
    dir_dirty: bool,
    /// `dir` itself is new (its parent needs an fsync).
    dir_new: bool,
    cursor: Option<Cursor>,
    /// The highest seq of any record ever appended (a put above it is new).
    high: Option<Seq>,
    /// When the oldest ack still buffered was made.
    acks_since: Option<Instant>,
    /// Listed for the next flush.
    pub listed: bool,
    /// Dropped: the flusher leaves it alone.
    pub dropped: bool,
}

fn seg_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016}.seg"))
}

fn acks_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016}.acks"))
}

fn sum_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016}.sum"))
}

/// A removed-file error that is not "already gone" is worth a log line only.
fn remove_file(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "cannot delete a segment file");
    }
}

impl QueueLog {
    /// A queue with no segments yet, in `dir` (created on the first write).
    pub fn new(dir: PathBuf) -> Self {
        QueueLog {
            dir,
            segments: Vec::new(),
            active: None,
            next_no: 1,
            unsynced: Vec::new(),
            dir_dirty: false,
            dir_new: false,
            cursor: None,
            high: None,
            acks_since: None,
            listed: false,
            dropped: false,
        }
    }

    /// Messages that are live.
    pub fn live(&self) -> u64 {
        self.segments.iter().map(|s| s.live).sum()
    }

    /// Bytes on disk (and buffered for it).
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.len + s.acks_len).sum()
    }

    /// The segment holding a live record of `seq`, newest first; reads the
    /// file only for a segment with gaps in its seqs.
    fn find_live(&mut self, seq: Seq) -> io::Result<Option<usize>> {
        if self.high.is_none_or(|high| seq > high) {
            return Ok(None);
        }
        for i in (0..self.segments.len()).rev() {
            let s = &self.segments[i];
            if s.live == 0 || seq < s.min || seq > s.max || s.removed.contains(&seq) {
                continue;
            }
            if s.dense() || self.holds(i, seq)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Whether segment `i` (with gaps) has a record of `seq`.
    fn holds(&mut self, i: usize, seq: Seq) -> io::Result<bool> {
        let mut reader = self.reader(i, self.segments[i].start_for(seq))?;
        while let Some((s, len)) = reader.peek_seq()? {
            if s >= seq {
                return Ok(s == seq);
            }
            reader.skip(len);
        }
        Ok(false)
    }

    /// A reader of segment `i` from `offset`, after writing what it buffers.
    fn reader(&mut self, i: usize, offset: u64) -> io::Result<Reader> {
        let no = self.segments[i].no;
        if let Some(active) = self.active.as_mut().filter(|a| a.no == no) {
            write_pending(active)?;
            return Ok(Reader::new(
                active.file.try_clone()?,
                self.segments[i].layout,
                offset,
                active.written,
            ));
        }
        let path = seg_path(&self.dir, no);
        let file = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Reader::new(
            file,
            self.segments[i].layout,
            offset,
            self.segments[i].len,
        ))
    }

    /// Stores `value` at `seq`, replacing a live record of the same seq.
    pub fn put(&mut self, seq: Seq, value: &[u8]) -> io::Result<()> {
        let old = match self.find_live(seq)? {
            Some(i) => Some(self.segments[i].no),
            None => None,
        };
        let roll = match (&self.active, self.segments.last()) {
            (Some(active), Some(last)) if last.no == active.no => {
                last.len >= SEGMENT_BYTES
                    || (last.records > 0 && seq <= last.max)
                    || !last.layout.holds(seq)
            }
            _ => true,
        };
        if roll {
            self.roll(seq)?;
        }
        let (Some(active), Some(segment)) = (self.active.as_mut(), self.segments.last_mut()) else {
            return Err(io::Error::other("no segment to write to"));
        };
        let offset = segment.len;
        let size = segment
            .layout
            .encode_record(&mut active.pending, seq, value);
        segment.note(
            seq,
            offset,
            size,
            value.len() as u64,
            value.first().copied().unwrap_or(0),
        );
        self.high = self.high.max(Some(seq));
        if old.is_some() || active.pending.len() >= WRITE_BEHIND {
            // A replacement is written out before the old copy goes (its ack
            // may be written, or its segment deleted, at once): a crash of the
            // process in between leaves both, and reads take the newer.
            write_pending(active)?;
        }
        if let Some(i) = old.and_then(|no| self.segments.iter().position(|s| s.no == no)) {
            self.remove_at(i, seq)?;
        }
        Ok(())
    }

    /// Starts a new segment file for writing, its first record `first`.
    fn roll(&mut self, first: Seq) -> io::Result<()> {
        if let Some(mut active) = self.active.take() {
            write_pending(&mut active)?;
            // Sealed: the next flush fsyncs it (nothing to do if it is
            // synced already) and then writes its summary.
            self.unsynced.push(active.no);
            if let Some(i) = self.segments.iter().position(|s| s.no == active.no)
                && self.segments[i].live == 0
            {
                self.delete(i);
            }
        }
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir)?;
            self.dir_new = true;
        }
        let no = self.next_no;
        let layout = Layout::new_file(first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(seg_path(&self.dir, no))?;
        self.next_no += 1;
        self.dir_dirty = true;
        self.active = Some(Active {
            no,
            file: Arc::new(file),
            written: 0,
            pending: layout.file_header(),
            unsynced: false,
        });
        self.segments.push(Segment::new(no, layout));
        Ok(())
    }

    /// Removes live records (absent seqs are skipped).
    pub fn remove(&mut self, seqs: &[Seq]) -> io::Result<()> {
        for &seq in seqs {
            if let Some(i) = self.find_live(seq)? {
                self.remove_at(i, seq)?;
            }
        }
        match self.acks_since {
            None => self.acks_since = Some(Instant::now()),
            Some(since) if since.elapsed() >= ACKS_AGE => {
                for i in 0..self.segments.len() {
                    self.write_acks(i, false)?;
                }
                self.acks_since = None;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Removes the live record of `seq` in segment `i`.
    fn remove_at(&mut self, i: usize, seq: Seq) -> io::Result<()> {
        let segment = &mut self.segments[i];
        segment.live -= 1;
        let is_active = self.active.as_ref().is_some_and(|a| a.no == segment.no);
        if segment.live == 0 && (!is_active || segment.len >= RECYCLE_BYTES) {
            if is_active {
                self.active = None;
            }
            self.delete(i);
            return Ok(());
        }
        segment.removed.insert(seq);
        format::encode_ack(&mut segment.acks_pending, seq);
        if segment.acks_pending.len() >= ACKS_BEHIND {
            self.write_acks(i, false)?;
        }
        Ok(())
    }

    /// Deletes segment `i` and its acks (nothing in it is live).
    fn delete(&mut self, i: usize) {
        let segment = self.segments.remove(i);
        remove_file(&seg_path(&self.dir, segment.no));
        remove_file(&acks_path(&self.dir, segment.no));
        remove_file(&sum_path(&self.dir, segment.no));
        self.dir_dirty = true;
        if self.cursor.is_some_and(|c| c.segment == segment.no) {
            self.cursor = None;
        }
    }

    /// Appends segment `i`'s buffered acks to its acks file.
    fn write_acks(&mut self, i: usize, sync: bool) -> io::Result<()> {
        let segment = &mut self.segments[i];
        if segment.acks_pending.is_empty() {
            return Ok(());
        }
        let path = acks_path(&self.dir, segment.no);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if segment.acks_len == 0 {
            self.dir_dirty = true;
        }
        file.write_all(&segment.acks_pending)?;
        if sync {
            file.sync_data()?;
        }
        segment.acks_len += segment.acks_pending.len() as u64;
        segment.acks_pending.clear();
        Ok(())
    }

    /// Up to `limit` live records with `seq >= from`, in seq order.
    pub fn read(&mut self, from: Seq, limit: usize) -> io::Result<Vec<(Seq, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut order: Vec<usize> = (0..self.segments.len())
            .filter(|&i| self.segments[i].live > 0 && self.segments[i].max >= from)
            .collect();
        // By first seq; segments overlap only after re-puts, so this is
        // usually a walk through the files one after the other.
        order.sort_by_key(|&i| (self.segments[i].min, self.segments[i].no));
        let mut readers: Vec<(usize, Reader)> = Vec::new();
        let mut heap: BinaryHeap<Head> = BinaryHeap::new();
        let mut next = 0;
        let mut last_out: Option<(Seq, usize)> = None;
        loop {
            while next < order.len()
                && heap
                    .peek()
                    .is_none_or(|Reverse((seq, ..))| self.segments[order[next]].min <= *seq)
            {
                let i = order[next];
                next += 1;
                let mut start = self.segments[i].start_for(from);
                if let Some(c) = self.cursor
                    && c.segment == self.segments[i].no
                    && c.last < from
                {
                    start = start.max(c.offset);
                }
                let mut reader = self.reader(i, start)?;
                if let Some((seq, len)) = self.advance(i, &mut reader, from)? {
                    heap.push(Reverse((
                        seq,
                        Reverse(self.segments[i].no),
                        readers.len(),
                        len,
                    )));
                    readers.push((i, reader));
                }
            }
            let Some(Reverse((seq, _, r, len))) = heap.pop() else {
                break;
            };
            let (i, reader) = &mut readers[r];
            let i = *i;
            if last_out.is_some_and(|(s, _)| s == seq) {
                // An older copy of a record that was put again.
                reader.skip(len);
            } else {
                if out.len() == limit {
                    break;
                }
                match reader.take(seq, len) {
                    Ok(value) => {
                        out.push((seq, value));
                        last_out = Some((seq, r));
                    }
                    Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                        // Changed on disk since it was checked at open.
                        tracing::error!(%error, dir = %self.dir.display(), "skipping a damaged record");
                        reader.skip(len);
                    }
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        tracing::error!(%error, dir = %self.dir.display(), "a segment ends early");
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            if let Some((seq, len)) = self.advance(i, &mut readers[r].1, from)? {
                heap.push(Reverse((seq, Reverse(self.segments[i].no), r, len)));
            }
        }
        if let Some((seq, r)) = last_out {
            let (i, reader) = &readers[r];
            self.cursor = Some(Cursor {
                segment: self.segments[*i].no,
                offset: reader.offset,
                last: seq,
            });
        }
        Ok(out)
    }

    /// Moves `reader` to segment `i`'s next live record with a seq >= `from`.
    fn advance(
        &self,
        i: usize,
        reader: &mut Reader,
        from: Seq,
    ) -> io::Result<Option<(Seq, usize)>> {
        let segment = &self.segments[i];
        while let Some((seq, len)) = reader.peek_seq()? {
            if seq > segment.max {
                // Past what the summary knows of: not ours (a torn write).
                return Ok(None);
            }
            if seq >= from && !segment.removed.contains(&seq) {
                return Ok(Some((seq, len)));
            }
            reader.skip(len);
        }
        Ok(None)
    }

    /// Writes what is buffered and hands over what needs an fsync.
    pub fn prepare_flush(&mut self, sync_acks: bool) -> io::Result<ToSync> {
        let mut to_sync = ToSync::default();
        if let Some(active) = self.active.as_mut() {
            write_pending(active)?;
            if active.unsynced {
                to_sync.files.push(active.file.clone());
                active.unsynced = false;
            }
        }
        for no in std::mem::take(&mut self.unsynced) {
            to_sync.paths.push(seg_path(&self.dir, no));
            if let Some(segment) = self.segments.iter().find(|s| s.no == no && s.records > 0) {
                let summary = segment.summary().encode();
                to_sync.summaries.push((sum_path(&self.dir, no), summary));
            }
        }
        for i in 0..self.segments.len() {
            self.write_acks(i, sync_acks)?;
        }
        self.acks_since = None;
        if self.dir_dirty {
            to_sync.dirs.push(self.dir.clone());
            self.dir_dirty = false;
        }
        if self.dir_new
            && let Some(parent) = self.dir.parent()
        {
            to_sync.dirs.push(parent.to_path_buf());
            self.dir_new = false;
        }
        Ok(to_sync)
    }

    /// What the segments' summaries say of the live records from `from` on,
    /// without reading them; `None` if that needs a read (a segment with gaps
    /// across `from`, or segments whose ranges overlap after a put again).
    pub fn live_summary(&self, from: Seq) -> Option<LiveSummary> {
        let mut out = LiveSummary {
            count: 0,
            value_bytes: 0,
            first_or: 0,
            first_and: u8::MAX,
            next_seq: self.high.map_or(0, |h| h + 1),
        };
        let mut last_max: Option<Seq> = None;
        for s in self.segments.iter().filter(|s| s.live > 0 && s.max >= from) {
            if last_max.is_some_and(|m| s.min <= m) {
                return None;
            }
            last_max = Some(s.max);
            let live = s.live_from(from)?;
            out.count += live;
            // Removed records' sizes are not known: a share of the total.
            out.value_bytes += (u128::from(s.value_bytes) * u128::from(live)
                / u128::from(s.records.max(1))) as u64;
            out.first_or |= s.first_or;
            out.first_and &= s.first_and;
        }
        Some(out)
    }

    /// Forgets everything (the directory is deleted by the caller).
    pub fn clear(&mut self) {
        self.segments.clear();
        self.active = None;
        self.unsynced.clear();
        self.cursor = None;
        self.dropped = true;
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes the active segment's buffered bytes (one write, no fsync).
fn write_pending(active: &mut Active) -> io::Result<()> {
    if active.pending.is_empty() {
        return Ok(());
    }
    active.file.write_all_at(&active.pending, active.written)?;
    active.written += active.pending.len() as u64;
    active.pending.clear();
    active.unsynced = true;
    Ok(())
}

//! One write-ahead log per node, shared by every Raft group: one fsync per batch for all.
//!
//! Ra's design (docs/cluster-design.md section 2): each group's appends, votes and purges are
//! records in the same files `<dir>/<20-digit seq>.wal`, so a node with a thousand groups
//! still pays one `fdatasync` per batch. An append is encoded into a pending buffer and indexed
//! at once (openraft reads what it appended before it is durable); its `IOFlushed` callback
//! waits in a list. The node's own [`GroupCommit`] thread (`warren-raft-wal`) flushes: it
//! writes the buffer, syncs once, then completes every callback of the batch. A failed write
//! or sync fails every waiting callback and the WAL for good: nobody hears "durable" after a
//! failed fsync. Votes, truncations and purges wait for their flush.
//!
//! Each new file starts with a checkpoint of every group's vote, committed id and purge point,
//! so a file can be deleted once every group's purge point passed the entries it holds
//! (files go oldest first). Open replays every file and cuts a torn tail of the last one.
//! - `record.rs`: the file format. - `state.rs`: per-group and per-file memory.
//! - `scan.rs`: reading a WAL directory read-only ([`scan`]), which replay shares.
//! - `check.rs`: Raft's Log Matching checked across nodes' scans (the fault test's checker).
//! - `tests.rs`: the unit tests.

pub mod check;
mod record;
mod scan;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use warren_storage::{CommitRequester, Durable, FlushHook, GroupCommit, StorageError};

use self::record::{Body, MAGIC, RecordError};
use self::state::{FileInfo, GroupState, Loc};
use crate::types::{Entry, GroupId, LogId, Vote, Wr};

pub use self::scan::{GroupLog, Tear, WalScan, scan};

/// The default size past which a new WAL file is started.
pub const FILE_LIMIT: u64 = 64 << 20;

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("WAL {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file other than the last is damaged (not a torn tail): refuse to guess.
    #[error("WAL {path} is damaged at offset {offset}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where its readable part ends.
        offset: u64,
    },
    /// A record could not be encoded or decoded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A flush failed earlier; nothing is durable any more.
    #[error("WAL failed: {0}")]
    Failed(String),
    /// An indexed entry was not where the index said.
    #[error("WAL entry {index} of group {group} is missing")]
    Missing {
        /// The group.
        group: GroupId,
        /// The index.
        index: u64,
    },
}

impl From<WalError> for io::Error {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes waiting to be written to one file.
#[derive(Debug)]
struct Chunk {
    seq: u64,
    /// Where `bytes` starts in the file.
    base: u64,
    bytes: Vec<u8>,
}

/// The WAL's memory, under one lock.
#[derive(Default)]
struct State {
    groups: HashMap<GroupId, GroupState>,
    files: BTreeMap<u64, FileInfo>,
    /// The file being written and its logical end (pending bytes included).
    current: u64,
    end: u64,
    pending: Vec<Chunk>,
    callbacks: Vec<IOFlushed<Wr>>,
    writer: Option<(u64, Arc<File>)>,
    readers: HashMap<u64, File>,
    failed: Option<String>,
}

/// What the flusher thread flushes.
struct Inner {
    dir: PathBuf,
    file_limit: u64,
    state: Mutex<State>,
    syncs: AtomicU64,
}

/// The node's write-ahead log; [`crate::wal_log::WalLog`] is a group's view of it.
pub struct Wal {
    inner: Arc<Inner>,
    requester: CommitRequester,
    commit: GroupCommit,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.inner.dir).finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wal {
    /// Opens (or creates) the WAL in `dir` with the default file size limit.
    pub fn open(dir: &Path) -> Result<Self, WalError> {
        Self::open_with_limit(dir, FILE_LIMIT)
    }

    /// Opens the WAL in `dir`, starting a new file past `file_limit` bytes.
    pub fn open_with_limit(dir: &Path, file_limit: u64) -> Result<Self, WalError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut state = replay(dir)?;
        let next = state.files.keys().next_back().map_or(1, |s| s + 1);
        start_file(&mut state, next);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            file_limit,
            state: Mutex::new(state),
            syncs: AtomicU64::new(0),
        });
        let commit = GroupCommit::start_named(inner.clone(), "warren-raft-wal");
        Ok(Self {
            requester: commit.requester(),
            inner,
            commit,
        })
    }

    /// How many batches were synced since open (one `fdatasync` round each).
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::SeqCst)
    }

    /// Adds a hook the flusher runs before each flush (tests hold a batch open with it).
    pub fn add_flush_hook(&self, hook: Weak<dyn FlushHook>) {
        self.commit.add_hook(hook);
    }

    /// The groups that have any state in the WAL.
    pub fn groups(&self) -> Vec<GroupId> {
        self.inner.lock().groups.keys().copied().collect()
    }

    /// A group's last purged and last log id.
    pub fn log_state(&self, group: GroupId) -> (Option<LogId>, Option<LogId>) {
        let state = self.inner.lock();
        state
            .groups
            .get(&group)
            .map_or((None, None), |g| (g.purged, g.last_log_id()))
    }

    /// A group's saved vote.
    pub fn vote(&self, group: GroupId) -> Option<Vote> {
        self.inner.lock().groups.get(&group).and_then(|g| g.vote)
    }

    /// A group's saved committed id.
    pub fn committed(&self, group: GroupId) -> Option<LogId> {
        self.inner
            .lock()
            .groups
            .get(&group)
            .and_then(|g| g.committed)
    }

    /// A group's entries in `range` (readable as soon as appended).
    pub fn entries<R: RangeBounds<u64>>(
        &self,
        group: GroupId,
        range: R,
    ) -> Result<Vec<Entry>, WalError> {
        let mut state = self.inner.lock();
        let locs: Vec<(u64, Loc)> = match state.groups.get(&group) {
            None => return Ok(Vec::new()),
            Some(g) => g.entries.range(range).map(|(i, l)| (*i, *l)).collect(),
        };
        let mut out = Vec::with_capacity(locs.len());
        for (index, loc) in locs {
            let cached = state
                .groups
                .get(&group)
                .and_then(|g| g.cache.get(&index).cloned());
            let entry = match cached {
                Some(entry) => entry,
                None => read_entry(&mut state, &self.inner.dir, group, index, loc)?,
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// Appends entries; `callback` is completed once they are durable (or the WAL failed).
    pub fn append<I: IntoIterator<Item = Entry>>(
        &self,
        group: GroupId,
        entries: I,
        callback: IOFlushed<Wr>,
    ) -> Result<(), WalError> {
        {
            let mut state = self.inner.lock();
            if let Some(why) = &state.failed {
                return Err(WalError::Failed(why.clone()));
            }
            for entry in entries {
                push(&mut state, self.inner.file_limit, group, Body::Entry(entry))?;
            }
            state.callbacks.push(callback);
        }
        self.requester.request();
        Ok(())
    }

    /// Saves a vote and waits until it is durable.
    pub async fn save_vote(&self, group: GroupId, vote: Vote) -> Result<(), WalError> {
        self.write_and_wait(group, Body::Vote(vote)).await
    }

    /// Records the committed id; durable with the next batch (openraft treats it as a hint).
    pub fn save_committed(&self, group: GroupId, committed: Option<LogId>) -> Result<(), WalError> {
        let mut state = self.inner.lock();
        if let Some(why) = &state.failed {
            return Err(WalError::Failed(why.clone()));
        }
        push(
            &mut state,
            self.inner.file_limit,
            group,
            Body::Committed(committed),
        )
    }

    /// Drops every entry after `last` and waits until that is durable.
    pub async fn truncate_after(
        &self,
        group: GroupId,
        last: Option<LogId>,
    ) -> Result<(), WalError> {
        self.write_and_wait(group, Body::TruncateAfter(last)).await
    }

    /// Drops every entry up to `upto`, waits until that is durable, then deletes the files no
    /// group needs any more.
    pub async fn purge(&self, group: GroupId, upto: LogId) -> Result<(), WalError> {
        self.write_and_wait(group, Body::Purge(upto)).await?;
        self.reclaim()
    }

    /// The WAL files on disk now, oldest first (for tests and status).
    pub fn files(&self) -> Vec<u64> {
        self.inner.lock().files.keys().copied().collect()
    }

    async fn write_and_wait(&self, group: GroupId, body: Body) -> Result<(), WalError> {
        {
            let mut state = self.inner.lock();
            if let Some(why) = &state.failed {
                return Err(WalError::Failed(why.clone()));
            }
            push(&mut state, self.inner.file_limit, group, body)?;
        }
        let generation = self.requester.request();
        self.commit
            .wait(generation)
            .await
            .map_err(|e| WalError::Failed(e.to_string()))
    }

    /// Deletes the oldest files whose entries every group has purged.
    fn reclaim(&self) -> Result<(), WalError> {
        let mut state = self.inner.lock();
        let current = state.current;
        let doomed: Vec<u64> = state
            .files
            .iter()
            .take_while(|(seq, info)| **seq < current && info.reclaimable(&state.groups))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in doomed {
            let path = record::file_path(&self.inner.dir, seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
            state.files.remove(&seq);
            state.readers.remove(&seq);
            tracing::debug!(file = %path.display(), "WAL file reclaimed");
        }
        Ok(())
    }
}

/// Starts file `seq` in memory: its header and a checkpoint of every group.
fn start_file(state: &mut State, seq: u64) {
    let mut bytes = MAGIC.to_vec();
    let mut groups: Vec<_> = state.groups.iter().collect();
    groups.sort_by_key(|(g, _)| **g);
    for (group, g) in groups {
        for body in g.checkpoint() {
            // A checkpoint body always encodes (no payload of ours in it).
            if let Err(error) = record::encode(&mut bytes, *group, &body) {
                tracing::error!(%error, group, "WAL checkpoint record not written");
            }
        }
    }
    state.current = seq;
    state.end = bytes.len() as u64;
    state.files.insert(seq, FileInfo::default());
    state.pending.push(Chunk {
        seq,
        base: 0,
        bytes,
    });
}

/// Encodes `body` into the pending buffer and applies it to the group's memory.
fn push(state: &mut State, limit: u64, group: GroupId, body: Body) -> Result<(), WalError> {
    let mut bytes = Vec::new();
    record::encode(&mut bytes, group, &body)?;
    if state.end + bytes.len() as u64 > limit && state.end > MAGIC.len() as u64 {
        let next = state.current + 1;
        start_file(state, next);
    }
    let (seq, offset) = (state.current, state.end);
    match state.pending.last_mut() {
        Some(chunk) if chunk.seq == seq => chunk.bytes.extend_from_slice(&bytes),
        _ => state.pending.push(Chunk {
            seq,
            base: offset,
            bytes: bytes.clone(),
        }),
    }
    state.end += bytes.len() as u64;
    if let Body::Entry(entry) = &body
        && let Some(info) = state.files.get_mut(&seq)
    {
        info.note(group, entry.index());
    }
    let g = state.groups.entry(group).or_default();
    g.apply(&body, seq, offset, bytes.len() as u32);
    if let Body::Entry(entry) = body {
        g.remember(entry);
    }
    Ok(())
}

/// Reads an entry that is not cached: from the pending buffer or from its file.
fn read_entry(
    state: &mut State,
    dir: &Path,
    group: GroupId,
    index: u64,
    loc: Loc,
) -> Result<Entry, WalError> {
    let pending = state.pending.iter().find_map(|c| {
        let start = loc.offset.checked_sub(c.base)? as usize;
        (c.seq == loc.seq)
            .then(|| c.bytes.get(start..start + loc.len as usize))
            .flatten()
            .map(<[u8]>::to_vec)
    });
    let bytes = match pending {
        Some(bytes) => bytes,
        None => {
            let path = record::file_path(dir, loc.seq);
            let file = match state.readers.entry(loc.seq) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(File::open(&path).map_err(io_at(&path))?)
                }
            };
            let mut buf = vec![0; loc.len as usize];
            file.read_exact_at(&mut buf, loc.offset)
                .map_err(io_at(&path))?;
            buf
        }
    };
    match record::decode_one(&bytes)? {
        (g, Body::Entry(entry)) if g == group && entry.index() == index => Ok(entry),
        _ => Err(WalError::Missing { group, index }),
    }
}

/// Replays every file of `dir` into memory; cuts a torn tail of the last one.
fn replay(dir: &Path) -> Result<State, WalError> {
    let seqs = scan::list(dir)?;
    let mut state = State::default();
    for (i, seq) in seqs.iter().copied().enumerate() {
        let read = scan::read_file(dir, seq, i + 1 == seqs.len())?;
        let path = &read.path;
        if read.torn() {
            tracing::warn!(
                file = %path.display(),
                kept = read.scanned.good_len,
                dropped = read.size - read.scanned.good_len,
                "WAL tail torn or damaged; cut"
            );
            if read.scanned.bad_header {
                std::fs::remove_file(path).map_err(io_at(path))?;
                sync_dir(dir)?;
                continue;
            }
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_at(path))?;
            file.set_len(read.scanned.good_len).map_err(io_at(path))?;
            file.sync_all().map_err(io_at(path))?;
        }
        let mut info = FileInfo::default();
        for found in read.scanned.records {
            if let Body::Entry(entry) = &found.body {
                info.note(found.group, entry.index());
            }
            state.groups.entry(found.group).or_default().apply(
                &found.body,
                seq,
                found.offset,
                found.len,
            );
        }
        state.files.insert(seq, info);
    }
    Ok(state)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// What one flush hands back: the callbacks of its batch and how the flush went.
type Batch = (Vec<IOFlushed<Wr>>, Result<(), WalError>);

impl Inner {
    /// Writes the pending chunks (under the lock, so readers find bytes in memory or in the
    /// file), syncs the files written, and returns the callbacks of this batch.
    fn flush_batch(&self) -> Batch {
        let mut state = self.lock();
        if let Some(why) = &state.failed {
            return (Vec::new(), Err(WalError::Failed(why.clone())));
        }
        let chunks = std::mem::take(&mut state.pending);
        let callbacks = std::mem::take(&mut state.callbacks);
        if chunks.is_empty() && callbacks.is_empty() {
            return (callbacks, Ok(()));
        }
        let written = self.write_chunks(&mut state, chunks);
        drop(state);
        let synced = written.and_then(|(files, new_file)| {
            for file in &files {
                file.sync_data().map_err(io_at(&self.dir))?;
            }
            if new_file {
                sync_dir(&self.dir)?;
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        (callbacks, synced)
    }

    /// Writes `chunks`; returns the files to sync and whether a file was created.
    fn write_chunks(
        &self,
        state: &mut State,
        chunks: Vec<Chunk>,
    ) -> Result<(Vec<Arc<File>>, bool), WalError> {
        let mut to_sync: Vec<Arc<File>> = Vec::new();
        let mut new_file = false;
        for chunk in chunks {
            let path = record::file_path(&self.dir, chunk.seq);
            let file = match &state.writer {
                Some((seq, file)) if *seq == chunk.seq => file.clone(),
                previous => {
                    if let Some((_, old)) = previous {
                        // The old file is durable before the next one holds anything.
                        old.sync_data().map_err(io_at(&path))?;
                    }
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(io_at(&path))?;
                    new_file = true;
                    let file = Arc::new(file);
                    state.writer = Some((chunk.seq, file.clone()));
                    to_sync.clear();
                    file
                }
            };
            (&*file).write_all(&chunk.bytes).map_err(io_at(&path))?;
            if !to_sync.iter().any(|f| Arc::ptr_eq(f, &file)) {
                to_sync.push(file);
            }
        }
        Ok((to_sync, new_file))
    }
}

impl Durable for Inner {
    fn flush(&self) -> Result<(), StorageError> {
        let (mut callbacks, result) = self.flush_batch();
        match result {
            Ok(()) => {
                for cb in callbacks {
                    cb.io_completed(Ok(()));
                }
                Ok(())
            }
            Err(error) => {
                let why = error.to_string();
                tracing::error!(error = %why, "WAL flush failed; the WAL refuses every later write");
                {
                    let mut state = self.lock();
                    state.failed = Some(why.clone());
                    callbacks.append(&mut state.callbacks);
                }
                for cb in callbacks {
                    cb.io_completed(Err(io::Error::other(why.clone())));
                }
                Err(StorageError::Engine(why))
            }
        }
    }
}

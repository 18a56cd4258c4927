//! The segment log: queue messages in append-only files, the default message
//! engine (sled's copy-on-write B-tree spent more CPU than the broker).
//!
//! On disk, under `<dir>/messages/`:
//!
//! ```text
//! <queue id>/<segment no>.seg    "WRNSEG01", then records [u32 len][u64 seq][u32 crc][value]
//! <queue id>/<segment no>.acks   removed seqs: [u64 seq][u32 crc of the seq] each
//! <queue id>/<segment no>.sum    a sealed segment's summary (`summary.rs`)
//! ```
//!
//! All integers are little-endian; a record's crc32 covers its length, seq
//! and value. Segment numbers grow with time and are never reused within a
//! queue's directory; within a segment, seqs strictly increase. A put of a seq
//! that is not above the segment's last one (a re-put, or a seq used again
//! after a restart) starts a new segment; a re-put also removes the older
//! record (an ack in its segment). If a crash leaves two live records of a
//! seq, the one in the newer segment wins.
//!
//! Memory holds per segment its seq range, counts, a sparse index (one entry
//! per 64 KiB) and, while a segment is partly removed, the set of its removed
//! seqs; never an entry per live message. Writes go to a buffer that
//! [`SegmentLog::flush`] writes (one write per segment) and fsyncs; acks are
//! written at every flush or once the oldest buffered one is 200 ms old, and
//! fsynced about once a second (a lost ack only brings an acked message
//! back). A segment whose records are all removed is deleted with its acks.
//! At open every record of a segment without a sound summary is checked: a
//! torn or damaged tail is cut off (and the summary written); acks are
//! applied, and fully removed segments are deleted.

mod format;
mod queue;
mod summary;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::{LiveSummary, QueueId, Seq, StorageError};
use queue::QueueLog;

/// Acks files are fsynced at most this often.
const ACKS_SYNC_EVERY: Duration = Duration::from_secs(1);

fn engine(context: &str, error: io::Error) -> StorageError {
    StorageError::Engine(format!("segment log: {context}: {error}"))
}

/// Queue messages in per-queue segment files (see the module doc).
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    queues: RwLock<HashMap<QueueId, Arc<Mutex<QueueLog>>, foldhash::fast::RandomState>>,
    /// Queues written since the last flush.
    dirty: Mutex<Vec<QueueId>>,
    /// One flush at a time: a flush must not return while an earlier one is
    /// still fsyncing what it took.
    flushing: Mutex<Instant>,
}

impl SegmentLog {
    /// Opens (creating it if needed) the log in `dir`, checking every segment.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        fs::create_dir_all(dir).map_err(|e| engine("cannot create the directory", e))?;
        let mut queues = HashMap::default();
        let entries = fs::read_dir(dir).map_err(|e| engine("cannot list the directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| engine("cannot list the directory", e))?;
            let path = entry.path();
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<QueueId>().ok())
            else {
                tracing::warn!(path = %path.display(), "ignoring a stray entry");
                continue;
            };
            match QueueLog::recover(path.clone()) {
                Ok(log) if log.live() == 0 => {
                    if let Err(error) = fs::remove_dir_all(&path) {
                        tracing::warn!(%error, path = %path.display(), "cannot delete an empty queue");
                    }
                }
                Ok(log) => {
                    queues.insert(id, Arc::new(Mutex::new(log)));
                }
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "skipping an unreadable queue");
                }
            }
        }
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            queues: RwLock::new(queues),
            dirty: Mutex::new(Vec::new()),
            flushing: Mutex::new(Instant::now()),
        })
    }

    fn queue(&self, id: QueueId) -> Option<Arc<Mutex<QueueLog>>> {
        self.queues.read().get(&id).cloned()
    }

    fn queue_or_new(&self, id: QueueId) -> Arc<Mutex<QueueLog>> {
        if let Some(queue) = self.queue(id) {
            return queue;
        }
        self.queues
            .write()
            .entry(id)
            .or_insert_with(|| Arc::new(Mutex::new(QueueLog::new(self.dir.join(id.to_string())))))
            .clone()
    }

    /// Lists a queue for the next flush (called under the queue's lock).
    fn list(&self, id: QueueId, log: &mut QueueLog) {
        if !log.listed {
            log.listed = true;
            self.dirty.lock().push(id);
        }
    }

    /// Stores a message; replaces a live one of the same seq.
    pub fn put_message(&self, queue: QueueId, seq: Seq, value: &[u8]) -> Result<(), StorageError> {
        let log = self.queue_or_new(queue);
        let mut log = log.lock();
        self.list(queue, &mut log);
        log.put(seq, value)
            .map_err(|e| engine("cannot write a message", e))
    }

    /// Removes messages (absent seqs are skipped).
    pub fn remove_messages(&self, queue: QueueId, seqs: &[Seq]) -> Result<(), StorageError> {
        let Some(log) = self.queue(queue) else {
            return Ok(());
        };
        let mut log = log.lock();
        self.list(queue, &mut log);
        log.remove(seqs)
            .map_err(|e| engine("cannot remove messages", e))
    }

    /// Up to `limit` live messages with `seq >= from`, in seq order.
    pub fn messages(
        &self,
        queue: QueueId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, StorageError> {
        let Some(log) = self.queue(queue) else {
            return Ok(Vec::new());
        };
        let mut log = log.lock();
        // A read may write buffered bytes out: the flush must fsync them.
        self.list(queue, &mut log);
        log.read(from, limit)
            .map_err(|e| engine("cannot read messages", e))
    }

    /// A queue's live messages from `from` on, from the segments' summaries
    /// (see [`crate::Store::live_summary`]).
    pub fn live_summary(&self, queue: QueueId, from: Seq) -> Option<LiveSummary> {
        match self.queue(queue) {
            Some(log) => log.lock().live_summary(from),
            None => Some(LiveSummary {
                count: 0,
                value_bytes: 0,
                first_or: 0,
                first_and: u8::MAX,
                next_seq: 0,
            }),
        }
    }

    /// The queues with live messages, in id order.
    pub fn queue_ids(&self) -> Vec<QueueId> {
        let queues: Vec<_> = self
            .queues
            .read()
            .iter()
            .map(|(id, log)| (*id, log.clone()))
            .collect();
        let mut ids: Vec<QueueId> = queues
            .into_iter()
            .filter(|(_, log)| log.lock().live() > 0)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Deletes a queue's messages and directory.
    pub fn drop_queue(&self, queue: QueueId) -> Result<(), StorageError> {
        let log = self.queues.write().remove(&queue);
        let dir = match log {
            Some(log) => {
                let mut log = log.lock();
                log.clear();
                log.dir().to_path_buf()
            }
            None => self.dir.join(queue.to_string()),
        };
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(engine("cannot delete a queue", e)),
        }
    }

    /// Writes and fsyncs everything written before the call.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut last_acks_sync = self.flushing.lock();
        let sync_acks = last_acks_sync.elapsed() >= ACKS_SYNC_EVERY;
        let ids = std::mem::take(&mut *self.dirty.lock());
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut paths = Vec::new();
        let mut summaries = Vec::new();
        let mut failed = None;
        for id in ids {
            let Some(log) = self.queue(id) else {
                continue;
            };
            let mut log = log.lock();
            log.listed = false;
            if log.dropped {
                continue;
            }
            match log.prepare_flush(sync_acks) {
                Ok(mut to_sync) => {
                    files.append(&mut to_sync.files);
                    paths.append(&mut to_sync.paths);
                    dirs.append(&mut to_sync.dirs);
                    summaries.append(&mut to_sync.summaries);
                }
                Err(error) => {
                    // Listed again, so that the next flush retries; the
                    // other queues are still flushed.
                    self.list(id, &mut log);
                    failed.get_or_insert(engine("cannot write", error));
                }
            }
        }
        // Outside the queues' locks: puts go on while the disk works.
        for file in files {
            file.sync_data()
                .map_err(|e| engine("cannot fsync a segment", e))?;
        }
        for path in paths {
            // fsync through a new descriptor flushes what the old one wrote.
            match File::open(&path).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                // Emptied and deleted since: nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(engine("cannot fsync a segment", e)),
            }
        }
        // Only now are the sealed segments durable: their summaries may say
        // so. A lost or torn summary only means a scan at the next open.
        for (path, bytes) in summaries {
            if let Err(error) = fs::write(&path, bytes)
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(%error, path = %path.display(), "cannot write a segment summary");
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            match File::open(&dir).and_then(|d| d.sync_all()) {
                Ok(()) => {}
                // Deleted since (a dropped queue): nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(engine("cannot fsync a directory", e)),
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        if sync_acks {
            *last_acks_sync = Instant::now();
        }
        Ok(())
    }

    /// Bytes of segment and acks files (and buffered for them).
    pub fn size_on_disk(&self) -> u64 {
        let queues: Vec<_> = self.queues.read().values().cloned().collect();
        queues.iter().map(|log| log.lock().size()).sum()
    }
}

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod tests;

//! An in-memory Raft log, for tests and step 1 only.
//!
//! Step 2 replaces it with the shared per-node WAL (one fsync per batch for every group,
//! docs/cluster-design.md section 2). Nothing here survives a restart: a node that uses it
//! must never claim durability. It completes `IOFlushed` at once, which is exactly the
//! contract a real log must only honour after its fsync.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use tokio::sync::Mutex;

use crate::types::{Entry, LogId, Vote, Wr};

/// An in-memory log store; clones share the same log (the reader is a clone).
#[derive(Debug, Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    last_purged: Option<LogId>,
    log: BTreeMap<u64, Entry>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries held (after purges), for tests.
    pub async fn len(&self) -> usize {
        self.inner.lock().await.log.len()
    }

    /// Whether the log holds no entries.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

impl RaftLogReader<Wr> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.lock().await.vote)
    }
}

impl RaftLogStorage<Wr> for MemLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Wr>, io::Error> {
        let inner = self.inner.lock().await;
        let last = inner.log.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.lock().await.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner.lock().await.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Wr>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        for entry in entries {
            inner.log.insert(entry.index(), entry);
        }
        drop(inner);
        // Memory is "durable" at once; the WAL of step 2 calls this after its fsync.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let start = last_log_id.map_or(0, |id| id.index() + 1);
        let mut inner = self.inner.lock().await;
        let _ = inner.log.split_off(&start);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        if inner.last_purged.as_ref() > Some(&log_id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "purge({log_id}) behind the last purged {:?}",
                    inner.last_purged
                ),
            ));
        }
        let keep = inner.log.split_off(&(log_id.index() + 1));
        inner.log = keep;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

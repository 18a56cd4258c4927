//! A group's view of the node's shared [`Wal`]: openraft's `RaftLogStorage` and
//! `RaftLogReader` for one group id.
//!
//! Handles are cheap clones of an `Arc<Wal>`; the reader openraft asks for is another clone.
//! `append` returns once the entries are indexed (readable) and hands its `IOFlushed` to the
//! WAL, which completes it after the batch's fsync; votes and truncations wait for theirs.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use crate::types::{Entry, GroupId, LogId, Vote, Wr};
use crate::wal::Wal;

/// One group's log in the node's WAL.
#[derive(Debug, Clone)]
pub struct WalLog {
    wal: Arc<Wal>,
    group: GroupId,
}

impl WalLog {
    /// The log of `group` in `wal`.
    pub fn new(wal: Arc<Wal>, group: GroupId) -> Self {
        Self { wal, group }
    }

    /// The group this log belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }
}

impl RaftLogReader<Wr> for WalLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.wal.entries(self.group, range)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.wal.vote(self.group))
    }
}

impl RaftLogStorage<Wr> for WalLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Wr>, io::Error> {
        let (last_purged_log_id, last_log_id) = self.wal.log_state(self.group);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        Ok(self.wal.save_vote(self.group, *vote).await?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.wal.save_committed(self.group, committed)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.wal.committed(self.group))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Wr>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        Ok(self.wal.append(self.group, entries, callback)?)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.wal.truncate_after(self.group, last_log_id).await?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        Ok(self.wal.purge(self.group, log_id).await?)
    }
}

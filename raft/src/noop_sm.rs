//! A state machine that only counts, so step 1 can test the engine and transport alone.
//!
//! It counts applied application commands and keeps the last applied log id and membership;
//! its snapshot is that counter (postcard), which is enough to exercise snapshot build,
//! transfer and install. Each command is answered with the new count (8 bytes, big endian).
//! With a [`SnapshotStore`] its snapshots are saved on disk and restored at open, so a
//! restarted node resumes from its last snapshot and replays the log after it. With a
//! [`Machine`] plugged in (step 3, the metadata group), application commands go to it, its
//! answer is the reply, and its state rides in the snapshot.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::machine::Machine;
use crate::snapshot::SnapshotStore;
use crate::types::{LogId, Reply, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, Wr};

/// The counting state machine; clones share the same state.
#[derive(Clone, Default)]
pub struct NoopSm {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    applied: u64,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The current snapshot; its data only without a store (with one, the data is read
    /// back from disk when asked for: a quorum queue's snapshot holds its bodies, which
    /// must not stay in memory).
    snapshot: Option<(SnapshotMeta, Option<SnapshotData>)>,
    store: Option<SnapshotStore>,
    machine: Option<Arc<dyn Machine>>,
}

impl std::fmt::Debug for NoopSm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoopSm").finish_non_exhaustive()
    }
}

/// What a snapshot of [`NoopSm`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    applied: u64,
    /// The plugged-in [`Machine`]'s state, if any.
    machine: Option<Vec<u8>>,
}

impl NoopSm {
    /// A state machine that applied nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state machine whose snapshots live in `store`, restored from its last one.
    pub fn open(store: SnapshotStore) -> Result<Self, io::Error> {
        Self::open_with(Some(store), None)
    }

    /// A state machine feeding application commands to `machine`, with snapshots in `store`
    /// (restored from its last one, into the machine too).
    pub fn open_with(
        store: Option<SnapshotStore>,
        machine: Option<Arc<dyn Machine>>,
    ) -> Result<Self, io::Error> {
        let saved = match &store {
            Some(store) => store.load()?,
            None => None,
        };
        let mut inner = Inner {
            store,
            machine,
            ..Inner::default()
        };
        if let Some((meta, data)) = saved {
            let body: SnapshotBody = postcard::from_bytes(&data).map_err(invalid)?;
            if let (Some(machine), Some(state)) = (&inner.machine, &body.machine) {
                machine.restore(state)?;
            }
            inner.applied = body.applied;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.snapshot = Some((meta, None));
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// How many application commands were applied.
    pub async fn applied_commands(&self) -> u64 {
        self.inner.lock().await.applied
    }

    /// The log id of the last applied entry (any kind).
    pub async fn last_applied(&self) -> Option<LogId> {
        self.inner.lock().await.last_applied
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl RaftSnapshotBuilder<Wr> for NoopSm {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut inner = self.inner.lock().await;
        let data = postcard::to_allocvec(&SnapshotBody {
            applied: inner.applied,
            machine: inner.machine.as_ref().map(|m| m.snapshot()).transpose()?,
        })
        .map_err(invalid)?;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
        };
        let kept = match &inner.store {
            Some(store) => {
                store.save(&meta, &data)?;
                None
            }
            None => Some(data.clone()),
        };
        inner.snapshot = Some((meta.clone(), kept));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<Wr> for NoopSm {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<Wr>, io::Error>> + Unpin + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            inner.last_applied = Some(entry.log_id);
            let mut reply = None;
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    inner.applied += 1;
                    if let Some(machine) = &inner.machine {
                        reply = Some(machine.apply(entry.log_id.index, command));
                    }
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(responder) = responder {
                responder.send(reply.unwrap_or_else(|| Reply {
                    payload: Bytes::copy_from_slice(&inner.applied.to_be_bytes()),
                }));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = postcard::from_bytes(&snapshot).map_err(invalid)?;
        let mut inner = self.inner.lock().await;
        if let (Some(machine), Some(state)) = (&inner.machine, &body.machine) {
            machine.restore(state)?;
        }
        let kept = match &inner.store {
            Some(store) => {
                store.save(meta, &snapshot)?;
                None
            }
            None => Some(snapshot),
        };
        inner.applied = body.applied;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), kept));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let inner = self.inner.lock().await;
        let Some((meta, data)) = &inner.snapshot else {
            return Ok(None);
        };
        let data = match (data, &inner.store) {
            (Some(data), _) => data.clone(),
            (None, Some(store)) => match store.load()? {
                Some((_, data)) => data,
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(Snapshot {
            meta: meta.clone(),
            snapshot: data,
        }))
    }
}

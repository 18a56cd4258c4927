//! A state machine that only counts, so step 1 can test the engine and transport alone.
//!
//! It counts applied application commands and keeps the last applied log id and membership;
//! its snapshot is that counter, which is enough to exercise snapshot build, transfer and
//! install. Each command is answered with the new count (8 bytes, big endian).
//! With a [`SnapshotStore`] its snapshots are saved on disk and restored at open, so a
//! restarted node resumes from its last snapshot and replays the log after it. With a
//! [`Machine`] plugged in (step 3, the metadata group), application commands go to it, its
//! answer is the reply, and its state rides in the snapshot, streamed into the snapshot's
//! file and restored from it (a snapshot's data: the count as u64 little endian, 1 if a
//! machine's state follows, then that state to the end; the earlier layout, postcard of
//! the count and the state as a byte sequence, is read from older files and rewritten).

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::Mutex;

use crate::machine::Machine;
use crate::snapshot::{Loaded, SnapshotStore};
use crate::types::{LogId, Reply, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, Wr};

/// Read buffer of a restore: small reads (varints) must not each be a system call.
const READ_BUFFER: usize = 64 << 10;

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
    /// The current snapshot; its data only without a store (with one, the file is opened
    /// when openraft asks: a node may host thousands of groups, and each handle is an
    /// open file).
    snapshot: Option<(SnapshotMeta, Option<SnapshotData>)>,
    store: Option<SnapshotStore>,
    machine: Option<Arc<dyn Machine>>,
}

impl std::fmt::Debug for NoopSm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoopSm").finish_non_exhaustive()
    }
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
        if let Some(Loaded { meta, data, legacy }) = saved {
            let mut input = BufReader::with_capacity(READ_BUFFER, data.reader());
            inner.applied = read_body(&mut input, legacy, inner.machine.as_deref())?;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            drop((input, data));
            if let (Some(store), true) = (&inner.store, legacy) {
                // Written again in this layout from the state just restored, so that
                // transfers and installs know one layout only.
                tracing::info!(dir = %store.dir().display(), "snapshot of the earlier layout rewritten");
                store.save(&meta, |out| write_body(&inner, out))?;
            }
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

/// Streams a snapshot's data: the count, then the machine's state.
fn write_body(inner: &Inner, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&inner.applied.to_le_bytes())?;
    match &inner.machine {
        Some(machine) => {
            out.write_all(&[1])?;
            machine.snapshot(out)
        }
        None => out.write_all(&[0]),
    }
}

/// Restores `machine` from a snapshot's data; answers the count.
fn read_body(input: &mut dyn Read, legacy: bool, machine: Option<&dyn Machine>) -> io::Result<u64> {
    let applied = if legacy {
        read_varint(input)?
    } else {
        let mut count = [0u8; 8];
        input.read_exact(&mut count)?;
        u64::from_le_bytes(count)
    };
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag)?;
    match (tag[0], machine) {
        (0, _) | (1, None) => {}
        (1, Some(machine)) if legacy => {
            let len = read_varint(input)?;
            machine.restore(&mut input.take(len))?;
        }
        (1, Some(machine)) => machine.restore(input)?,
        (other, _) => return Err(invalid(format!("snapshot: bad machine tag {other}"))),
    }
    Ok(applied)
}

/// A postcard varint (LEB128, at most 10 bytes).
fn read_varint(input: &mut dyn Read) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        input.read_exact(&mut byte)?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("snapshot: varint too long"))
}

impl RaftSnapshotBuilder<Wr> for NoopSm {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut inner = self.inner.lock().await;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
        };
        let (data, kept) = match &inner.store {
            Some(store) => (store.save(&meta, |out| write_body(&inner, out))?, None),
            None => {
                let mut bytes = Vec::new();
                write_body(&inner, &mut bytes)?;
                let data = SnapshotData::from_bytes(bytes);
                (data.clone(), Some(data))
            }
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
        let mut inner = self.inner.lock().await;
        let mut input = BufReader::with_capacity(READ_BUFFER, snapshot.reader());
        let applied = read_body(&mut input, false, inner.machine.as_deref())?;
        let kept = match &inner.store {
            Some(store) => {
                store.save(meta, |out| io::copy(&mut snapshot.reader(), out).map(drop))?;
                None
            }
            None => Some(snapshot),
        };
        inner.applied = applied;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), kept));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let inner = self.inner.lock().await;
        let Some((meta, kept)) = &inner.snapshot else {
            return Ok(None);
        };
        let data = match (kept, &inner.store) {
            (Some(data), _) => data.clone(),
            // Opened under the lock that saves replace it under: the file is this
            // snapshot's, and the handle keeps it readable if a newer one replaces it.
            (None, Some(store)) => match store.open_current()? {
                Some(loaded) if loaded.meta == *meta && !loaded.legacy => loaded.data,
                _ => return Err(invalid("the current snapshot's file is not the one saved")),
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(Snapshot {
            meta: meta.clone(),
            snapshot: data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::MAGIC;
    use crate::types::Command;
    use serde::Serialize;

    /// A machine whose state is the bytes it was last restored from.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<u8>>);

    impl Machine for Recorder {
        fn apply(&self, _index: u64, _command: &Command) -> Reply {
            Reply::default()
        }

        fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
            out.write_all(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
        }

        fn restore(&self, input: &mut dyn Read) -> io::Result<()> {
            let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
            state.clear();
            input.read_to_end(&mut state).map(drop)
        }
    }

    #[tokio::test]
    async fn a_snapshot_of_the_earlier_layout_restores_and_is_rewritten_in_this_one() {
        #[derive(Serialize)]
        struct EarlierBody {
            applied: u64,
            machine: Option<Vec<u8>>,
        }
        #[derive(Serialize)]
        struct EarlierFile<'a> {
            meta: &'a SnapshotMeta,
            data: Vec<u8>,
        }
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().join("4"));
        std::fs::create_dir_all(store.dir()).expect("dir");
        let state = b"the machine's state ".repeat(500);
        let body = EarlierBody {
            applied: 300,
            machine: Some(state.clone()),
        };
        let file = EarlierFile {
            meta: &SnapshotMeta::default(),
            data: postcard::to_stdvec(&body).expect("encode"),
        };
        let path = store.dir().join("current.snap");
        std::fs::write(&path, postcard::to_stdvec(&file).expect("encode")).expect("write");

        let machine = Arc::new(Recorder::default());
        let sm = NoopSm::open_with(Some(store.clone()), Some(machine.clone())).expect("open");
        assert_eq!(sm.applied_commands().await, 300);
        assert_eq!(*machine.0.lock().expect("lock"), state);
        let rewritten = std::fs::read(&path).expect("read");
        assert!(rewritten.starts_with(&MAGIC), "rewritten in this layout");

        let again = Arc::new(Recorder::default());
        let sm = NoopSm::open_with(Some(store), Some(again.clone())).expect("reopen");
        assert_eq!(sm.applied_commands().await, 300);
        assert_eq!(*again.0.lock().expect("lock"), state);
    }
}

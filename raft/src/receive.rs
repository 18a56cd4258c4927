//! Incoming Raft RPCs for a group hosted here ([`dispatch`]), and a snapshot arriving in
//! chunks ([`RaftRpc::Snapshot`]), written to a file as it comes (in memory only on a node
//! without a data dir), then handed to openraft whole as a [`SnapshotData`] on that file.

use std::fs::File;
use std::io::Write;

use crate::node::Group;
use crate::snapshot::SnapshotStore;
use crate::snapshot_data::SnapshotData;
use crate::transport::wire::{RaftReply, RaftRpc};
use crate::types::{Snapshot, SnapshotMeta};

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Hands one Raft RPC to the group's `Raft`; its answer or why not.
pub(crate) async fn dispatch(group: Group, rpc: RaftRpc) -> Result<RaftReply, String> {
    let raft = group.raft;
    Ok(match rpc {
        RaftRpc::AppendEntries(req) => {
            RaftReply::AppendEntries(raft.append_entries(req).await.map_err(text)?)
        }
        RaftRpc::Vote(req) => RaftReply::Vote(raft.vote(req).await.map_err(text)?),
        RaftRpc::PreVote(req) => RaftReply::Vote(raft.pre_vote(req).await.map_err(text)?),
        RaftRpc::Snapshot {
            vote,
            meta,
            offset,
            data,
            last,
        } => {
            let whole = group
                .receiving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .chunk(&meta, offset, &data, last)?;
            match whole {
                None => RaftReply::SnapshotChunk,
                Some(data) => RaftReply::Snapshot(
                    raft.install_full_snapshot(
                        vote,
                        Snapshot {
                            meta,
                            snapshot: data,
                        },
                    )
                    .await
                    .map_err(text)?,
                ),
            }
        }
        RaftRpc::TransferLeader(req) => {
            RaftReply::TransferLeader(raft.handle_transfer_leader(req).await.map_err(text)?)
        }
    })
}

/// The transfer in progress for one group, if any.
#[derive(Debug)]
pub struct Receiving {
    store: Option<SnapshotStore>,
    current: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    meta: SnapshotMeta,
    sink: Sink,
    len: u64,
}

#[derive(Debug)]
enum Sink {
    File(File),
    Memory(Vec<u8>),
}

impl Receiving {
    /// Receives into `store`'s directory (`None`: in memory).
    pub fn new(store: Option<SnapshotStore>) -> Self {
        Self {
            store,
            current: None,
        }
    }

    /// Takes one chunk at `offset` of the data of the snapshot `meta` describes; offset 0
    /// starts a new transfer (dropping an unfinished one). After the `last` chunk, answers
    /// the whole data. A chunk out of order ends the transfer (the sender starts again).
    pub fn chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
        last: bool,
    ) -> Result<Option<SnapshotData>, String> {
        if offset == 0 {
            let sink = match &self.store {
                Some(store) => Sink::File(store.incoming().map_err(|e| e.to_string())?),
                None => Sink::Memory(Vec::new()),
            };
            self.current = Some(Partial {
                meta: meta.clone(),
                sink,
                len: 0,
            });
        }
        let Some(partial) = self.current.as_mut() else {
            return Err(format!("snapshot chunk at {offset} without its start"));
        };
        if partial.meta != *meta || partial.len != offset {
            self.current = None;
            return Err(format!("snapshot chunk at {offset} out of order"));
        }
        let written = match &mut partial.sink {
            Sink::File(file) => file.write_all(data).map_err(|e| e.to_string()),
            Sink::Memory(bytes) => {
                bytes.extend_from_slice(data);
                Ok(())
            }
        };
        if let Err(e) = written {
            self.current = None;
            return Err(format!("snapshot chunk not written: {e}"));
        }
        partial.len += data.len() as u64;
        if !last {
            return Ok(None);
        }
        let Some(done) = self.current.take() else {
            return Ok(None);
        };
        Ok(Some(match done.sink {
            Sink::File(file) => SnapshotData::from_file(file, 0, done.len),
            Sink::Memory(bytes) => SnapshotData::from_bytes(bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_in_order_make_the_data_and_a_gap_ends_the_transfer() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut receiving = Receiving::new(Some(SnapshotStore::new(dir.path().join("5"))));
        let meta = SnapshotMeta::default();
        assert!(matches!(receiving.chunk(&meta, 0, b"abc", false), Ok(None)));
        assert!(receiving.chunk(&meta, 9, b"zzz", false).is_err(), "a gap");
        assert!(
            receiving.chunk(&meta, 3, b"def", true).is_err(),
            "ended by the gap"
        );
        assert!(matches!(receiving.chunk(&meta, 0, b"abc", false), Ok(None)));
        let data = receiving
            .chunk(&meta, 3, b"def", true)
            .expect("chunk")
            .expect("the whole data");
        assert_eq!(data.to_vec().expect("read"), b"abcdef");
        let left = std::fs::read_dir(dir.path().join("5"))
            .expect("dir")
            .count();
        assert_eq!(left, 0, "the received file has no name");
    }
}

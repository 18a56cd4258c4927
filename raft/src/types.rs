//! The openraft type configuration shared by every group on a node.
//!
//! One `TypeConfig` for the metadata group and every queue group: the log carries opaque
//! [`Command`] bytes and the state machine answers opaque [`Reply`] bytes, so this crate knows
//! nothing of AMQP (the broker encodes its own commands, as `warren-storage` stores records it
//! does not interpret). Snapshot data moved out of the type config in openraft 0.10, so the
//! state machines of different group kinds can still share it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Raft group's id: 0 is the metadata group, a quorum queue's group is its queue id.
pub type GroupId = u64;

/// A node's id in the cluster (random at first start, kept on disk from step 3 on).
pub type NodeId = u64;

/// The metadata group (definitions and nodes).
pub const METADATA_GROUP: GroupId = 0;

/// An opaque command appended to a group's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The encoded command; its meaning belongs to the group's state machine.
    pub payload: Bytes,
}

/// An opaque answer of a state machine to one applied [`Command`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The encoded reply.
    pub payload: Bytes,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Command({} bytes)", self.payload.len())
    }
}

openraft::declare_raft_types!(
    /// Warren's Raft type configuration: u64 node ids, `BasicNode { addr }` = cluster host:port.
    pub Wr:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

pub use crate::snapshot_data::SnapshotData;

/// A log entry of [`Wr`].
pub type Entry = openraft::alias::EntryOf<Wr>;
/// A log id of [`Wr`].
pub type LogId = openraft::alias::LogIdOf<Wr>;
/// A vote of [`Wr`].
pub type Vote = openraft::alias::VoteOf<Wr>;
/// Snapshot metadata of [`Wr`].
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<Wr>;
/// A snapshot of [`Wr`] with [`SnapshotData`].
pub type Snapshot = openraft::alias::SnapshotOf<Wr, SnapshotData>;
/// The membership as stored with its log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<Wr>;

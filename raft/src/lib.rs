//! Warren's Raft layer: openraft groups (the metadata group and, later, one per quorum queue)
//! over one TCP link per node pair.
//!
//! This crate knows no AMQP: the log carries opaque [`Command`] bytes. Its only Warren
//! dependency is `warren-storage`, for the group commit its WAL reuses. Only this crate
//! imports openraft, so an upgrade of the pinned alpha is one crate's work. See
//! docs/cluster-design.md: step 1 built the groups over an in-memory log ([`mem_log`]) with a
//! counting state machine ([`noop_sm`]); step 2 added the node's shared write-ahead log
//! ([`wal`], each group's view is [`wal_log::WalLog`]) and snapshots on disk ([`snapshot`]);
//! step 3 lets a group host an application [`Machine`] and nodes join and leave a running
//! cluster ([`membership`]).

pub mod group_config;
pub mod machine;
pub mod manage;
pub mod mem_log;
pub mod membership;
pub mod node;
pub mod noop_sm;
pub mod receive;
pub mod router;
pub mod snapshot;
pub mod snapshot_data;
pub mod transport;
pub mod types;
pub mod wal;
pub mod wal_log;

pub use group_config::GroupKind;
pub use machine::Machine;
pub use manage::{GroupChange, ManageReply};
pub use membership::GroupStatus;
pub use node::{AppHandler, Group, GroupRaft, NodeConfig, NodeError, RaftNode};
pub use openraft::BasicNode;
pub use router::Router;
pub use snapshot_data::{SnapshotData, SnapshotReader};
pub use transport::policy::{AllowAll, CutLinks, FaultFile, Faults, LinkPolicy, Shape, Verdict};
pub use transport::tls::TlsSetupError;
pub use transport::wire::{JoinReply, Response, WriteReply};
pub use transport::{
    ClusterSecret, LinkSecurity, LinkTls, Transport, TransportConfig, TransportError,
};
pub use types::{Command, GroupId, METADATA_GROUP, NodeId, Reply, Wr};
pub use wal::{Wal, WalError};
pub use wal_log::WalLog;

//! Warren's Raft layer: openraft groups (the metadata group and, later, one per quorum queue)
//! over one TCP link per node pair.
//!
//! This crate depends on no other Warren crate and knows no AMQP: the log carries opaque
//! [`Command`] bytes. Only this crate imports openraft, so an upgrade of the pinned alpha is
//! one crate's work. See docs/cluster-design.md; step 1 of its plan is this crate with an
//! in-memory log ([`mem_log`]) and a counting state machine ([`noop_sm`]).

pub mod group_config;
pub mod mem_log;
pub mod node;
pub mod noop_sm;
pub mod router;
pub mod transport;
pub mod types;
pub mod wal;

pub use group_config::GroupKind;
pub use node::{Group, GroupRaft, NodeConfig, NodeError, RaftNode};
pub use router::Router;
pub use transport::policy::{AllowAll, CutLinks, LinkPolicy, Verdict};
pub use transport::{Transport, TransportConfig, TransportError};
pub use types::{Command, GroupId, METADATA_GROUP, NodeId, Reply, Wr};

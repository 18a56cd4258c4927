//! The metadata state machine of group 0, as far as step 3 goes: the cluster's nodes.
//!
//! Commands are JSON ([`MetaCommand`]); every node applies the same log in the same order,
//! so every node ends with the same [`Members`]. The state is a `BTreeMap` (deterministic
//! snapshots). Later steps add the definitions (docs/cluster-design.md section 5).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warren_raft::{Command, Machine, Reply};

use super::apply::{Applier, Snapshot as DefinitionSnapshot};
use crate::meta::{BrokerChange, Definition};

/// A node as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's Raft id.
    pub id: u64,
    /// The node's name (`warren@host`).
    pub name: String,
    /// Where peers reach its cluster port.
    pub cluster_addr: String,
    /// Its AMQP listener.
    pub amqp_addr: String,
    /// Its management API (`None`: management off).
    pub mgmt_addr: Option<String>,
}

/// A command of the metadata log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetaCommand {
    /// A node became a member.
    NodeJoined(NodeInfo),
    /// A node left.
    NodeLeft {
        /// The node's id.
        id: u64,
    },
    /// A change of a vhost's definitions (exchanges, queues, bindings).
    Definition(Definition),
    /// A change of users, vhosts, permissions, limits or policies.
    Broker(BrokerChange),
}

impl MetaCommand {
    /// The command as a log entry.
    pub fn encode(&self) -> Command {
        // A derived Serialize of plain fields cannot fail.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        Command {
            payload: Bytes::from(payload),
        }
    }
}

/// The nodes of the cluster, by id.
pub type Members = BTreeMap<u64, NodeInfo>;

/// The metadata machine; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct MetaState {
    members: Arc<RwLock<Members>>,
    /// Nodes that left or were forgotten: their ids never come back (a node joining
    /// again does so under a new id), so their quorum queue memberships can go.
    departed: Arc<RwLock<BTreeSet<u64>>>,
    /// Applies definitions to the broker's live vhosts.
    pub applier: Arc<Applier>,
}

/// What group 0's snapshot holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SnapshotBody {
    members: Members,
    #[serde(default)]
    departed: BTreeSet<u64>,
    #[serde(default)]
    definitions: DefinitionSnapshot,
}

impl MetaState {
    /// The nodes as applied on this node.
    pub fn members(&self) -> Members {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock_members(&self) -> std::sync::RwLockWriteGuard<'_, Members> {
        self.members.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The nodes that left the cluster or were forgotten, as applied on this node.
    pub fn departed(&self) -> BTreeSet<u64> {
        self.departed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock_departed(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<u64>> {
        self.departed.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether node `id` is a member here.
    pub fn has(&self, id: u64) -> bool {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }
}

fn reply(text: &str) -> Reply {
    Reply {
        payload: Bytes::copy_from_slice(text.as_bytes()),
    }
}

impl Machine for MetaState {
    fn apply(&self, index: u64, command: &Command) -> Reply {
        let cmd: MetaCommand = match serde_json::from_slice(&command.payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                // A command of a newer version: skipped the same way on every node.
                tracing::warn!(index, error = %e, "metadata command not understood; skipped");
                return reply("unknown");
            }
        };
        let applied = match cmd {
            MetaCommand::NodeJoined(info) => {
                self.lock_departed().remove(&info.id);
                self.lock_members().insert(info.id, info);
                true
            }
            MetaCommand::NodeLeft { id } => {
                self.lock_members().remove(&id);
                self.lock_departed().insert(id);
                self.applier.node_left(crate::meta::NodeId(id));
                true
            }
            MetaCommand::Definition(def) => self.applier.apply(index, def),
            MetaCommand::Broker(change) => self.applier.apply_broker(change),
        };
        reply(if applied { "ok" } else { "refused" })
    }

    fn snapshot(&self, out: &mut dyn io::Write) -> Result<(), io::Error> {
        let body = SnapshotBody {
            members: self.members(),
            departed: self.departed(),
            definitions: self.applier.snapshot(),
        };
        serde_json::to_writer(out, &body).map_err(io::Error::other)
    }

    fn restore(&self, input: &mut dyn io::Read) -> Result<(), io::Error> {
        // Definitions and members: small, read whole (the JSON may be of an earlier shape).
        let mut data = Vec::new();
        input.read_to_end(&mut data)?;
        let data = data.as_slice();
        let body: SnapshotBody = serde_json::from_slice(data)
            .or_else(|_| {
                // Step 3's snapshots held the members only.
                serde_json::from_slice::<Members>(data).map(|members| SnapshotBody {
                    members,
                    ..SnapshotBody::default()
                })
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = body.members;
        *self.lock_departed() = body.departed;
        self.applier.restore(&body.definitions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64) -> NodeInfo {
        NodeInfo {
            id,
            name: format!("warren@n{id}"),
            cluster_addr: format!("127.0.0.1:2570{id}"),
            amqp_addr: format!("127.0.0.1:570{id}"),
            mgmt_addr: None,
        }
    }

    #[test]
    fn joins_and_leaves_apply_and_survive_a_snapshot() {
        let sm = MetaState::default();
        sm.apply(1, &MetaCommand::NodeJoined(info(1)).encode());
        sm.apply(2, &MetaCommand::NodeJoined(info(2)).encode());
        sm.apply(3, &MetaCommand::NodeJoined(info(2)).encode());
        sm.apply(4, &MetaCommand::NodeLeft { id: 1 }.encode());
        assert_eq!(sm.members().keys().copied().collect::<Vec<_>>(), vec![2]);
        let other = MetaState::default();
        let mut snapshot = Vec::new();
        sm.snapshot(&mut snapshot).expect("snapshot");
        other.restore(&mut snapshot.as_slice()).expect("restore");
        assert_eq!(other.members(), sm.members());
        assert_eq!(
            other.departed(),
            BTreeSet::from([1]),
            "departed nodes are remembered"
        );
        assert!(other.restore(&mut &b"not json"[..]).is_err());
        let unknown = Command {
            payload: Bytes::from_static(b"{\"type\":\"Later\"}"),
        };
        assert_eq!(sm.apply(5, &unknown).payload.as_ref(), b"unknown");
    }
}

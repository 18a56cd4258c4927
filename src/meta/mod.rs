//! Definitions as commands of a replicated log (issue 18, step 4 of docs/cluster-design.md).
//!
//! In a cluster, exchange, queue and binding definitions change only through the metadata
//! log (Raft group 0): the channel and the management API describe the change as a
//! [`DefinitionOp`] and hand it to the vhost's [`MetaLog`]; once a majority has it, every
//! node applies it in log order to its live objects (`vhost/replicated.rs`), and the node
//! that asked answers its client with the result of its own apply. Without a cluster no
//! vhost has a `MetaLog` and nothing here runs.
//!
//! The room knows no Raft (the `cluster` room implements [`MetaLog`]) and no vhost (the
//! vhost applies the operations): it is the vocabulary both sides share.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warren_codec::types::FieldTable;

use crate::auth::{AuthDefinitions, PermissionDef, UserDef, VHostDef};
use crate::error::AmqpError;
use crate::message::Message;
use crate::names::{ConnectionId, Destination};
use crate::policy::{PolicyDef, PolicyKind};
use crate::queue::Consumer;
use crate::queue::quorum::live::{QuorumLog, QuorumQueue};
use crate::queue::remote::{HomeLink, SinkKey};

pub use crate::names::NodeId;

/// Who asked for an operation: a connection of a node (the owner of exclusive queues).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Requester {
    /// The node the client is connected to.
    pub node: NodeId,
    /// The connection on that node (its own numbering).
    pub connection: u64,
}

impl Requester {
    /// The requester as a connection of `here`: its own id on its own node, and on any
    /// other node an id no local connection has, so it owns no local exclusive queue.
    pub fn connection_on(&self, here: NodeId) -> ConnectionId {
        if self.node == here {
            ConnectionId(self.connection)
        } else {
            ConnectionId(u64::MAX)
        }
    }
}

/// Declare arguments in their AMQP wire form (a field table, encoded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Arguments(pub FieldTable);

impl Serialize for Arguments {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes =
            warren_codec::table::encode_table(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Arguments {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        warren_codec::table::decode_table(&bytes)
            .map(Arguments)
            .ok_or_else(|| serde::de::Error::custom("unreadable field table"))
    }
}

/// Where a binding leads, as the log writes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BindTo {
    /// A queue, by name.
    Queue(String),
    /// An exchange, by name.
    Exchange(String),
}

impl From<&Destination> for BindTo {
    fn from(d: &Destination) -> Self {
        match d {
            Destination::Queue(q) => BindTo::Queue(q.to_string()),
            Destination::Exchange(x) => BindTo::Exchange(x.to_string()),
        }
    }
}

impl From<&BindTo> for Destination {
    fn from(b: &BindTo) -> Self {
        match b {
            BindTo::Queue(q) => Destination::Queue(q.as_str().into()),
            BindTo::Exchange(x) => Destination::Exchange(x.as_str().into()),
        }
    }
}

/// A change of one vhost's definitions, as every node applies it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DefinitionOp {
    /// exchange.declare (not passive).
    DeclareExchange {
        /// The exchange.
        name: String,
        /// Its type as the client named it (`direct`, `x-delayed-message`, ...).
        type_name: String,
        /// Durable.
        durable: bool,
        /// Auto-delete.
        auto_delete: bool,
        /// Internal.
        internal: bool,
        /// Declare arguments.
        arguments: Arguments,
    },
    /// exchange.delete.
    DeleteExchange {
        /// The exchange.
        name: String,
        /// Only if it has no bindings.
        if_unused: bool,
    },
    /// exchange.bind / queue.bind.
    Bind {
        /// The source exchange.
        source: String,
        /// The destination.
        destination: BindTo,
        /// The binding key.
        routing_key: String,
        /// The binding's arguments.
        arguments: Arguments,
    },
    /// exchange.unbind / queue.unbind.
    Unbind {
        /// The source exchange.
        source: String,
        /// The destination.
        destination: BindTo,
        /// The binding key.
        routing_key: String,
        /// The binding's arguments.
        arguments: Arguments,
    },
    /// queue.declare (not passive). The queue lives on `home`; other nodes keep its record.
    DeclareQueue {
        /// The queue (a server-chosen name already filled in).
        name: String,
        /// Durable.
        durable: bool,
        /// Exclusive to the requester's connection.
        exclusive: bool,
        /// Auto-delete.
        auto_delete: bool,
        /// The client left the name empty.
        server_named: bool,
        /// Declare arguments.
        arguments: Arguments,
        /// The node the queue lives on (where it was declared).
        home: NodeId,
        /// The queue's store id; `None`: the entry's log index (a snapshot names it).
        id: Option<u64>,
        /// A quorum queue's group members (empty for other queues; filled in by the
        /// cluster when the declare is submitted).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<NodeId>,
    },
    /// A quorum queue's members change (one added or removed): each node starts or
    /// stops hosting it to match; the others keep its record up to date.
    QueueMembers {
        /// The queue.
        name: String,
        /// Its store id (also its Raft group).
        id: u64,
        /// Its members from now on.
        members: Vec<NodeId>,
    },
    /// Removes a queue (its conditions were checked where it lives before this was logged).
    DeleteQueue {
        /// The queue.
        name: String,
        /// Only the queue of this store id (auto-delete and expiry must not remove a
        /// queue declared again under the name since); `None`: whichever has the name.
        id: Option<u64>,
    },
}

/// A change of the broker's users, vhosts, permissions, limits or policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BrokerOp {
    /// Creates or updates a user.
    PutUser(UserDef),
    /// Deletes a user.
    DeleteUser {
        /// The user.
        name: String,
    },
    /// Creates a vhost or updates its record.
    PutVHost(VHostDef),
    /// Deletes a vhost with everything in it.
    DeleteVHost {
        /// The vhost.
        name: String,
    },
    /// Sets a user's permissions in a vhost.
    SetPermissions(PermissionDef),
    /// Clears a user's permissions in a vhost.
    ClearPermissions {
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// Sets one vhost limit (`max-connections`, `max-queues`, ...).
    SetVHostLimit {
        /// The vhost.
        vhost: String,
        /// The limit's name.
        name: String,
        /// Its value as given (JSON), checked where it is applied.
        value: serde_json::Value,
    },
    /// Clears one vhost limit.
    ClearVHostLimit {
        /// The vhost.
        vhost: String,
        /// The limit's name.
        name: String,
    },
    /// Sets one user limit.
    SetUserLimit {
        /// The user.
        user: String,
        /// The limit's name.
        name: String,
        /// Its value as given (JSON).
        value: serde_json::Value,
    },
    /// Clears one user limit.
    ClearUserLimit {
        /// The user.
        user: String,
        /// The limit's name.
        name: String,
    },
    /// A definitions import's users, vhosts, permissions or limits (merged into what is
    /// there, all or nothing).
    Import(AuthDefinitions),
    /// Sets a policy or an operator policy (already parsed and checked).
    PutPolicy {
        /// Which kind.
        kind: PolicyKind,
        /// The policy.
        def: PolicyDef,
    },
    /// Deletes a policy or an operator policy.
    DeletePolicy {
        /// Which kind.
        kind: PolicyKind,
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
    /// Declares or replaces a shovel (its runtime parameter, checked where applied).
    PutShovel {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// The parameter's value as given.
        value: serde_json::Value,
        /// The user who declared it (the login of a host-less URI).
        user: String,
    },
    /// Removes a shovel.
    DeleteShovel {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
}

/// A replicated broker-level change and who asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerChange {
    /// The change.
    pub op: BrokerOp,
    /// Who asked.
    pub requester: Requester,
    /// The requester node's number for this submission.
    pub request: u64,
}

/// A replicated operation: which vhost, what, and who asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The vhost.
    pub vhost: String,
    /// The change.
    pub op: DefinitionOp,
    /// Who asked.
    pub requester: Requester,
    /// The requester node's number for this submission (matches the answer to it).
    pub request: u64,
}

/// What applying an operation did, on the node that applied it.
#[derive(Debug, Default)]
pub enum Applied {
    /// Done; nothing to report.
    #[default]
    Done,
    /// A queue declared (new or equivalent): its name and counts.
    QueueDeclared {
        /// The queue's name.
        name: String,
        /// Ready messages (0 where the queue does not live).
        message_count: u32,
        /// Consumers (0 where the queue does not live).
        consumer_count: u32,
    },
    /// A broker-level change: whether it created (or removed) something.
    Changed(bool),
    /// A queue removed: its ready messages and the consumers it had here.
    QueueDeleted {
        /// Ready messages it had.
        message_count: u32,
        /// Consumers attached on this node (told of the deletion by whoever answers).
        consumers: Vec<Arc<Consumer>>,
    },
}

/// Whether a publish forwarded to its queues' home node was taken there (and is on disk
/// there when it must be, as a confirm requires); dropped unanswered: not taken.
pub type Forwarded = tokio::sync::oneshot::Receiver<bool>;

/// The forwarded publishes a confirm waits for.
#[derive(Default)]
pub struct Forwards(pub Vec<Forwarded>);

impl std::fmt::Debug for Forwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Forwards({})", self.0.len())
    }
}

impl Forwards {
    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the others' forwards too.
    pub fn append(&mut self, other: Forwards) {
        self.0.extend(other.0);
    }

    /// Waits for every one; true if every home took its publish.
    pub async fn all_taken(self) -> bool {
        let mut taken = true;
        for forwarded in self.0 {
            taken &= forwarded.await.unwrap_or(false);
        }
        taken
    }
}

/// A submission's future: the result of this node's own apply of the operation.
pub type Submitted = Pin<Box<dyn Future<Output = Result<Applied, AmqpError>> + Send>>;

/// basic.consume of a queue living on another node, as its home receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteConsume {
    /// The queue.
    pub queue: String,
    /// The consuming channel.
    pub sink: SinkKey,
    /// The consumer tag.
    pub tag: String,
    /// Deliveries need no ack.
    pub no_ack: bool,
    /// Exclusive consumer.
    pub exclusive: bool,
    /// The consumer's prefetch (enforced by the home).
    pub prefetch: u16,
    /// Its `x-priority`.
    pub priority: i64,
    /// The consume arguments (stream offsets and filters among them).
    pub arguments: Arguments,
}

/// A message basic.get took from a queue living on another node.
#[derive(Debug)]
pub struct RemoteGot {
    /// Its position there (None when taken with no-ack).
    pub seq: Option<crate::queue::SeqId>,
    /// Delivered before.
    pub redelivered: bool,
    /// Ready messages left there.
    pub message_count: u32,
    /// The message.
    pub message: Arc<Message>,
}

/// What a queue's home answers to a request from another node.
pub type AtHome<T> = Pin<Box<dyn Future<Output = Result<T, AmqpError>> + Send>>;

/// The metadata log a clustered vhost submits its definition changes to.
pub trait MetaLog: Send + Sync + std::fmt::Debug {
    /// This node.
    fn node(&self) -> NodeId;
    /// A node's name (`warren@host`), if it is a member.
    fn node_name(&self, node: NodeId) -> Option<String>;

    /// Whether this node has a live link to `node` (itself included).
    fn reachable(&self, node: NodeId) -> bool {
        node == self.node()
    }
    /// Appends `op` for `vhost` on behalf of `connection` and resolves once this node has
    /// applied it: `Ok` with what the apply did, or the AMQP error it raised (the same on
    /// every node), or 541 when no majority took it in time.
    fn submit(&self, vhost: &str, connection: ConnectionId, op: DefinitionOp) -> Submitted;
    /// Appends a broker-level change and resolves once this node has applied it.
    fn submit_broker(&self, op: BrokerOp) -> Submitted;
    /// Hands `message`, routed here to `queues` of `vhost` living on `home`, to that
    /// node, after every publish forwarded to it before (order kept); the future says
    /// whether it was taken there.
    fn forward_publish(
        &self,
        home: NodeId,
        vhost: &str,
        queues: Vec<String>,
        message: &Arc<Message>,
    ) -> Forwarded;
    /// What carries settles, cancels and releases of remote queues to their homes.
    fn home_link(&self) -> Arc<dyn HomeLink>;
    /// basic.consume at `home` of a queue of `vhost` living there (after what this node
    /// sent there before); `Ok` once the home's queue took the consumer.
    fn consume_at(&self, home: NodeId, vhost: &str, consume: RemoteConsume) -> AtHome<()>;
    /// basic.get at `home` for channel `sink`.
    fn get_at(
        &self,
        home: NodeId,
        vhost: &str,
        queue: &str,
        sink: SinkKey,
        no_ack: bool,
    ) -> AtHome<Option<RemoteGot>>;
    /// queue.purge at `home`: how many messages went.
    fn purge_at(&self, home: NodeId, vhost: &str, queue: &str) -> AtHome<u32>;
    /// A queue's ready messages and consumers, at `home`.
    fn counts_at(&self, home: NodeId, vhost: &str, queue: &str) -> AtHome<(u32, u32)>;
    /// This node's run (a restart makes a new one).
    fn run(&self) -> u64;
    /// The Raft groups of quorum queues.
    fn quorum_log(&self) -> Arc<dyn QuorumLog>;
    /// Starts `queue`'s Raft group on this node (its home initialises it).
    fn host_quorum(&self, queue: Arc<QuorumQueue>);
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::types::AMQPValue;

    #[test]
    fn a_definition_survives_its_json_form() {
        let mut table = FieldTable::default();
        table.insert("x-max-length".into(), AMQPValue::LongLongInt(10));
        let def = Definition {
            vhost: "/".into(),
            op: DefinitionOp::DeclareQueue {
                name: "q".into(),
                durable: true,
                exclusive: false,
                auto_delete: false,
                server_named: false,
                arguments: Arguments(table),
                home: NodeId(7),
                id: None,
                members: Vec::new(),
            },
            requester: Requester {
                node: NodeId(7),
                connection: 3,
            },
            request: 1,
        };
        let json = serde_json::to_vec(&def).expect("encode");
        let back: Definition = serde_json::from_slice(&json).expect("decode");
        assert_eq!(back, def);
    }

    #[test]
    fn a_requester_owns_exclusive_queues_only_on_its_own_node() {
        let r = Requester {
            node: NodeId(1),
            connection: 5,
        };
        assert_eq!(r.connection_on(NodeId(1)), ConnectionId(5));
        assert_ne!(r.connection_on(NodeId(2)), ConnectionId(5));
    }
}

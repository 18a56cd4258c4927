//! Submitting definition changes to the metadata log: the cluster's [`MetaLog`].
//!
//! A submission is appended to group 0 through its leader (this node, or forwarded over the
//! leader's link), then waits until this node has applied it and answers with the result
//! of that apply, so the next method on the client's channel sees the change here. With no
//! leader able to commit within [`WRITE_WITHIN`], the client gets 541, as RabbitMQ answers
//! when its metadata store has no majority.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Cluster;
use super::deliver::{self, ClusterLink};
use super::meta::MetaCommand;
use super::proxy::Forwarder;
use super::quorum::ClusterQuorum;
use crate::error::AmqpError;
use crate::message::Message;
use crate::meta::{
    AtHome, BrokerChange, BrokerOp, Definition, DefinitionOp, Forwarded, MetaLog, NodeId,
    RemoteConsume, RemoteGot, Requester, Submitted,
};
use crate::names::ConnectionId;
use crate::queue::quorum::live::{QuorumLog, QuorumQueue};
use crate::queue::remote::{HomeLink, SinkKey};

/// How long a submission may wait for a leader to commit it.
pub const WRITE_WITHIN: Duration = Duration::from_secs(5);

/// How long a committed submission may wait to be applied on this node.
const APPLY_WITHIN: Duration = Duration::from_secs(10);

/// The cluster's metadata log, as vhosts see it.
#[derive(Debug)]
pub struct ClusterMeta {
    cluster: Weak<Cluster>,
    here: NodeId,
    next_request: AtomicU64,
    forwarder: Arc<Forwarder>,
    link: Arc<ClusterLink>,
    quorum: Arc<ClusterQuorum>,
    /// This node's run, as its channels' requests name it to queues' homes.
    boot: u64,
}

impl ClusterMeta {
    /// The metadata log of `cluster`.
    pub fn new(cluster: &Arc<Cluster>, boot: u64) -> Arc<Self> {
        let forwarder = Arc::new(Forwarder::new(Arc::downgrade(cluster)));
        Arc::new(Self {
            cluster: Arc::downgrade(cluster),
            here: NodeId(cluster.id()),
            next_request: AtomicU64::new(1),
            link: Arc::new(ClusterLink::new(&forwarder)),
            quorum: Arc::new(ClusterQuorum::new(Arc::downgrade(cluster))),
            forwarder,
            boot,
        })
    }

    /// A quorum queue's declare with its members chosen: this node and the next ones by
    /// id (all when the cluster has no more than `x-quorum-initial-group-size`, default 3),
    /// so queues declared through different nodes spread their leaders.
    fn placed(&self, mut op: DefinitionOp) -> DefinitionOp {
        if let DefinitionOp::DeclareQueue {
            arguments, members, ..
        } = &mut op
            && members.is_empty()
            && is_quorum(&arguments.0)
            && let Some(cluster) = self.cluster.upgrade()
        {
            let size = group_size(&arguments.0);
            let all: Vec<NodeId> = cluster.members().keys().map(|&id| NodeId(id)).collect();
            let start = all.iter().position(|&n| n == self.here).unwrap_or(0);
            *members = (0..all.len().min(size))
                .map(|i| all[(start + i) % all.len()])
                .collect();
            members.sort();
        }
        op
    }

    fn home_name(&self, home: NodeId) -> String {
        self.node_name(home).unwrap_or_else(|| home.to_string())
    }
}

fn unavailable(why: impl std::fmt::Display) -> AmqpError {
    AmqpError::internal_error(format!(
        "timed out waiting for the metadata store to commit the change ({why})"
    ))
}

impl MetaLog for ClusterMeta {
    fn node(&self) -> NodeId {
        self.here
    }

    fn node_name(&self, node: NodeId) -> Option<String> {
        let cluster = self.cluster.upgrade()?;
        cluster.members().get(&node.0).map(|info| info.name.clone())
    }

    fn reachable(&self, node: NodeId) -> bool {
        node == self.here
            || self
                .cluster
                .upgrade()
                .is_some_and(|c| c.node.transport().is_connected(node.0))
    }

    fn submit(&self, vhost: &str, connection: ConnectionId, op: DefinitionOp) -> Submitted {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let def = Definition {
            vhost: vhost.to_owned(),
            op: self.placed(op),
            requester: Requester {
                node: self.here,
                connection: connection.0,
            },
            request,
        };
        self.append(request, MetaCommand::Definition(def))
    }

    fn forward_publish(
        &self,
        home: NodeId,
        vhost: &str,
        queues: Vec<String>,
        message: &Arc<Message>,
    ) -> Forwarded {
        self.forwarder.publish(home, vhost, queues, message)
    }

    fn home_link(&self) -> Arc<dyn HomeLink> {
        self.link.clone()
    }

    fn consume_at(&self, home: NodeId, vhost: &str, consume: RemoteConsume) -> AtHome<()> {
        deliver::consume_at(
            &self.forwarder,
            home,
            self.home_name(home),
            vhost,
            self.boot,
            consume,
        )
    }

    fn get_at(
        &self,
        home: NodeId,
        vhost: &str,
        queue: &str,
        sink: SinkKey,
        no_ack: bool,
    ) -> AtHome<Option<RemoteGot>> {
        deliver::get_at(
            &self.forwarder,
            home,
            self.home_name(home),
            vhost,
            self.boot,
            queue,
            sink,
            no_ack,
        )
    }

    fn purge_at(&self, home: NodeId, vhost: &str, queue: &str) -> AtHome<u32> {
        deliver::purge_at(&self.forwarder, home, self.home_name(home), vhost, queue)
    }

    fn counts_at(&self, home: NodeId, vhost: &str, queue: &str) -> AtHome<(u32, u32)> {
        deliver::counts_at(&self.forwarder, home, self.home_name(home), vhost, queue)
    }

    fn run(&self) -> u64 {
        self.boot
    }

    fn quorum_log(&self) -> Arc<dyn QuorumLog> {
        self.quorum.clone()
    }

    fn host_quorum(&self, queue: Arc<QuorumQueue>) {
        tokio::spawn(super::quorum::host(self.cluster.clone(), queue));
    }

    fn submit_broker(&self, op: BrokerOp) -> Submitted {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let change = BrokerChange {
            op,
            requester: Requester {
                node: self.here,
                connection: 0,
            },
            request,
        };
        self.append(request, MetaCommand::Broker(change))
    }
}

impl ClusterMeta {
    /// Appends `command` (this node's submission `request`) and waits for its apply here.
    fn append(&self, request: u64, command: MetaCommand) -> Submitted {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let Some(cluster) = cluster.upgrade() else {
                return Err(unavailable("the cluster service stopped"));
            };
            let applier = cluster.meta.applier.clone();
            let answer = applier.expect(request);
            if let Err(error) = cluster
                .node
                .write_anywhere(warren_raft::METADATA_GROUP, command.encode(), WRITE_WITHIN)
                .await
            {
                applier.forget(request);
                return Err(unavailable(error));
            }
            match tokio::time::timeout(APPLY_WITHIN, answer).await {
                Ok(Ok(result)) => result,
                _ => {
                    applier.forget(request);
                    Err(unavailable("committed, not yet applied on this node"))
                }
            }
        })
    }
}

/// Whether declare arguments ask for a quorum queue.
fn is_quorum(arguments: &warren_codec::types::FieldTable) -> bool {
    matches!(
        arguments.inner().get("x-queue-type"),
        Some(warren_codec::types::AMQPValue::LongString(s)) if s.as_bytes() == b"quorum"
    )
}

/// `x-quorum-initial-group-size`, 3 when absent (at least 1).
fn group_size(arguments: &warren_codec::types::FieldTable) -> usize {
    arguments
        .inner()
        .get("x-quorum-initial-group-size")
        .and_then(warren_exchanges::integer)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(3)
        .max(1)
}

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
use crate::error::AmqpError;
use crate::message::Message;
use crate::meta::{
    AtHome, BrokerChange, BrokerOp, Definition, DefinitionOp, Forwarded, MetaLog, NodeId,
    RemoteConsume, RemoteGot, Requester, Submitted,
};
use crate::names::ConnectionId;
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
            forwarder,
            boot,
        })
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

    fn submit(&self, vhost: &str, connection: ConnectionId, op: DefinitionOp) -> Submitted {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let def = Definition {
            vhost: vhost.to_owned(),
            op,
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

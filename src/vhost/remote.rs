//! Queues of a clustered vhost that live on another node: the record this node keeps of
//! each (from the metadata log), so that a declare, a bind or a delete here follows the
//! same rules as where the queue lives, and the handles (`Backend::Remote` queues) through
//! which this node's channels consume from, get from and purge them.

use std::sync::{Arc, Weak};

use warren_codec::types::FieldTable;

use super::{VHost, resource};
use crate::error::AmqpError;
use crate::meta::{MetaLog, NodeId, Requester};
use crate::names::ConnectionId;
use crate::queue::{Queue, QueueArgs, QueueHost, QueueSpec, QueueType, args};

/// The record of a queue whose home is another node.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteQueue {
    /// The queue's name.
    pub name: String,
    /// The node it lives on.
    pub home: NodeId,
    /// Its store id there.
    pub id: u64,
    /// Durable.
    pub durable: bool,
    /// Auto-delete.
    pub auto_delete: bool,
    /// The connection owning it, if exclusive.
    pub exclusive_owner: Option<Requester>,
    /// Its declare arguments.
    pub arguments: FieldTable,
    /// A quorum queue's members (none of them this node).
    pub members: Vec<NodeId>,
}

impl RemoteQueue {
    /// The node this node sends the queue's publishes and consumers to: its home, or for a
    /// quorum queue the first of its home and members this node has a link to.
    pub fn serving(&self, meta: &dyn MetaLog) -> NodeId {
        if self.members.is_empty() || meta.reachable(self.home) {
            return self.home;
        }
        self.members
            .iter()
            .copied()
            .find(|&m| meta.reachable(m))
            .unwrap_or(self.home)
    }

    /// 405 unless `requester` may use the queue (not exclusive, or its owner).
    pub fn check_exclusive(&self, requester: Requester, vhost: &str) -> Result<(), AmqpError> {
        match self.exclusive_owner {
            Some(owner) if owner != requester => Err(self.locked(vhost)),
            _ => Ok(()),
        }
    }

    /// A redeclare by `requester`: RabbitMQ's 405 for an exclusive mismatch, then the
    /// 406s of `durable`, `auto_delete` and the arguments, as for a local queue.
    pub fn check_redeclare(
        &self,
        requester: Requester,
        exclusive: bool,
        durable: bool,
        auto_delete: bool,
        arguments: &FieldTable,
        vhost: &str,
    ) -> Result<(), AmqpError> {
        if self.exclusive_owner != exclusive.then_some(requester) {
            return Err(self.locked(vhost));
        }
        let describe = resource("queue", &self.name, vhost);
        for (arg, now, wanted) in [
            ("durable", self.durable, durable),
            ("auto_delete", self.auto_delete, auto_delete),
        ] {
            if now != wanted {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for {describe}: received '{wanted}' but current is '{now}'"
                )));
            }
        }
        args::assert_equivalent(&self.arguments, arguments, &describe)
    }

    fn locked(&self, vhost: &str) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            resource("queue", &self.name, vhost)
        ))
    }
}

impl VHost {
    /// The record of a queue living on another node, if `name` is one.
    pub fn remote_queue(&self, name: &str) -> Option<Arc<RemoteQueue>> {
        self.remote.get(name).map(|r| r.clone())
    }

    /// Every queue of this vhost living on another node.
    pub fn remote_queues(&self) -> Vec<Arc<RemoteQueue>> {
        self.remote.iter().map(|r| r.clone()).collect()
    }

    /// The name of the node `queue` lives on (its id if the node is not a member now).
    pub fn home_name(&self, queue: &RemoteQueue) -> String {
        self.meta()
            .and_then(|m| m.node_name(queue.home))
            .unwrap_or_else(|| queue.home.to_string())
    }

    /// The queue `name` as `connection` consumes from, gets from or purges it: the local
    /// queue, or this node's handle of one living on another node; 404 when there is none,
    /// 405 when it is another connection's exclusive queue.
    pub fn queue_or_remote(
        self: &Arc<Self>,
        name: &str,
        connection: ConnectionId,
    ) -> Result<Arc<Queue>, AmqpError> {
        if let Some(queue) = self.queue(name) {
            queue.check_exclusive(connection)?;
            return Ok(queue);
        }
        let (Some(record), Some(meta)) = (self.remote_queue(name), self.meta()) else {
            return Err(self.no_queue(name));
        };
        let requester = Requester {
            node: meta.node(),
            connection: connection.0,
        };
        record.check_exclusive(requester, &self.name)?;
        Ok(self.handle_of(&record, meta.as_ref()))
    }

    fn handle_of(self: &Arc<Self>, record: &RemoteQueue, meta: &dyn MetaLog) -> Arc<Queue> {
        if let Some(handle) = self.proxies.get(record.name.as_str())
            && handle.store_id == record.id
        {
            return handle.clone();
        }
        let describe = super::resource("queue", &record.name, &self.name);
        // The home checked them at declare; an unreadable table here keeps the defaults.
        let args = QueueArgs::parse(&record.arguments, &describe).unwrap_or_default();
        let kind = match args.queue_type {
            QueueType::Stream => QueueType::Stream,
            _ => QueueType::Classic,
        };
        let spec = QueueSpec {
            durable: record.durable,
            exclusive_owner: None,
            auto_delete: record.auto_delete,
            arguments: record.arguments.clone(),
            args,
        };
        let host: Weak<dyn QueueHost> = Arc::downgrade(self) as Weak<VHost>;
        let handle = Queue::remote(
            record.name.as_str().into(),
            self.name.clone(),
            host,
            spec,
            record.id,
            record.serving(meta),
            kind,
            meta.home_link(),
        );
        self.proxies
            .insert(record.name.as_str().into(), handle.clone());
        handle
    }

    /// The node `home` is gone: this node's handles of queues it served go, with their
    /// consumers here (returned, to be told with basic.cancel, as RabbitMQ does when a
    /// queue's node goes down); the next use makes a new handle (for a quorum queue,
    /// through another member).
    pub fn drop_remote_handles_at(&self, home: NodeId) -> Vec<Arc<crate::queue::Consumer>> {
        let names: Vec<String> = self
            .proxies
            .iter()
            .filter(|h| h.remote_backend().is_some_and(|r| r.home == home))
            .map(|h| h.name.to_string())
            .collect();
        names
            .iter()
            .flat_map(|name| self.drop_remote_handle(name))
            .collect()
    }

    /// This node's handle of remote queue `name`, if a channel here used it.
    pub fn remote_handle(&self, name: &str) -> Option<Arc<Queue>> {
        self.proxies.get(name).map(|h| h.clone())
    }

    /// The record of remote queue `name` is gone: its handle too, with this node's
    /// consumers of it (returned, to be told).
    pub(super) fn drop_remote_handle(&self, name: &str) -> Vec<Arc<crate::queue::Consumer>> {
        self.proxies
            .remove(name)
            .map(|(_, handle)| handle.delete().1)
            .unwrap_or_default()
    }

    /// What this node answers for using a queue that lives on another node where that is
    /// not proxied.
    pub fn elsewhere(&self, queue: &RemoteQueue, what: &str) -> AmqpError {
        AmqpError::not_implemented(format!(
            "{} lives on cluster node '{}'; {what} from another node is not supported yet \
             (connect to that node)",
            resource("queue", &queue.name, &self.name),
            self.home_name(queue)
        ))
    }
}

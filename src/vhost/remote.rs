//! Queues of a clustered vhost that live on another node: the record this node keeps of
//! each (from the metadata log), so that a declare, a bind or a delete here follows the
//! same rules as where the queue lives. Publishing to, consuming from and purging them
//! from this node come with issue 18's step 5 (they are refused until then).

use std::sync::Arc;

use warren_codec::types::FieldTable;

use super::{VHost, resource};
use crate::error::AmqpError;
use crate::meta::{NodeId, Requester};
use crate::queue::args;

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
}

impl RemoteQueue {
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

    /// What this node answers for using a queue that lives on another node (until
    /// publishing and consuming are proxied, issue 18 step 5).
    pub fn elsewhere(&self, queue: &RemoteQueue, what: &str) -> AmqpError {
        AmqpError::not_implemented(format!(
            "{} lives on cluster node '{}'; {what} from another node is not supported yet \
             (connect to that node)",
            resource("queue", &queue.name, &self.name),
            self.home_name(queue)
        ))
    }
}

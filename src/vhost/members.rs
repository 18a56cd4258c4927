//! A quorum queue's members change (issue 18, step 10): applied on every node from the
//! metadata log, so that a node added starts hosting the queue (its engine and an empty
//! Raft group the leader then fills), a node removed stops (its group and log go; its
//! consumers get basic.cancel) and keeps the queue's record as any non-member does, and
//! every other node's record or placement names the members now.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::QueueDeclare;
use super::VHost;
use super::remote::RemoteQueue;
use crate::meta::NodeId;
use crate::names::ConnectionId;
use crate::queue::Queue;
use crate::queue::quorum::live::Placement;

impl VHost {
    /// Applies the members `members` of quorum queue `name` (store id `id`) on node `here`.
    pub(super) fn apply_queue_members(
        self: &Arc<Self>,
        name: &str,
        id: u64,
        members: &[NodeId],
        here: NodeId,
    ) {
        if members.is_empty() {
            return;
        }
        let member = members.contains(&here);
        if let Some(queue) = self.queue(name) {
            if queue.store_id != id {
                return;
            }
            let Some(quorum) = queue.quorum() else {
                return;
            };
            quorum.set_members(members.to_vec());
            if !member {
                let home = quorum.placement().home;
                self.stop_hosting(&queue, home, members);
            }
            return;
        }
        let Some(record) = self.remote_queue(name) else {
            return;
        };
        if record.id != id {
            return;
        }
        let home = if members.contains(&record.home) {
            record.home
        } else {
            members[0]
        };
        if !member {
            let mut updated = (*record).clone();
            updated.home = home;
            updated.members = members.to_vec();
            self.remote.insert(name.into(), Arc::new(updated));
            return;
        }
        self.start_hosting(&record, home, members);
    }

    /// This node is a member no more: the queue's engine and group stop here, and the
    /// queue is a record, as on any node that is not a member. Bindings stay.
    fn stop_hosting(&self, queue: &Arc<Queue>, home: NodeId, members: &[NodeId]) {
        // Bindings stay, so their handles on it must no longer be taken.
        queue.unlist();
        if self
            .queues
            .remove_if(&queue.name, |_, q| Arc::ptr_eq(q, queue))
            .is_none()
        {
            return;
        }
        // The queue still counts for max-queues: it moves from one map to the other.
        let (_, consumers) = queue.delete();
        self.remote.insert(
            queue.name.as_ref().into(),
            Arc::new(RemoteQueue {
                name: queue.name.to_string(),
                home,
                id: queue.store_id,
                durable: queue.spec.durable,
                auto_delete: queue.spec.auto_delete,
                exclusive_owner: None,
                arguments: queue.spec.arguments.clone(),
                members: members.to_vec(),
            }),
        );
        if !consumers.is_empty() {
            tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
        }
        tracing::info!(queue = %queue.name, vhost = %self.name, "no longer a member of this quorum queue");
    }

    /// This node became a member: its engine starts, with a group the leader catches up
    /// (never initialised here). Consumers through the record's handle end (basic.cancel).
    fn start_hosting(self: &Arc<Self>, record: &RemoteQueue, home: NodeId, members: &[NodeId]) {
        if self.remote.remove(record.name.as_str()).is_none() {
            return;
        }
        self.queue_count.fetch_sub(1, Ordering::AcqRel);
        let consumers = self.drop_remote_handle(&record.name);
        if !consumers.is_empty() {
            tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
        }
        let req = QueueDeclare {
            name: record.name.clone(),
            passive: false,
            durable: record.durable,
            exclusive: false,
            auto_delete: record.auto_delete,
            server_named: false,
            quorum: Some(Placement {
                home,
                members: members.to_vec(),
                added: true,
            }),
            arguments: record.arguments.clone(),
        };
        if let Err(error) = self.declare_queue_with_id(&req, ConnectionId(0), Some(record.id)) {
            tracing::error!(queue = %record.name, vhost = %self.name, %error, "a quorum queue's new member could not start it");
        } else {
            tracing::info!(queue = %record.name, vhost = %self.name, "now a member of this quorum queue");
        }
    }
}

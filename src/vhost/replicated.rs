//! A clustered vhost's side of the metadata log: applying a [`DefinitionOp`] that every
//! node applies in the same order, and submitting the deletions this node decides alone
//! (auto-delete, expiry, an exclusive owner's close).
//!
//! Applying goes through the same rules as a single node's declare, bind and delete, so a
//! refusal is the same error with the same text on every node; the only inputs are the
//! operation, the vhost's replicated state and which node this is. A queue is created on
//! its home node with the entry's log index as its store id (the same after a replay of
//! the log, so a restarted node finds its messages again); every other node keeps a
//! [`RemoteQueue`] record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::remote::RemoteQueue;
use super::{Deleted, QueueDeclare, VHost, resource};
use crate::error::AmqpError;
use crate::meta::{Applied, BindTo, DefinitionOp, MetaLog, NodeId, Requester};
use crate::names::{ConnectionId, Destination};
use crate::queue::Queue;
use crate::queue::quorum::live::Placement;

/// Where an operation is applied: the log index and this node.
#[derive(Debug, Clone, Copy)]
pub struct ApplyAt {
    /// The entry's log index.
    pub index: u64,
    /// This node.
    pub here: NodeId,
    /// The last run of this node shut down cleanly (messages read back at a replay).
    pub clean: bool,
}

impl VHost {
    /// This vhost's metadata log, when the broker is a cluster node.
    pub fn meta(&self) -> Option<&Arc<dyn MetaLog>> {
        self.meta.get()
    }

    /// Makes this vhost clustered: its definition changes go through `meta` from now on.
    pub fn set_meta(&self, meta: Arc<dyn MetaLog>) {
        let _ = self.meta.set(meta);
    }

    /// Makes a definition change asked for outside a channel (the management API, a
    /// definitions import): through the metadata log in a cluster, else here at once.
    pub async fn change(
        self: &Arc<Self>,
        op: DefinitionOp,
        connection: ConnectionId,
    ) -> Result<Applied, AmqpError> {
        if let Some(meta) = self.meta() {
            return meta.submit(&self.name, connection, op).await;
        }
        // A single node applies it as a cluster would, as its only node (node 0).
        let alone = NodeId(0);
        let requester = Requester {
            node: alone,
            connection: connection.0,
        };
        let at = ApplyAt {
            index: 0,
            here: alone,
            clean: false,
        };
        self.apply_replicated(&op, requester, at)
    }

    /// Applies one replicated operation (every node, in log order).
    pub fn apply_replicated(
        self: &Arc<Self>,
        op: &DefinitionOp,
        requester: Requester,
        at: ApplyAt,
    ) -> Result<Applied, AmqpError> {
        let connection = requester.connection_on(at.here);
        match op {
            DefinitionOp::DeclareExchange {
                name,
                type_name,
                durable,
                auto_delete,
                internal,
                arguments,
            } => self
                .declare_exchange(
                    name,
                    type_name,
                    false,
                    *durable,
                    *auto_delete,
                    *internal,
                    &arguments.0,
                )
                .map(|()| Applied::Done),
            DefinitionOp::DeleteExchange { name, if_unused } => self
                .delete_exchange(name, *if_unused)
                .map(|()| Applied::Done),
            DefinitionOp::Bind {
                source,
                destination,
                routing_key,
                arguments,
            } => {
                self.check_remote_end(source, destination, requester)?;
                self.bind(
                    source,
                    destination.into(),
                    routing_key,
                    &arguments.0,
                    connection,
                )
                .map(|()| Applied::Done)
            }
            DefinitionOp::Unbind {
                source,
                destination,
                routing_key,
                arguments,
            } => {
                let dest: Destination = destination.into();
                if let BindTo::Queue(q) = destination
                    && let Some(remote) = self.remote_queue(q)
                    && let Err(locked) = remote.check_exclusive(requester, &self.name)
                {
                    // In `unbind`'s order: the default exchange, a missing source, then
                    // refused only if the binding exists.
                    super::bindings::check_not_default(source, &dest)?;
                    let Some(x) = self.exchange(source) else {
                        return Ok(Applied::Done);
                    };
                    return super::bindings::refused_if_bound(
                        &x,
                        &dest,
                        routing_key,
                        &arguments.0,
                        locked,
                    )
                    .map(|()| Applied::Done);
                }
                self.unbind(source, dest, routing_key, &arguments.0, connection)
                    .map(|()| Applied::Done)
            }
            DefinitionOp::DeclareQueue {
                name,
                durable,
                exclusive,
                auto_delete,
                server_named,
                arguments,
                home,
                id,
                members,
            } => {
                let req = QueueDeclare {
                    name: name.clone(),
                    passive: false,
                    durable: *durable,
                    exclusive: *exclusive,
                    auto_delete: *auto_delete,
                    server_named: *server_named,
                    quorum: None,
                    arguments: arguments.0.clone(),
                };
                // The log index names a queue's store id; a single node takes a fresh one.
                let id = id.or((at.index != 0).then_some(at.index));
                self.apply_declare_queue(&req, *home, members, id, requester, at)
            }
            DefinitionOp::DeleteQueue { name, id } => Ok(self.apply_delete_queue(name, *id)),
            DefinitionOp::QueueMembers { name, id, members } => {
                self.apply_queue_members(name, *id, members, at.here);
                Ok(Applied::Done)
            }
        }
    }

    /// A bind whose destination queue lives elsewhere: 405 unless the requester may use it.
    fn check_remote_end(
        &self,
        source: &str,
        destination: &BindTo,
        requester: Requester,
    ) -> Result<(), AmqpError> {
        if let BindTo::Queue(q) = destination
            && let Some(remote) = self.remote_queue(q)
        {
            // In `bind`'s order: the default exchange, a missing source, then a locked
            // destination.
            super::bindings::check_not_default(source, &destination.into())?;
            self.exchange_or_404(source)?;
            remote.check_exclusive(requester, &self.name)?;
        }
        Ok(())
    }

    fn apply_declare_queue(
        self: &Arc<Self>,
        req: &QueueDeclare,
        home: NodeId,
        members: &[NodeId],
        id: Option<u64>,
        requester: Requester,
        at: ApplyAt,
    ) -> Result<Applied, AmqpError> {
        if let Some(remote) = self.remote_queue(&req.name) {
            remote.check_redeclare(
                requester,
                req.exclusive,
                req.durable,
                req.auto_delete,
                &req.arguments,
                &self.name,
            )?;
            return Ok(declared(&req.name, 0, 0));
        }
        // A quorum queue lives on each of its members.
        let member = members.contains(&at.here);
        if home == at.here || member {
            let mut req = req.clone();
            if !members.is_empty() {
                req.quorum = Some(Placement {
                    home,
                    members: members.to_vec(),
                    added: false,
                });
            }
            let req = &req;
            let connection = requester.connection_on(at.here);
            let (queue, new) = self.declare_queue_with_id(req, connection, id)?;
            if new && id.is_some() && queue.keeps_persistent() {
                // A replay after a restart: the queue's messages are still in the store.
                queue.recover(at.clean);
            }
            return Ok(declared(
                &queue.name,
                queue.message_count(),
                queue.consumer_count(),
            ));
        }
        if let Some(local) = self.queue(&req.name) {
            // A local queue of the name (declared here before): the local rules answer.
            let connection = requester.connection_on(at.here);
            self.declare_queue(req, connection)?;
            return Ok(declared(&local.name, 0, 0));
        }
        let describe = resource("queue", &req.name, &self.name);
        // The checks of the queue's home, in its order, so every node refuses alike.
        if !req.server_named {
            super::check_reserved("queue", &req.name)?;
        }
        self.reserve_queue_slot(&req.name)?;
        if let Err(error) = self.validate_new_queue(req, &describe) {
            self.queue_count.fetch_sub(1, Ordering::AcqRel);
            return Err(error);
        }
        self.remote.insert(
            req.name.as_str().into(),
            Arc::new(RemoteQueue {
                name: req.name.clone(),
                home,
                id: id.unwrap_or_default(),
                durable: req.durable,
                auto_delete: req.auto_delete,
                exclusive_owner: req.exclusive.then_some(requester),
                arguments: req.arguments.clone(),
                members: members.to_vec(),
            }),
        );
        Ok(declared(&req.name, 0, 0))
    }

    fn apply_delete_queue(&self, name: &str, id: Option<u64>) -> Applied {
        if let Some(queue) = self.queue(name) {
            if id.is_some_and(|id| id != queue.store_id) {
                return Applied::Done;
            }
            let Deleted {
                message_count,
                consumers,
            } = self.remove_queue(&queue);
            return Applied::QueueDeleted {
                message_count,
                consumers,
            };
        }
        let removed = self
            .remote
            .remove_if(name, |_, r| id.is_none_or(|id| id == r.id));
        let mut consumers = Vec::new();
        if removed.is_some() {
            self.queue_count.fetch_sub(1, Ordering::AcqRel);
            self.remove_bindings_to(&Destination::Queue(name.into()));
            consumers = self.drop_remote_handle(name);
        }
        Applied::QueueDeleted {
            message_count: 0,
            consumers,
        }
    }

    /// Removes a queue this node decided to remove on its own (auto-delete after the last
    /// consumer, `x-expires`): directly on a single node, through the metadata log in a
    /// cluster, in the background (every node then removes it; the consumers here are told
    /// by the apply's answer).
    pub fn retire_queue(&self, queue: &Arc<Queue>) -> Deleted {
        let Some(meta) = self.meta() else {
            return self.remove_queue(queue);
        };
        let submitted = meta.submit(&self.name, ConnectionId(0), delete_op(queue));
        let name = queue.name.clone();
        tokio::spawn(async move {
            match submitted.await {
                Ok(Applied::QueueDeleted { consumers, .. }) => {
                    crate::queue::notify_cancelled(&consumers).await;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(queue = %name, %error, "could not remove a queue through the metadata log");
                }
            }
        });
        Deleted::default()
    }

    /// Removes a queue and waits until it is gone here (through the metadata log in a
    /// cluster): an exclusive owner's close, the management API's delete.
    pub async fn retire_queue_now(&self, queue: &Arc<Queue>) -> Result<Deleted, AmqpError> {
        let Some(meta) = self.meta() else {
            return Ok(self.remove_queue(queue));
        };
        match meta
            .submit(&self.name, ConnectionId(0), delete_op(queue))
            .await?
        {
            Applied::QueueDeleted {
                message_count,
                consumers,
            } => Ok(Deleted {
                message_count,
                consumers,
            }),
            _ => Ok(Deleted::default()),
        }
    }
}

fn delete_op(queue: &Queue) -> DefinitionOp {
    DefinitionOp::DeleteQueue {
        name: queue.name.to_string(),
        id: Some(queue.store_id),
    }
}

fn declared(name: &str, message_count: u32, consumer_count: u32) -> Applied {
    Applied::QueueDeclared {
        name: name.to_owned(),
        message_count,
        consumer_count,
    }
}

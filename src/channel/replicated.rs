//! exchange.* and queue.* on a channel of a clustered vhost: the same permission checks as
//! `declare.rs`, then the change goes through the metadata log (`crate::meta`) and the
//! channel answers with the result of this node's own apply, once a majority has the
//! change. Passive declares read this node's copy. A queue is declared on this node (its
//! home); other nodes keep its record.

use std::sync::Arc;

use warren_codec::protocol::{AMQPClass, exchange, queue};
use warren_codec::types::{FieldTable, ShortString};

use super::declare::generated_name;
use super::{Channel, reply_to};
use crate::auth::{Kind, Permission};
use crate::error::AmqpError;
use crate::meta::{Applied, Arguments, BindTo, DefinitionOp, MetaLog};

impl Channel {
    async fn submit(
        &self,
        meta: &Arc<dyn MetaLog>,
        op: DefinitionOp,
    ) -> Result<Applied, AmqpError> {
        meta.submit(&self.conn.vhost.name, self.conn.id, op).await
    }

    /// exchange.* through the metadata log.
    pub(super) async fn on_exchange_method_replicated(
        &mut self,
        meta: Arc<dyn MetaLog>,
        method: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = self.conn.vhost.clone();
        let (reply, nowait) = match method {
            exchange::AMQPMethod::Declare(m) if m.passive => {
                vhost.declare_exchange(
                    m.exchange.as_str(),
                    "",
                    true,
                    false,
                    false,
                    false,
                    &FieldTable::default(),
                )?;
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    m.nowait,
                )
            }
            exchange::AMQPMethod::Declare(m) => {
                let (name, kind) = (m.exchange.as_str(), m.kind.as_str());
                self.conn.access.exchange_declare(
                    vhost.exchange(name).is_some(),
                    name,
                    kind,
                    &m.arguments,
                )?;
                let op = DefinitionOp::DeclareExchange {
                    name: name.to_owned(),
                    type_name: kind.to_owned(),
                    durable: m.durable,
                    auto_delete: m.auto_delete,
                    internal: m.internal,
                    arguments: Arguments(m.arguments),
                };
                self.submit(&meta, op).await?;
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    m.nowait,
                )
            }
            exchange::AMQPMethod::Delete(m) => {
                self.conn.access.exchange_delete(m.exchange.as_str())?;
                let op = DefinitionOp::DeleteExchange {
                    name: m.exchange.to_string(),
                    if_unused: m.if_unused,
                };
                self.submit(&meta, op).await?;
                (
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                    m.nowait,
                )
            }
            exchange::AMQPMethod::Bind(m) => {
                let (source, dest) = (m.source.as_str(), m.destination.as_str());
                self.conn.access.binding(Kind::Exchange, dest, source)?;
                let op = DefinitionOp::Bind {
                    source: source.to_owned(),
                    destination: BindTo::Exchange(dest.to_owned()),
                    routing_key: m.routing_key.to_string(),
                    arguments: Arguments(m.arguments),
                };
                self.submit(&meta, op).await?;
                (exchange::AMQPMethod::BindOk(exchange::BindOk {}), m.nowait)
            }
            exchange::AMQPMethod::Unbind(m) => {
                let (source, dest) = (m.source.as_str(), m.destination.as_str());
                self.conn.access.binding(Kind::Exchange, dest, source)?;
                let op = DefinitionOp::Unbind {
                    source: source.to_owned(),
                    destination: BindTo::Exchange(dest.to_owned()),
                    routing_key: m.routing_key.to_string(),
                    arguments: Arguments(m.arguments),
                };
                self.submit(&meta, op).await?;
                (
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                    m.nowait,
                )
            }
            other => return Err(super::unhandled(&AMQPClass::Exchange(other))),
        };
        if !nowait {
            self.reply(AMQPClass::Exchange(reply)).await;
        }
        Ok(())
    }

    /// queue.* through the metadata log (purge acts on the local queue).
    pub(super) async fn on_queue_method_replicated(
        &mut self,
        meta: Arc<dyn MetaLog>,
        method: queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = self.conn.vhost.clone();
        let conn = self.conn.id;
        let (reply, nowait) = match method {
            queue::AMQPMethod::Declare(m) if reply_to::is_reply_queue_name(m.queue.as_str()) => {
                let ok = self.declare_reply_queue(m.queue.as_str())?;
                (queue::AMQPMethod::DeclareOk(ok), m.nowait)
            }
            queue::AMQPMethod::Declare(m) if m.passive => {
                let name = m.queue.as_str();
                let (name, message_count, consumer_count) = match vhost.remote_queue(name) {
                    Some(remote) => {
                        remote.check_exclusive(self.requester(&meta), &vhost.name)?;
                        let (messages, consumers) = meta
                            .counts_at(remote.home, &vhost.name, &remote.name)
                            .await?;
                        (remote.name.clone(), messages, consumers)
                    }
                    None => {
                        let queue = vhost.queue_for(name, conn)?;
                        queue.touch();
                        (
                            queue.name.to_string(),
                            queue.message_count(),
                            queue.consumer_count(),
                        )
                    }
                };
                self.last_queue = name.clone();
                let ok = declare_ok(&name, message_count, consumer_count);
                (queue::AMQPMethod::DeclareOk(ok), m.nowait)
            }
            queue::AMQPMethod::Declare(m) => {
                let name = match m.queue.as_str() {
                    "" => generated_name("amq.gen-"),
                    name => name.to_owned(),
                };
                let exists = vhost.queue(&name).is_some() || vhost.remote_queue(&name).is_some();
                self.conn
                    .access
                    .queue_declare(exists, &name, &m.arguments)?;
                let op = DefinitionOp::DeclareQueue {
                    name,
                    durable: m.durable,
                    exclusive: m.exclusive,
                    auto_delete: m.auto_delete,
                    server_named: m.queue.as_str().is_empty(),
                    arguments: Arguments(m.arguments),
                    home: meta.node(),
                    id: None,
                    members: Vec::new(),
                };
                let Applied::QueueDeclared {
                    name,
                    message_count,
                    consumer_count,
                } = self.submit(&meta, op).await?
                else {
                    return Err(AmqpError::internal_error(
                        "queue.declare applied as something else",
                    ));
                };
                self.last_queue = name.clone();
                let ok = declare_ok(&name, message_count, consumer_count);
                (queue::AMQPMethod::DeclareOk(ok), m.nowait)
            }
            queue::AMQPMethod::Bind(m) => {
                let (name, key) = self.queue_binding(&m.queue, &m.routing_key, &m.exchange)?;
                let op = DefinitionOp::Bind {
                    source: m.exchange.to_string(),
                    destination: BindTo::Queue(name),
                    routing_key: key,
                    arguments: Arguments(m.arguments),
                };
                self.submit(&meta, op).await?;
                (queue::AMQPMethod::BindOk(queue::BindOk {}), m.nowait)
            }
            queue::AMQPMethod::Unbind(m) => {
                let (name, key) = self.queue_binding(&m.queue, &m.routing_key, &m.exchange)?;
                let op = DefinitionOp::Unbind {
                    source: m.exchange.to_string(),
                    destination: BindTo::Queue(name),
                    routing_key: key,
                    arguments: Arguments(m.arguments),
                };
                self.submit(&meta, op).await?;
                (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
            }
            queue::AMQPMethod::Purge(m) => (self.purge(&m.queue).await?, m.nowait),
            queue::AMQPMethod::Delete(m) => {
                let name = self.queue_name(&m.queue)?;
                self.conn
                    .access
                    .check(Permission::Configure, Kind::Queue, &name)?;
                // The conditions are the home node's figures: asked there for a remote
                // queue (its count is what delete-ok reports).
                let mut remote_count = None;
                let id = if let Some(remote) = vhost.remote_queue(&name) {
                    remote.check_exclusive(self.requester(&meta), &vhost.name)?;
                    let (messages, consumers) = meta
                        .counts_at(remote.home, &vhost.name, &remote.name)
                        .await?;
                    let describe = crate::names::resource("queue", &name, &vhost.name);
                    crate::queue::deletable(
                        &describe,
                        m.if_unused,
                        m.if_empty,
                        consumers,
                        messages,
                    )?;
                    remote_count = Some(messages);
                    Some(remote.id)
                } else if let Some(queue) = vhost.queue(&name) {
                    queue.check_exclusive(conn)?;
                    queue.check_deletable(m.if_unused, m.if_empty)?;
                    Some(queue.store_id)
                } else {
                    None
                };
                let (message_count, consumers) = match id {
                    None => (0, Vec::new()),
                    Some(id) => match self
                        .submit(&meta, DefinitionOp::DeleteQueue { name, id: Some(id) })
                        .await?
                    {
                        Applied::QueueDeleted {
                            message_count,
                            consumers,
                        } => (remote_count.unwrap_or(message_count), consumers),
                        _ => (0, Vec::new()),
                    },
                };
                // As RabbitMQ: delete-ok first, then the consumers' basic.cancel.
                if !m.nowait {
                    let ok = queue::DeleteOk { message_count };
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)))
                        .await;
                }
                crate::queue::notify_cancelled(&consumers).await;
                return Ok(());
            }
            other => return Err(super::unhandled(&AMQPClass::Queue(other))),
        };
        if !nowait {
            self.reply(AMQPClass::Queue(reply)).await;
        }
        Ok(())
    }

    /// This channel's connection as the metadata log names it.
    fn requester(&self, meta: &Arc<dyn MetaLog>) -> crate::meta::Requester {
        crate::meta::Requester {
            node: meta.node(),
            connection: self.conn.id.0,
        }
    }
}

fn declare_ok(name: &str, message_count: u32, consumer_count: u32) -> queue::DeclareOk {
    queue::DeclareOk {
        queue: ShortString::try_new(name.to_owned()).unwrap_or_default(),
        message_count,
        consumer_count,
    }
}

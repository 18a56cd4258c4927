//! exchange.* and queue.* on a channel: the vhost applies the rules, the channel
//! answers (unless nowait) and remembers the last declared queue for the
//! empty-name shortcut.

use warren_codec::protocol::{AMQPClass, exchange, queue};
use warren_codec::types::ShortString;

use super::{Channel, reply_to};
use crate::auth::{Kind, Permission};
use crate::error::AmqpError;
use crate::vhost::{Destination, QueueDeclare};

impl Channel {
    pub(super) async fn on_exchange_method(
        &mut self,
        method: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = self.conn.vhost.clone();
        if let Some(meta) = vhost.meta() {
            return self
                .on_exchange_method_replicated(meta.clone(), method)
                .await;
        }
        let conn = self.conn.id;
        let writes = vhost.storage.writes();
        let (reply, nowait) = match method {
            exchange::AMQPMethod::Declare(m) => {
                if !m.passive {
                    let (name, kind) = (m.exchange.as_str(), m.kind.as_str());
                    self.conn.access.exchange_declare(
                        vhost.exchange(name).is_some(),
                        name,
                        kind,
                        &m.arguments,
                    )?;
                }
                vhost.declare_exchange(
                    m.exchange.as_str(),
                    m.kind.as_str(),
                    m.passive,
                    m.durable,
                    m.auto_delete,
                    m.internal,
                    &m.arguments,
                )?;
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    m.nowait,
                )
            }
            exchange::AMQPMethod::Delete(m) => {
                self.conn.access.exchange_delete(m.exchange.as_str())?;
                vhost.delete_exchange(m.exchange.as_str(), m.if_unused)?;
                (
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                    m.nowait,
                )
            }
            exchange::AMQPMethod::Bind(m) => {
                let (source, dest) = (m.source.as_str(), m.destination.as_str());
                self.conn.access.binding(Kind::Exchange, dest, source)?;
                let destination = Destination::Exchange(m.destination.as_str().into());
                vhost.bind(
                    m.source.as_str(),
                    destination,
                    m.routing_key.as_str(),
                    &m.arguments,
                    conn,
                )?;
                (exchange::AMQPMethod::BindOk(exchange::BindOk {}), m.nowait)
            }
            exchange::AMQPMethod::Unbind(m) => {
                let (source, dest) = (m.source.as_str(), m.destination.as_str());
                self.conn.access.binding(Kind::Exchange, dest, source)?;
                let destination = Destination::Exchange(m.destination.as_str().into());
                vhost.unbind(
                    m.source.as_str(),
                    destination,
                    m.routing_key.as_str(),
                    &m.arguments,
                    conn,
                )?;
                (
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                    m.nowait,
                )
            }
            other => return Err(super::unhandled(&AMQPClass::Exchange(other))),
        };
        // A durable definition is on disk before the client hears of it.
        if vhost.storage.writes() != writes {
            vhost.storage.commit().await?;
        }
        if !nowait {
            self.reply(AMQPClass::Exchange(reply)).await;
        }
        Ok(())
    }

    /// The queue a method names: the empty name means the last one declared here.
    pub(super) fn queue_name(&self, name: &ShortString) -> Result<String, AmqpError> {
        if !name.as_str().is_empty() {
            return Ok(name.to_string());
        }
        if self.last_queue.is_empty() {
            return Err(AmqpError::not_found("no previously declared queue"));
        }
        Ok(self.last_queue.clone())
    }

    pub(super) async fn on_queue_method(
        &mut self,
        method: queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let vhost = self.conn.vhost.clone();
        if let Some(meta) = vhost.meta() {
            return self.on_queue_method_replicated(meta.clone(), method).await;
        }
        let conn = self.conn.id;
        let writes = vhost.storage.writes();
        let (reply, nowait) = match method {
            queue::AMQPMethod::Declare(m) if reply_to::is_reply_queue_name(m.queue.as_str()) => {
                let ok = self.declare_reply_queue(m.queue.as_str())?;
                (queue::AMQPMethod::DeclareOk(ok), m.nowait)
            }
            queue::AMQPMethod::Declare(m) => {
                let name = match m.queue.as_str() {
                    // A passive declare looks the name up as given: RabbitMQ expands
                    // no empty-name shortcut there (404 for queue '').
                    "" if !m.passive => generated_name("amq.gen-"),
                    name => name.to_owned(),
                };
                if !m.passive {
                    self.conn.access.queue_declare(
                        vhost.queue(&name).is_some(),
                        &name,
                        &m.arguments,
                    )?;
                }
                let req = QueueDeclare {
                    name,
                    passive: m.passive,
                    durable: m.durable,
                    exclusive: m.exclusive,
                    auto_delete: m.auto_delete,
                    server_named: !m.passive && m.queue.as_str().is_empty(),
                    quorum: None,
                    arguments: m.arguments,
                };
                let (queue, _) = vhost.declare_queue(&req, conn)?;
                self.last_queue = queue.name.to_string();
                let ok = queue::DeclareOk {
                    queue: ShortString::try_new(queue.name.clone()).unwrap_or_default(),
                    message_count: queue.message_count(),
                    consumer_count: queue.consumer_count(),
                };
                (queue::AMQPMethod::DeclareOk(ok), m.nowait)
            }
            queue::AMQPMethod::Bind(m) => {
                let (name, key) = self.queue_binding(&m.queue, &m.routing_key, &m.exchange)?;
                vhost.bind(
                    m.exchange.as_str(),
                    Destination::Queue(name.into()),
                    &key,
                    &m.arguments,
                    conn,
                )?;
                (queue::AMQPMethod::BindOk(queue::BindOk {}), m.nowait)
            }
            queue::AMQPMethod::Unbind(m) => {
                let (name, key) = self.queue_binding(&m.queue, &m.routing_key, &m.exchange)?;
                vhost.unbind(
                    m.exchange.as_str(),
                    Destination::Queue(name.into()),
                    &key,
                    &m.arguments,
                    conn,
                )?;
                (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
            }
            queue::AMQPMethod::Purge(m) => (self.purge(&m.queue).await?, m.nowait),
            queue::AMQPMethod::Delete(m) => {
                let name = self.queue_name(&m.queue)?;
                self.conn
                    .access
                    .check(Permission::Configure, Kind::Queue, &name)?;
                let deleted = vhost.delete_queue(&name, m.if_unused, m.if_empty, conn)?;
                if vhost.storage.writes() != writes {
                    vhost.storage.commit().await?;
                }
                let ok = queue::DeleteOk {
                    message_count: deleted.message_count,
                };
                // As RabbitMQ: delete-ok first, then the consumers' basic.cancel
                // (clients waiting for delete-ok fail on a cancel before it).
                if !m.nowait {
                    self.reply(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)))
                        .await;
                }
                crate::queue::notify_cancelled(&deleted.consumers).await;
                return Ok(());
            }
            other => return Err(super::unhandled(&AMQPClass::Queue(other))),
        };
        // A durable definition is on disk before the client hears of it.
        if vhost.storage.writes() != writes {
            vhost.storage.commit().await?;
        }
        if !nowait {
            self.reply(AMQPClass::Queue(reply)).await;
        }
        Ok(())
    }

    /// queue.purge (at the queue's home when it lives on another cluster node).
    pub(super) async fn purge(
        &mut self,
        queue: &ShortString,
    ) -> Result<queue::AMQPMethod, AmqpError> {
        let name = self.queue_name(queue)?;
        self.conn
            .access
            .check(Permission::Read, Kind::Queue, &name)?;
        let queue = self.conn.vhost.queue_or_remote(&name, self.conn.id)?;
        if queue.is_stream() {
            return Err(queue.not_for_streams("queue.purge"));
        }
        let message_count = if queue.remote_backend().is_some() {
            self.purge_remote(&queue).await?
        } else if queue.quorum().is_some() {
            self.purge_quorum(&queue).await?
        } else {
            queue.purge()
        };
        Ok(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count }))
    }

    /// queue.bind / queue.unbind: the queue (the empty name is the last declared), the
    /// key (with RabbitMQ's shortcut), once the user may bind it to `exchange`.
    pub(super) fn queue_binding(
        &mut self,
        queue: &ShortString,
        routing_key: &ShortString,
        exchange: &ShortString,
    ) -> Result<(String, String), AmqpError> {
        let name = self.queue_name(queue)?;
        let key = self.routing_key_shortcut(queue, routing_key.as_str());
        self.conn
            .access
            .binding(Kind::Queue, &name, exchange.as_str())?;
        Ok((name, key))
    }

    /// RabbitMQ's shortcut: empty queue and empty routing key bind with the last
    /// declared queue's name as the key.
    fn routing_key_shortcut(&self, queue: &ShortString, key: &str) -> String {
        if queue.as_str().is_empty() && key.is_empty() {
            self.last_queue.clone()
        } else {
            key.to_owned()
        }
    }
}

/// `amq.gen-` / `amq.ctag-` followed by 22 url-safe base64 characters, as RabbitMQ names them.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = uuid::Uuid::new_v4().as_u128();
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    for i in 0..22 {
        name.push(char::from(ALPHABET[((bits >> (i * 6)) & 63) as usize]));
    }
    name
}

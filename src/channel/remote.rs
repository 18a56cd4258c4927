//! basic.consume, basic.get and queue.purge of a queue that lives on another cluster node
//! (issue 18, step 5) or is a quorum queue (step 7): the channel waits for the queue's
//! home or Raft group and answers its client as for a local queue. Settles need nothing
//! here: the queue's engine sends them on (`queue/remote.rs`, `queue/quorum/live.rs`).

use std::sync::Arc;

use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::ShortString;

use super::Channel;
use crate::error::AmqpError;
use crate::meta::{Arguments, MetaLog, RemoteConsume};
use crate::queue::delivery::{Delivery, DeliveryKind, DeliverySink, Refused, Unacked};
use crate::queue::quorum::live::GetRefused;
use crate::queue::quorum::no_majority;
use crate::queue::remote::SinkKey;
use crate::queue::{Consumer, Queue, Return};

impl Channel {
    fn home_of(&self, queue: &Queue) -> Result<(Arc<dyn MetaLog>, crate::meta::NodeId), AmqpError> {
        match (self.conn.vhost.meta(), queue.remote_backend()) {
            (Some(meta), Some(remote)) => Ok((meta.clone(), remote.home)),
            _ => Err(AmqpError::internal_error(format!(
                "{} has no home node",
                queue.describe()
            ))),
        }
    }

    /// basic.consume of a remote queue: registered here (receiving nothing yet), taken by
    /// the home's queue, then consume-ok, then deliveries.
    pub(super) async fn consume_remote(
        &mut self,
        m: &basic::Consume,
        queue: Arc<Queue>,
        consumer: Arc<Consumer>,
    ) -> Result<(), AmqpError> {
        let (meta, home) = self.home_of(&queue)?;
        let tag = consumer.tag.clone();
        let sink = SinkKey::of(self.shared.as_ref());
        let consume = RemoteConsume {
            queue: queue.name.to_string(),
            sink,
            tag: tag.to_string(),
            no_ack: consumer.no_ack,
            exclusive: consumer.exclusive,
            prefetch: consumer.credit.prefetch,
            priority: consumer.priority,
            arguments: Arguments(m.arguments.clone()),
        };
        self.shared
            .consumers
            .lock()
            .insert(tag.clone(), queue.clone());
        queue.add_remote_consumer(consumer);
        if let Err(error) = meta.consume_at(home, &self.conn.vhost.name, consume).await {
            queue.forget_remote_consumer(sink, &tag);
            self.shared.consumers.lock().remove(&tag);
            return Err(error);
        }
        if !m.nowait {
            self.reply(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: ShortString::try_new(tag.to_string()).unwrap_or_default(),
                },
            )))
            .await;
        }
        queue.activate_remote_consumer(self.shared.as_ref(), &tag);
        Ok(())
    }

    /// basic.get of a remote queue: the home takes the message and holds it for this
    /// channel until it is settled.
    pub(super) async fn get_remote(
        &mut self,
        queue: Arc<Queue>,
        no_ack: bool,
    ) -> Result<(), AmqpError> {
        let (meta, home) = self.home_of(&queue)?;
        let sink = SinkKey::of(self.shared.as_ref());
        let got = meta
            .get_at(home, &self.conn.vhost.name, &queue.name, sink, no_ack)
            .await?;
        let Some(got) = got else {
            self.get_empty().await;
            return Ok(());
        };
        self.hand_over_get(queue, got, no_ack).await;
        Ok(())
    }

    /// Sends a get-ok for `got`, waiting for room; if the connection goes first, the
    /// queue takes the message back.
    async fn hand_over_get(&self, queue: Arc<Queue>, got: crate::meta::RemoteGot, no_ack: bool) {
        let mut message = got.message;
        loop {
            let delivery = Delivery {
                kind: DeliveryKind::Get {
                    message_count: got.message_count,
                },
                message,
                redelivered: got.redelivered,
                live: None,
            };
            let unacked = got.seq.filter(|_| !no_ack).map(|seq| Unacked {
                queue: queue.clone(),
                seq,
                consumer: None,
                delivered_at: 0,
            });
            match self.shared.try_deliver(delivery, unacked) {
                Ok(_) => return,
                Err(undelivered) if undelivered.refused == Refused::Full => {
                    message = undelivered.message;
                    if !self.shared.room().await {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if let Some(seq) = got.seq {
            queue.requeue([seq], Return::Failed);
        }
    }

    /// queue.purge of a remote queue, at its home.
    pub(super) async fn purge_remote(&self, queue: &Queue) -> Result<u32, AmqpError> {
        let (meta, home) = self.home_of(queue)?;
        meta.purge_at(home, &self.conn.vhost.name, &queue.name)
            .await
    }

    /// basic.consume of a quorum queue: checked out in its log, then consume-ok, then
    /// deliveries (from this node's own apply of the log).
    pub(super) async fn consume_quorum(
        &mut self,
        m: &basic::Consume,
        queue: Arc<Queue>,
        consumer: Arc<Consumer>,
    ) -> Result<(), AmqpError> {
        let Some(quorum) = queue.quorum().cloned() else {
            return Err(AmqpError::internal_error("not a quorum queue"));
        };
        let tag = consumer.tag.clone();
        self.shared
            .consumers
            .lock()
            .insert(tag.clone(), queue.clone());
        let Ok(key) = quorum.consume(consumer).await else {
            self.shared.consumers.lock().remove(&tag);
            return Err(no_majority(&queue));
        };
        if !m.nowait {
            self.reply(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: ShortString::try_new(tag.to_string()).unwrap_or_default(),
                },
            )))
            .await;
        }
        quorum.activate(&key);
        Ok(())
    }

    /// basic.get of a quorum queue.
    pub(super) async fn get_quorum(
        &mut self,
        queue: Arc<Queue>,
        no_ack: bool,
    ) -> Result<(), AmqpError> {
        let Some(quorum) = queue.quorum().cloned() else {
            return Err(AmqpError::internal_error("not a quorum queue"));
        };
        let got = match quorum.get(self.shared.as_ref(), no_ack).await {
            Ok(got) => got,
            Err(GetRefused::SingleActiveConsumer) => {
                return Err(AmqpError::precondition_failed(format!(
                    "{} has single active consumer enabled: basic.get is not supported",
                    queue.describe()
                )));
            }
            Err(GetRefused::NoLeader) => return Err(no_majority(&queue)),
            Err(GetRefused::BodyUnreadable) => {
                return Err(crate::queue::quorum::consumers::body_unreadable(&queue));
            }
        };
        let Some((id, message, redelivered, ready)) = got else {
            self.get_empty().await;
            return Ok(());
        };
        let got = crate::meta::RemoteGot {
            seq: (!no_ack).then_some(id.0),
            redelivered,
            message_count: u32::try_from(ready).unwrap_or(u32::MAX),
            message,
        };
        self.hand_over_get(queue, got, no_ack).await;
        Ok(())
    }

    /// queue.purge of a quorum queue.
    pub(super) async fn purge_quorum(&self, queue: &Queue) -> Result<u32, AmqpError> {
        let Some(quorum) = queue.quorum() else {
            return Ok(0);
        };
        match quorum.purge().await {
            Some(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
            None => Err(no_majority(queue)),
        }
    }
}

//! basic.consume, basic.get and queue.purge of a queue that lives on another cluster node
//! (issue 18, step 5): the channel asks the queue's home through the vhost's metadata log
//! and answers its client as for a local queue. Settles need nothing here: the queue's
//! handle sends them home (`queue/remote.rs`).

use std::sync::Arc;

use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::ShortString;

use super::Channel;
use crate::error::AmqpError;
use crate::meta::{Arguments, MetaLog, RemoteConsume};
use crate::queue::delivery::{Delivery, DeliveryKind, DeliverySink, Refused, Unacked};
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
            self.conn.global.get_empty.incr();
            self.shared.counters.get_empty.incr();
            self.reply(AMQPClass::Basic(basic::AMQPMethod::GetEmpty(
                basic::GetEmpty {},
            )))
            .await;
            return Ok(());
        };
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
                Ok(_) => return Ok(()),
                Err(undelivered) if undelivered.refused == Refused::Full => {
                    message = undelivered.message;
                    if !self.shared.room().await {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // The connection is going: the home takes it back.
        if let Some(seq) = got.seq {
            queue.requeue([seq], Return::Failed);
        }
        Ok(())
    }

    /// queue.purge of a remote queue, at its home.
    pub(super) async fn purge_remote(&self, queue: &Queue) -> Result<u32, AmqpError> {
        let (meta, home) = self.home_of(queue)?;
        meta.purge_at(home, &self.conn.vhost.name, &queue.name)
            .await
    }
}

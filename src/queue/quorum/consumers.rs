//! A quorum queue's consumers on this member node: basic.consume (checked out in the log,
//! then consume-ok, then deliveries), cancel, a channel's release, settles mapped to the
//! consumer each delivery went to, and basic.get.

use std::collections::VecDeque;
use std::sync::Arc;

use super::fifo::{Command, ConsumerKey, MsgId, Settlement as Dequeue};
use super::live::{Local, QuorumQueue, wall_clock_ms, with_count};
use super::machine::QuorumReply;
use crate::message::Message;
use crate::queue::delivery::DeliverySink;
use crate::queue::{Consumer, Queue, SeqId};

impl QuorumQueue {
    /// basic.consume: registered here first (deliveries wait for consume-ok), then
    /// checked out in the log.
    pub async fn consume(self: &Arc<Self>, consumer: Arc<Consumer>) -> Result<ConsumerKey, ()> {
        self.checkout(consumer).await
    }

    /// basic.consume in two halves: the consumer is registered and its checkout queued
    /// behind this node's earlier writes now (a request read after this one cannot
    /// overtake it); the returned future waits for the log to take it.
    pub fn checkout(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
    ) -> impl Future<Output = Result<ConsumerKey, ()>> + Send + 'static {
        let key = self.key(consumer.sink.as_ref(), &consumer.tag);
        let checkout = Command::Checkout {
            key: key.clone(),
            prefetch: u32::from(consumer.credit.prefetch),
            priority: consumer.priority,
            resume: None,
        };
        self.locals.lock().insert(
            key.clone(),
            Local {
                consumer,
                active: false,
                backlog: VecDeque::new(),
                draining: false,
                checked_out_at: None,
            },
        );
        let taken = self.ask_in_order(checkout);
        let this = self.clone();
        async move {
            match taken.await {
                Some((index, QuorumReply::Ok)) => {
                    if let Some(local) = this.locals.lock().get_mut(&key) {
                        local.checked_out_at = Some(index);
                    }
                    Ok(key)
                }
                _ => {
                    this.locals.lock().remove(&key);
                    Err(())
                }
            }
        }
    }

    /// Consume-ok went out: deliveries flow.
    pub fn activate(&self, key: &ConsumerKey) {
        let mut locals = self.locals.lock();
        if let Some(local) = locals.get_mut(key) {
            local.active = true;
            if !local.draining {
                self.drain(key, local);
            }
        }
    }

    /// Whether the queue was deleted (its group must not start again).
    pub fn deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The queue is deleted: its group stops here, and this node's consumers end
    /// (returned, to be told).
    pub(crate) fn delete(&self) -> Vec<Arc<Consumer>> {
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
        self.log.remove(self.group);
        self.drop_local_consumers()
    }

    /// This node's consumers end (returned, to be told).
    fn drop_local_consumers(&self) -> Vec<Arc<Consumer>> {
        self.locals
            .lock()
            .drain()
            .map(|(_, local)| local.consumer)
            .collect()
    }

    /// basic.cancel.
    pub(crate) fn cancel(&self, sink: &dyn DeliverySink, tag: &str) {
        let key = self.key(sink, tag);
        if self.locals.lock().remove(&key).is_some() {
            self.submit(Command::Cancel { key });
        }
    }

    /// The channel closes: its consumers go and what it had out returns.
    pub(crate) fn release_channel(&self, queue: &Arc<Queue>, sink: &dyn DeliverySink) {
        let key = self.key(sink, "");
        self.locals
            .lock()
            .retain(|k, _| !(k.connection == key.connection && k.channel == key.channel));
        let seqs = sink.take_unacked_from(queue);
        {
            let mut delivered = self.delivered.lock();
            for seq in seqs {
                delivered.remove(&MsgId(seq));
            }
        }
        self.submit(Command::ChannelDown {
            node: key.node,
            connection: key.connection,
            channel: key.channel,
        });
    }

    /// Settles deliveries this node's channels got.
    pub(crate) fn settle(&self, seqs: impl IntoIterator<Item = SeqId>, how: Settle) {
        let mut by_key: Vec<(ConsumerKey, Vec<MsgId>)> = Vec::new();
        {
            let mut delivered = self.delivered.lock();
            for seq in seqs {
                let id = MsgId(seq);
                if let Some(key) = delivered.remove(&id) {
                    match by_key.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ids)) => ids.push(id),
                        None => by_key.push((key, vec![id])),
                    }
                }
            }
        }
        for (key, ids) in by_key {
            self.submit(match how {
                Settle::Ack => Command::Settle { key, ids },
                Settle::Reject => Command::Discard { key, ids },
                // Every requeue counts as a delivery, as on RabbitMQ 3.x to 4.2 quorum
                // queues (4.3 stops counting basic.nack's).
                Settle::Requeue { .. } => Command::Return {
                    key,
                    ids,
                    failed: true,
                },
            });
        }
    }

    /// basic.get for `sink`: the message, its delivery count, whether it was delivered
    /// before and how many are left; `None` when empty. Err(()) when the log did not
    /// answer; Ok(Err) for a queue basic.get does not serve (single active consumer).
    pub async fn get(
        self: &Arc<Self>,
        sink: &dyn DeliverySink,
        no_ack: bool,
    ) -> Result<Option<Got>, GetRefused> {
        self.dequeue(sink, no_ack).await
    }

    /// basic.get in two halves, as [`QuorumQueue::checkout`]: the dequeue is queued behind
    /// this node's earlier writes (a settle of the channel's last get included) now.
    pub fn dequeue(
        self: &Arc<Self>,
        sink: &dyn DeliverySink,
        no_ack: bool,
    ) -> impl Future<Output = Result<Option<Got>, GetRefused>> + Send + 'static {
        let key = self.key(sink, "amq.get");
        let command = Command::Dequeue {
            key: key.clone(),
            settlement: if no_ack {
                Dequeue::Settled
            } else {
                Dequeue::Unsettled
            },
            ts: wall_clock_ms(),
        };
        let taken = self.ask_in_order(command);
        let this = self.clone();
        async move {
            let (_, reply) = taken.await.ok_or(GetRefused::NoLeader)?;
            match reply {
                QuorumReply::Empty => Ok(None),
                QuorumReply::Unsupported => Err(GetRefused::SingleActiveConsumer),
                QuorumReply::BodyUnreadable => Err(GetRefused::BodyUnreadable),
                QuorumReply::Dequeued {
                    id,
                    delivery_count,
                    redelivered,
                    ready,
                    message,
                } => {
                    let Some(message) = message.to_message() else {
                        return Ok(None);
                    };
                    if !no_ack {
                        this.delivered.lock().insert(id, key);
                    }
                    Ok(Some((
                        id,
                        with_count(message, delivery_count),
                        redelivered,
                        ready,
                    )))
                }
                _ => Err(GetRefused::NoLeader),
            }
        }
    }
}

/// What basic.get took: its id, the message (delivery count set), whether it was
/// delivered before, and how many are left ready.
pub type Got = (MsgId, Arc<Message>, bool, u64);

/// Why basic.get was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetRefused {
    /// No leader answered in time.
    NoLeader,
    /// The queue has single active consumer on (RabbitMQ refuses basic.get there too).
    SingleActiveConsumer,
    /// The leader could not read the message's body back from its spill file (logged).
    BodyUnreadable,
}

/// The channel error for [`GetRefused::BodyUnreadable`].
pub fn body_unreadable(queue: &crate::queue::Queue) -> crate::error::AmqpError {
    crate::error::AmqpError::internal_error(format!(
        "basic.get from {}: the message's body could not be read from disk",
        queue.describe()
    ))
}

/// How deliveries are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// basic.ack.
    Ack,
    /// Without requeue: dead-lettered or dropped.
    Reject,
    /// Back to the head.
    Requeue {
        /// Counts against the delivery limit.
        failed: bool,
    },
}

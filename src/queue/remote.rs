//! The queue-type seam's engine for a queue that lives on another cluster node (issue 18,
//! step 5): `Backend::Remote`. A channel here consumes, gets and settles through this
//! handle as through a local queue; the queue's home runs the real queue, with a proxy
//! sink standing for the channel, and sends deliveries here.
//!
//! The handle keeps this node's consumers of the queue (the channels' side: tags, credit
//! for the channel's own bookkeeping) and hands settles, cancels and channel releases to
//! the [`HomeLink`], which sends them to the home in order. Prefetch is enforced on the
//! home (the home's consumer has the same prefetch); a channel-wide prefetch
//! (basic.qos global) is not, across nodes.

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::delivery::{Delivery, DeliveryKind, DeliverySink, Refused, Unacked, same_sink};
use super::host::QueueHost;
use super::kind::{Backend, QueueType};
use super::{Consumer, Queue, QueueSpec, Return, SeqId};
use crate::message::Message;
use crate::names::{ConsumerTag, NodeId, QueueName, VHostName};

/// A channel of this node, as the queue's home knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SinkKey {
    /// The channel's connection on its node.
    pub connection: u64,
    /// The channel number.
    pub channel: u16,
}

impl SinkKey {
    /// The key of `sink`.
    pub fn of(sink: &dyn DeliverySink) -> Self {
        Self {
            connection: sink.connection_id().0,
            channel: sink.channel_id(),
        }
    }
}

/// How deliveries are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// basic.ack.
    Ack,
    /// Rejected or nacked without requeue: dead-lettered or dropped.
    Reject,
    /// Put back (`failed`: RabbitMQ counts it as a failed delivery).
    Requeue {
        /// A reject with requeue or a channel closing, not a nack or recover.
        failed: bool,
    },
}

impl Settlement {
    /// A requeue for `why`.
    pub fn requeue(why: Return) -> Self {
        Settlement::Requeue {
            failed: why == Return::Failed,
        }
    }

    /// The return reason of a requeue.
    pub fn why(failed: bool) -> Return {
        if failed {
            Return::Failed
        } else {
            Return::Returned
        }
    }
}

/// What carries a remote queue's settles, cancels and releases to its home, in the order
/// they were made (implemented by the cluster).
pub trait HomeLink: Send + Sync + fmt::Debug {
    /// Settles deliveries `seqs` of `queue` at its home.
    fn settle(&self, queue: &Queue, seqs: Vec<SeqId>, how: Settlement);
    /// basic.cancel of consumer `tag` of channel `sink` at the home.
    fn cancel(&self, queue: &Queue, sink: SinkKey, tag: &ConsumerTag);
    /// Channel `sink` lets go of `queue`: its consumers there end and what it holds goes
    /// back (redelivered).
    fn release(&self, queue: &Queue, sink: SinkKey);
}

/// Whether a consumer of a remote queue may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    /// Its basic.consume is on its way to the home; consume-ok not yet sent.
    Pending,
    /// Consume-ok was sent: deliveries go to the channel.
    Active,
    /// Cancelled or its channel closed: deliveries are refused (the home puts them back).
    Gone,
}

#[derive(Debug)]
struct RemoteConsumer {
    consumer: Arc<Consumer>,
    live: watch::Sender<Live>,
}

/// The engine of a queue living on another node.
#[derive(Debug)]
pub struct RemoteBackend {
    /// The node the queue lives on.
    pub home: NodeId,
    /// What the queue is there.
    pub kind: QueueType,
    link: Arc<dyn HomeLink>,
    consumers: Mutex<Vec<RemoteConsumer>>,
}

impl RemoteBackend {
    /// The name of the engine on its home, as the management API reports a queue's `type`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            QueueType::Stream => "stream",
            _ => "classic",
        }
    }
}

impl Queue {
    /// This node's handle for queue `name` of `vhost`, living on `home` as `kind` under
    /// store id `store_id` there.
    #[allow(clippy::too_many_arguments)]
    pub fn remote(
        name: QueueName,
        vhost: VHostName,
        host: Weak<dyn QueueHost>,
        spec: QueueSpec,
        store_id: warren_storage::QueueId,
        home: NodeId,
        kind: QueueType,
        link: Arc<dyn HomeLink>,
    ) -> Arc<Self> {
        let backend = Backend::Remote(RemoteBackend {
            home,
            kind,
            link,
            consumers: Mutex::new(Vec::new()),
        });
        Self::with_backend(name, vhost, host, spec, store_id, backend)
    }

    /// The remote engine, if the queue lives on another node.
    pub fn remote_backend(&self) -> Option<&RemoteBackend> {
        match &self.backend {
            Backend::Remote(remote) => Some(remote),
            _ => None,
        }
    }

    /// Registers `consumer` of this remote queue, not yet receiving (its basic.consume is
    /// on its way to the home).
    pub fn add_remote_consumer(&self, consumer: Arc<Consumer>) {
        if let Some(remote) = self.remote_backend() {
            let (live, _) = watch::channel(Live::Pending);
            remote
                .consumers
                .lock()
                .push(RemoteConsumer { consumer, live });
        }
    }

    /// Consumer `tag` of `sink` sent its consume-ok: deliveries may go to it.
    pub fn activate_remote_consumer(&self, sink: &dyn DeliverySink, tag: &str) {
        self.set_live(SinkKey::of(sink), tag, Live::Active);
    }

    /// Forgets consumer `tag` of `sink` without telling the home (its consume failed, or
    /// the home said it ended); returns it if it was there.
    pub fn forget_remote_consumer(&self, key: SinkKey, tag: &str) -> Option<Arc<Consumer>> {
        let remote = self.remote_backend()?;
        let mut consumers = remote.consumers.lock();
        let at = consumers.iter().position(|c| {
            SinkKey::of(c.consumer.sink.as_ref()) == key && &*c.consumer.tag == tag
        })?;
        let gone = consumers.remove(at);
        gone.live.send_replace(Live::Gone);
        Some(gone.consumer)
    }

    fn set_live(&self, key: SinkKey, tag: &str, live: Live) {
        if let Some(remote) = self.remote_backend() {
            for c in remote.consumers.lock().iter() {
                if SinkKey::of(c.consumer.sink.as_ref()) == key && &*c.consumer.tag == tag {
                    c.live.send_replace(live);
                }
            }
        }
    }

    /// A delivery the home sent for consumer `tag` of channel `key`: handed to the channel
    /// once the consumer is active and its writer has room. False when the consumer or its
    /// channel is gone (the home puts the message back).
    pub async fn deliver_remote(
        self: &Arc<Self>,
        key: SinkKey,
        tag: &str,
        seq: Option<SeqId>,
        message: Arc<Message>,
        redelivered: bool,
    ) -> bool {
        let Some(remote) = self.remote_backend() else {
            return false;
        };
        let found = remote.consumers.lock().iter().find_map(|c| {
            (SinkKey::of(c.consumer.sink.as_ref()) == key && &*c.consumer.tag == tag)
                .then(|| (c.consumer.clone(), c.live.subscribe()))
        });
        let Some((consumer, mut live)) = found else {
            return false;
        };
        if !matches!(
            live.wait_for(|l| *l != Live::Pending).await.map(|l| *l),
            Ok(Live::Active)
        ) {
            return false;
        }
        let mut message = message;
        loop {
            let delivery = Delivery {
                kind: DeliveryKind::Consumer(consumer.tag.clone()),
                message,
                redelivered,
                live: None,
            };
            let unacked = match (consumer.no_ack, seq) {
                (false, Some(seq)) => Some(Unacked {
                    queue: self.clone(),
                    seq,
                    consumer: Some(consumer.credit.clone()),
                    delivered_at: 0,
                }),
                _ => None,
            };
            match consumer.sink.try_deliver(delivery, unacked) {
                Ok(_) => return true,
                Err(undelivered) if undelivered.refused == Refused::Full => {
                    message = undelivered.message;
                    if !consumer.sink.room().await || *live.borrow() != Live::Active {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Remote side of basic.cancel: the consumer stops here and at the home.
    pub(super) fn cancel_remote(&self, remote: &RemoteBackend, sink: &dyn DeliverySink, tag: &str) {
        let key = SinkKey::of(sink);
        if self.forget_remote_consumer(key, tag).is_some() {
            remote.link.cancel(self, key, &ConsumerTag::from(tag));
        }
    }

    /// Remote side of a channel closing: its consumers end here, and at the home its
    /// consumers end and what it holds goes back.
    pub(super) fn release_remote(
        self: &Arc<Self>,
        remote: &RemoteBackend,
        sink: &dyn DeliverySink,
    ) {
        {
            let mut consumers = remote.consumers.lock();
            consumers.retain(|c| {
                let mine = same_sink(c.consumer.sink.as_ref(), sink);
                if mine {
                    c.live.send_replace(Live::Gone);
                }
                !mine
            });
        }
        // The channel's unacked deliveries of this queue are the home's to put back (it
        // holds each one it sent to this channel).
        sink.take_unacked_from(self);
        remote.link.release(self, SinkKey::of(sink));
    }

    /// The queue's record is gone (deleted, or its node left): this node's consumers end.
    pub(super) fn drop_remote_consumers(remote: &RemoteBackend) -> Vec<Arc<Consumer>> {
        let mut consumers = remote.consumers.lock();
        consumers
            .drain(..)
            .map(|c| {
                c.live.send_replace(Live::Gone);
                c.consumer
            })
            .collect()
    }

    /// Settles at the home.
    pub(super) fn settle_remote(
        &self,
        remote: &RemoteBackend,
        seqs: impl IntoIterator<Item = SeqId>,
        how: Settlement,
    ) {
        let seqs: Vec<SeqId> = seqs.into_iter().collect();
        if !seqs.is_empty() {
            remote.link.settle(self, seqs, how);
        }
    }
}

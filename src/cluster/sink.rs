//! The home's side of a channel of another node (see `consume.rs`): the [`ProxySink`] the
//! queues deliver to, the [`Ledger`] of deliveries sent and not settled, and [`Capture`],
//! the sink of one basic.get.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use warren_storage::QueueId;

use super::proxy::{ProxyAnswer, ProxyItem};
use crate::message::WireMessage;
use crate::meta::NodeId;
use crate::names::{ConnectionId, ConsumerTag, DeliveryTag};
use crate::queue::delivery::{
    ChannelCredit, Delivery, DeliveryKind, DeliverySink, Refused, SinkFuture, Unacked, Undelivered,
    by_queue,
};
use crate::queue::remote::SinkKey;
use crate::queue::{Queue, SeqId};

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a delivery went: the channel's node, its queue, its position there.
type HeldAt = (NodeId, QueueId, SeqId);

/// Deliveries sent to other nodes' channels and not settled yet.
#[derive(Debug, Default)]
pub(super) struct Ledger(Mutex<HashMap<HeldAt, (SinkKey, Unacked)>>);

impl Ledger {
    pub(super) fn hold(&self, node: NodeId, key: SinkKey, unacked: Unacked) {
        if let Some(credit) = &unacked.consumer {
            credit.delivered();
        }
        lock(&self.0).insert((node, unacked.queue.store_id, unacked.seq), (key, unacked));
    }

    /// Takes the deliveries of `queue` at `seqs` that `node` holds (their credit still
    /// out: `delivery::by_queue` returns it as it settles them, as for a channel).
    pub(super) fn take(&self, node: NodeId, queue: QueueId, seqs: &[SeqId]) -> Vec<Unacked> {
        let mut held = lock(&self.0);
        seqs.iter()
            .filter_map(|seq| held.remove(&(node, queue, *seq)).map(|(_, u)| u))
            .collect()
    }

    /// Takes what channel `key` of `node` holds (of `queue` only, if given), credit still
    /// out as in [`Ledger::take`].
    pub(super) fn take_sink(
        &self,
        node: NodeId,
        key: SinkKey,
        queue: Option<QueueId>,
    ) -> Vec<Unacked> {
        lock(&self.0)
            .extract_if(|(n, q, _), (k, _)| {
                *n == node && *k == key && queue.is_none_or(|id| id == *q)
            })
            .map(|(_, (_, u))| u)
            .collect()
    }

    pub(super) fn holds_for(&self, node: NodeId, key: SinkKey) -> bool {
        lock(&self.0)
            .iter()
            .any(|((n, _, _), (k, _))| *n == node && *k == key)
    }
}

/// A channel of another node, as the queues here see it.
#[derive(Debug)]
pub struct ProxySink {
    /// Its own connection id here, unlike any local connection's: quorum queues tell
    /// their consumers' channels apart by it.
    pub(super) id: ConnectionId,
    pub(super) node: NodeId,
    pub(super) key: SinkKey,
    /// The run of its node the channel belongs to.
    pub(super) boot: u64,
    pub(super) vhost: String,
    pub(super) credit: Arc<ChannelCredit>,
    pub(super) tx: mpsc::Sender<ProxyItem>,
    /// Its consumers here: tag → queue.
    pub(super) tags: Mutex<HashMap<ConsumerTag, String>>,
    pub(super) ledger: Arc<Ledger>,
    pub(super) closed: AtomicBool,
    pub(super) last_tag: AtomicU64,
}

impl DeliverySink for ProxySink {
    fn channel_id(&self) -> u16 {
        self.key.channel
    }

    fn connection_id(&self) -> ConnectionId {
        self.id
    }

    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered> {
        let refused = |refused, delivery: Delivery| {
            Err(Undelivered {
                refused,
                message: delivery.message,
            })
        };
        if self.closed.load(Ordering::Acquire) {
            return refused(Refused::Closed, delivery);
        }
        let DeliveryKind::Consumer(tag) = &delivery.kind else {
            // basic.get goes through `Capture`.
            return refused(Refused::Closed, delivery);
        };
        let Some(queue) = lock(&self.tags).get(tag).cloned() else {
            return refused(Refused::Closed, delivery);
        };
        let permit = match self.tx.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => return refused(Refused::Full, delivery),
            Err(mpsc::error::TrySendError::Closed(())) => {
                return refused(Refused::Closed, delivery);
            }
        };
        let seq = unacked.as_ref().map(|u| u.seq);
        if let Some(unacked) = unacked {
            self.ledger.hold(self.node, self.key, unacked);
        }
        permit.send(ProxyItem::Deliver {
            queue,
            tag: tag.to_string(),
            seq,
            redelivered: delivery.redelivered,
            message: WireMessage::of(&delivery.message),
        });
        Ok(DeliveryTag(
            self.last_tag.fetch_add(1, Ordering::Relaxed) + 1,
        ))
    }

    fn room(&self) -> SinkFuture<'_> {
        Box::pin(
            async move { !self.closed.load(Ordering::Acquire) && self.tx.reserve().await.is_ok() },
        )
    }

    fn credit(&self) -> &Arc<ChannelCredit> {
        &self.credit
    }

    fn take_unacked_from(&self, queue: &Arc<Queue>) -> Vec<SeqId> {
        let mut seqs = Vec::new();
        let held = self
            .ledger
            .take_sink(self.node, self.key, Some(queue.store_id));
        by_queue(held, |_, taken| seqs.extend(taken));
        seqs
    }

    fn queue_deleted<'a>(&'a self, consumer_tag: &'a ConsumerTag) -> SinkFuture<'a> {
        Box::pin(async move {
            let Some(queue) = lock(&self.tags).remove(consumer_tag) else {
                return true;
            };
            let item = ProxyItem::Cancelled {
                queue,
                tag: consumer_tag.to_string(),
            };
            self.tx.send(item).await.is_ok()
        })
    }
}

/// basic.get's one delivery, caught for the answer.
#[derive(Debug)]
pub(super) struct Capture<'a> {
    pub(super) sink: &'a ProxySink,
    pub(super) got: Mutex<Option<ProxyAnswer>>,
}

impl DeliverySink for Capture<'_> {
    fn channel_id(&self) -> u16 {
        self.sink.key.channel
    }

    fn connection_id(&self) -> ConnectionId {
        self.sink.connection_id()
    }

    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered> {
        let DeliveryKind::Get { message_count } = delivery.kind else {
            return Err(Undelivered {
                refused: Refused::Closed,
                message: delivery.message,
            });
        };
        let seq = unacked.as_ref().map(|u| u.seq);
        if let Some(unacked) = unacked {
            self.sink
                .ledger
                .hold(self.sink.node, self.sink.key, unacked);
        }
        *lock(&self.got) = Some(ProxyAnswer::Got {
            seq,
            redelivered: delivery.redelivered,
            message_count,
            message: WireMessage::of(&delivery.message),
        });
        Ok(DeliveryTag(1))
    }

    fn room(&self) -> SinkFuture<'_> {
        Box::pin(async { true })
    }

    fn credit(&self) -> &Arc<ChannelCredit> {
        &self.sink.credit
    }

    fn take_unacked_from(&self, _queue: &Arc<Queue>) -> Vec<SeqId> {
        Vec::new()
    }

    fn queue_deleted<'a>(&'a self, _consumer_tag: &'a ConsumerTag) -> SinkFuture<'a> {
        Box::pin(async { true })
    }
}

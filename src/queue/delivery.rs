//! The delivery seam: how a queue hands a message to whoever takes it.
//!
//! A queue does not know channels or connections. It hands a [`Delivery`] to a
//! [`DeliverySink`] (a channel implements it; tests use their own), which takes
//! the next delivery tag, records the [`Unacked`] delivery and queues the frame
//! for the writer in one step under one lock, so a client sees its tags in
//! increasing order whichever queue or task delivers. The bookkeeping a sink
//! keeps ([`Deliveries`]: tags, unacked deliveries, deliveries held by an open
//! transaction) and the prefetch credit ([`ConsumerCredit`], [`ChannelCredit`])
//! are defined here, with the seam, so that every sink keeps them alike.
//!
//! Lock order: a queue's lock may be held while a sink takes its own lock,
//! never the other way round.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};

use super::{Queue, SeqId};
use crate::message::Message;
use crate::names::{ConnectionId, ConsumerTag, DeliveryTag};

/// What the client receives.
#[derive(Debug, Clone)]
pub enum DeliveryKind {
    /// basic.deliver to the consumer with this tag.
    Consumer(ConsumerTag),
    /// basic.get-ok, with the queue's ready count after it.
    Get {
        /// Ready messages left in the queue.
        message_count: u32,
    },
}

/// One message on its way to a client.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Deliver or get-ok.
    pub kind: DeliveryKind,
    /// The message.
    pub message: Arc<Message>,
    /// Delivered before.
    pub redelivered: bool,
    /// Sent only while this holds, checked under the sink's lock (a direct
    /// reply-to consumer that ended gets nothing after its cancel-ok).
    pub live: Option<Arc<AtomicBool>>,
}

/// Why a sink did not take a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The writer queue is full: wait for [`DeliverySink::room`] and retry.
    Full,
    /// The connection is gone, or the consumer ended.
    Closed,
}

/// A delivery a sink did not take: why, and its message given back (so the
/// queue keeps it without having cloned it).
#[derive(Debug)]
pub struct Undelivered {
    /// Why.
    pub refused: Refused,
    /// The message, back to its queue.
    pub message: Arc<Message>,
}

/// A future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Where deliveries go: a channel, as the queues see it.
pub trait DeliverySink: Send + Sync + fmt::Debug {
    /// The channel number (what the management API lists consumers by).
    fn channel_id(&self) -> u16;

    /// The id of the connection the channel belongs to.
    fn connection_id(&self) -> ConnectionId;

    /// Hands `delivery` over if the writer has room now: takes the next
    /// delivery tag, records `unacked` under it (None for no-ack), queues the
    /// frame, all under the sink's lock. Returns the tag, or the message back.
    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered>;

    /// Resolves when the writer has room again: true, or false when it is gone.
    fn room(&self) -> SinkFuture<'_>;

    /// The channel-wide prefetch and unacked count of its consumers.
    fn credit(&self) -> &Arc<ChannelCredit>;

    /// Takes back the deliveries from `queue` that are unacked or held by an
    /// open transaction (the channel is leaving the queue), their credit
    /// returned.
    fn take_unacked_from(&self, queue: &Arc<Queue>) -> Vec<SeqId>;

    /// The queue of its consumer `consumer_tag` was deleted: the channel
    /// forgets the consumer and tells the client with basic.cancel if it
    /// advertised `consumer_cancel_notify`.
    fn queue_deleted<'a>(&'a self, consumer_tag: &'a ConsumerTag) -> SinkFuture<'a>;
}

/// Whether two sinks are the same channel.
pub fn same_sink(a: &dyn DeliverySink, b: &dyn DeliverySink) -> bool {
    std::ptr::addr_eq(a as *const dyn DeliverySink, b as *const dyn DeliverySink)
}

/// A delivery the client has not acknowledged yet.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// The queue the message came from.
    pub queue: Arc<Queue>,
    /// Its position in that queue.
    pub seq: SeqId,
    /// The consumer it went to (None for basic.get).
    pub consumer: Option<Arc<ConsumerCredit>>,
    /// When it went out, on the sink's [`CoarseClock`] (set by
    /// [`Deliveries::sent`]).
    pub delivered_at: u32,
}

/// Seconds since the broker started, advanced once a second by the broker's
/// ticker: what the age of an unacknowledged delivery is measured in (the
/// consumer timeout), read with one atomic load instead of a clock call on the
/// delivery path.
#[derive(Debug, Default)]
pub struct CoarseClock(AtomicU32);

impl CoarseClock {
    /// The current second.
    pub fn now(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// One more second passed.
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A channel's consumer credit: what basic.qos global=true limits.
#[derive(Debug, Default)]
pub struct ChannelCredit {
    /// Consumer deliveries not yet settled, on all of the channel's consumers,
    /// cancelled ones included; basic.get deliveries do not count, as in RabbitMQ.
    pub unacked: AtomicU32,
    /// Channel-wide prefetch (basic.qos global=true; 0 = unlimited).
    pub prefetch: AtomicU16,
}

impl ChannelCredit {
    /// Whether the channel-wide prefetch allows one more consumer delivery.
    pub fn has_room(&self) -> bool {
        let limit = self.prefetch.load(Ordering::Acquire);
        limit == 0 || self.unacked.load(Ordering::Acquire) < u32::from(limit)
    }
}

/// A consumer's count of unacked deliveries, checked against its prefetch.
#[derive(Debug, Default)]
pub struct ConsumerCredit {
    /// Deliveries not yet acked.
    pub unacked: AtomicU32,
    /// The consumer's prefetch count (0 = unlimited).
    pub prefetch: u16,
    /// Its channel's credit.
    pub channel: Arc<ChannelCredit>,
    /// How long it may hold a delivery unacknowledged, in milliseconds
    /// (None: no limit): its `x-consumer-timeout`, else its queue's, else the
    /// broker's `consumer_timeout`.
    pub ack_timeout: Option<u64>,
}

impl ConsumerCredit {
    /// Whether one more delivery fits the consumer's prefetch.
    pub fn has_room(&self) -> bool {
        self.prefetch == 0 || self.unacked.load(Ordering::Acquire) < u32::from(self.prefetch)
    }

    /// A delivery that needs an ack went out.
    pub fn delivered(&self) {
        self.unacked.fetch_add(1, Ordering::AcqRel);
        self.channel.unacked.fetch_add(1, Ordering::AcqRel);
    }

    /// One of its deliveries was settled (acked, nacked, rejected or requeued).
    pub fn settled(&self) {
        self.unacked.fetch_sub(1, Ordering::AcqRel);
        self.channel.unacked.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A sink's delivery bookkeeping.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// The tag the last delivery got (tags start at 1).
    pub last_tag: DeliveryTag,
    /// Unacked deliveries by tag, in tag order.
    pub unacked: BTreeMap<DeliveryTag, Unacked>,
    /// Deliveries acked, nacked or rejected inside the open transaction: no longer
    /// the client's to settle, not settled with their queues until tx.commit.
    /// Their consumers' credit comes back at commit; they go back to their queues
    /// with the rest if the channel closes first.
    pub tx_settled: BTreeMap<DeliveryTag, Unacked>,
}

impl Deliveries {
    /// The tag the next delivery will get.
    pub fn next_tag(&self) -> DeliveryTag {
        DeliveryTag(self.last_tag.0 + 1)
    }

    /// Records that the delivery tagged [`Deliveries::next_tag`] went out
    /// at second `now`.
    pub fn sent(&mut self, unacked: Option<Unacked>, now: u32) -> DeliveryTag {
        self.last_tag = self.next_tag();
        if let Some(mut unacked) = unacked {
            unacked.delivered_at = now;
            if let Some(credit) = &unacked.consumer {
                credit.delivered();
            }
            self.unacked.insert(self.last_tag, unacked);
        }
        self.last_tag
    }

    /// Removes the deliveries an ack/nack/reject names: exactly `tag`, or with
    /// `multiple` every tag up to it (tag 0 with multiple: all). `None` when the
    /// tag is not outstanding, which RabbitMQ answers with 406.
    pub fn settle(
        &mut self,
        tag: DeliveryTag,
        multiple: bool,
    ) -> Option<BTreeMap<DeliveryTag, Unacked>> {
        if multiple && tag.0 == 0 {
            return Some(std::mem::take(&mut self.unacked));
        }
        if !self.unacked.contains_key(&tag) {
            return None;
        }
        if !multiple {
            return self
                .unacked
                .remove_entry(&tag)
                .map(|(t, u)| BTreeMap::from([(t, u)]));
        }
        let rest = self.unacked.split_off(&DeliveryTag(tag.0 + 1));
        Some(std::mem::replace(&mut self.unacked, rest))
    }

    /// Deliveries from `queue`, unacked or held by a transaction, taken out
    /// with their credit returned.
    pub fn take_from(&mut self, queue: &Arc<Queue>) -> Vec<SeqId> {
        let mut seqs = Vec::new();
        for held in [&mut self.unacked, &mut self.tx_settled] {
            let tags: Vec<DeliveryTag> = held
                .iter()
                .filter(|(_, u)| Arc::ptr_eq(&u.queue, queue))
                .map(|(tag, _)| *tag)
                .collect();
            for u in tags.iter().filter_map(|tag| held.remove(tag)) {
                if let Some(credit) = &u.consumer {
                    credit.settled();
                }
                seqs.push(u.seq);
            }
        }
        seqs
    }
}

impl Deliveries {
    /// The timeout of the oldest delivery held longer than its timeout at
    /// second `now`, if any, in milliseconds. A basic.get delivery has its
    /// queue's `x-consumer-timeout`, else `default` (0 at either: none). Deliveries are in tag
    /// order, which is age order: the scan stops at the first one younger
    /// than `shortest` (the shortest timeout any of them can have), so it
    /// costs one entry when nothing is overdue.
    pub fn overdue(&self, now: u32, default: Option<u64>, shortest: u64) -> Option<u64> {
        for u in self.unacked.values() {
            let age_ms = u64::from(now.saturating_sub(u.delivered_at)) * 1000;
            if age_ms < shortest {
                return None;
            }
            let timeout = match &u.consumer {
                Some(credit) => credit.ack_timeout,
                // 0 at a level turns the timeout off there, as for consumers.
                None => u.queue.consumer_timeout().or(default).filter(|&t| t > 0),
            };
            if let Some(timeout) = timeout.filter(|&t| age_ms >= t) {
                return Some(timeout);
            }
        }
        None
    }
}

/// Settles unacked deliveries grouped by queue: their consumers' credit comes
/// back, and `f` gets each queue with its seqs.
pub fn by_queue(unacked: Vec<Unacked>, mut f: impl FnMut(&Arc<Queue>, Vec<SeqId>)) {
    let mut groups: Vec<(Arc<Queue>, Vec<SeqId>)> = Vec::new();
    for u in unacked {
        if let Some(credit) = &u.consumer {
            credit.settled();
        }
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, seqs)) => seqs.push(u.seq),
            None => groups.push((u.queue, vec![u.seq])),
        }
    }
    for (queue, seqs) in groups {
        f(&queue, seqs);
    }
}

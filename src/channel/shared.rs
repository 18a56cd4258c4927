//! The part of a channel that queues touch from other tasks: the channel as a
//! [`DeliverySink`] (its outbound queue, delivery tags, unacknowledged
//! deliveries, prefetch credit), its consumers, and what the management API
//! reports of it.
//!
//! Queues deliver from whatever task publishes or acks, so this state is behind a
//! mutex. [`ChannelShared::try_deliver`] is the one place a delivery tag is
//! taken and a delivery queued to the writer, under that lock, so the client
//! sees tags in increasing order. Lock order: a queue's lock may be held while
//! taking a channel's, never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::ShortString;

use crate::error::AmqpError;
use crate::names::{ConnectionId, ConsumerTag, DeliveryTag};
use crate::outbound::{Outbound, OutboundTx};
use crate::queue::delivery::SinkFuture;
use crate::queue::{
    ChannelCredit, CoarseClock, Deliveries, Delivery, DeliveryKind, DeliverySink, Queue, Refused,
    SeqId, Unacked, Undelivered,
};
use crate::stats::{ChannelCounters, History};

/// A channel as the queues see it.
#[derive(Debug)]
pub struct ChannelShared {
    /// Channel number.
    pub id: u16,
    /// Its connection's id.
    pub connection: ConnectionId,
    /// The connection's writer queue.
    pub out: OutboundTx,
    /// Whether the client wants basic.cancel when a queue it consumes from goes.
    pub cancel_notify: bool,
    /// Tags, unacked deliveries, prefetch.
    pub deliveries: Mutex<Deliveries>,
    /// basic.qos global=true and what it limits.
    pub credit: Arc<ChannelCredit>,
    /// This channel's consumers by tag, with their queue. Any task may remove one
    /// (a queue deleted by another connection cancels its consumers).
    pub consumers: Mutex<HashMap<ConsumerTag, Arc<Queue>>>,
    /// What the management API reports of the channel's modes.
    pub report: ChannelReport,
    /// The broker's second counter, stamped on every delivery.
    clock: Arc<CoarseClock>,
    /// Where the consumer-timeout check reports a timed-out delivery: the
    /// connection's reader closes the channel.
    errors: mpsc::Sender<(u16, AmqpError)>,
    /// The shortest acknowledgement timeout any delivery here can have, in
    /// milliseconds (`u64::MAX`: none has one).
    shortest_ack_timeout: AtomicU64,
    /// A timeout was reported; the channel is closing.
    timed_out: AtomicBool,
    /// Message counters (rates).
    pub counters: ChannelCounters,
    /// Samples of the counters.
    pub history: History,
    /// Closed: its counts were added to its connection's (not counted live).
    pub retired: AtomicBool,
}

/// What a channel's shared state takes from its connection and broker.
#[derive(Debug, Clone)]
pub struct ChannelLinks {
    /// The connection's id.
    pub connection: ConnectionId,
    /// The connection's writer queue.
    pub out: OutboundTx,
    /// The client advertised `consumer_cancel_notify`.
    pub cancel_notify: bool,
    /// The broker's second counter.
    pub clock: Arc<CoarseClock>,
    /// The connection reader's queue of channel errors found elsewhere.
    pub errors: mpsc::Sender<(u16, AmqpError)>,
}

/// A channel's modes and counters as the management API lists them; the
/// channel task writes them, the API reads them.
#[derive(Debug, Default)]
pub struct ChannelReport {
    /// In confirm mode (confirm.select).
    pub confirm: AtomicBool,
    /// In transaction mode (tx.select).
    pub transactional: AtomicBool,
    /// basic.qos global=false: the prefetch new consumers get.
    pub prefetch: AtomicU16,
    /// Publishes not yet confirmed to the publisher.
    pub unconfirmed: AtomicU64,
}

impl ChannelShared {
    /// New shared state for channel `id`.
    pub fn new(id: u16, links: ChannelLinks) -> Arc<Self> {
        Arc::new(ChannelShared {
            id,
            connection: links.connection,
            out: links.out,
            cancel_notify: links.cancel_notify,
            deliveries: Mutex::new(Deliveries::default()),
            credit: Arc::default(),
            consumers: Mutex::new(HashMap::new()),
            report: ChannelReport::default(),
            clock: links.clock,
            errors: links.errors,
            shortest_ack_timeout: AtomicU64::new(u64::MAX),
            timed_out: AtomicBool::new(false),
            counters: ChannelCounters::default(),
            history: History::default(),
            retired: AtomicBool::new(false),
        })
    }

    /// Deliveries on this channel may have this acknowledgement timeout
    /// (milliseconds; a consumer's, or a basic.get's).
    pub fn note_ack_timeout(&self, timeout: Option<u64>) {
        if let Some(timeout) = timeout {
            self.shortest_ack_timeout
                .fetch_min(timeout, Ordering::Relaxed);
        }
    }

    /// The consumer-timeout check (once a second, from the broker's ticker):
    /// when a delivery has been unacknowledged longer than its timeout, the
    /// channel's connection is told to close it with RabbitMQ's 406.
    /// `default` is the broker's `consumer_timeout` for basic.get deliveries.
    pub fn check_ack_timeout(&self, default: Option<u64>) {
        let shortest = self.shortest_ack_timeout.load(Ordering::Relaxed);
        if shortest == u64::MAX || self.timed_out.load(Ordering::Relaxed) {
            return;
        }
        let overdue = self
            .deliveries
            .lock()
            .overdue(self.clock.now(), default, shortest);
        let Some(timeout) = overdue else {
            return;
        };
        let error = AmqpError::precondition_failed(format!(
            "delivery acknowledgement on channel {} timed out. Timeout value used: {timeout} ms. This timeout value can be configured, see consumers doc guide to learn more",
            self.id
        ));
        if self.errors.try_send((self.id, error)).is_ok() {
            tracing::warn!(
                channel = self.id,
                timeout_ms = timeout,
                "a delivery was not acknowledged in time; closing its channel"
            );
            self.timed_out.store(true, Ordering::Relaxed);
        }
    }

    /// Removes the deliveries an ack/nack/reject names (see [`Deliveries::settle`]).
    pub fn settle(
        &self,
        tag: DeliveryTag,
        multiple: bool,
    ) -> Option<BTreeMap<DeliveryTag, Unacked>> {
        self.deliveries.lock().settle(tag, multiple)
    }

    /// Holds deliveries settled inside a transaction until commit or rollback.
    pub fn hold_for_tx(&self, settled: BTreeMap<DeliveryTag, Unacked>) {
        self.deliveries.lock().tx_settled.extend(settled);
    }

    /// tx.commit: takes the held deliveries with these tags.
    pub fn take_held(&self, tags: &[DeliveryTag]) -> BTreeMap<DeliveryTag, Unacked> {
        let mut d = self.deliveries.lock();
        tags.iter()
            .filter_map(|tag| d.tx_settled.remove_entry(tag))
            .collect()
    }

    /// tx.rollback: every held delivery is unacked again.
    pub fn unhold_all(&self) {
        let mut d = self.deliveries.lock();
        let held = std::mem::take(&mut d.tx_settled);
        d.unacked.extend(held);
    }

    /// A stream queue one of the unacked deliveries came from, if any.
    pub fn unacked_stream(&self) -> Option<Arc<Queue>> {
        self.deliveries
            .lock()
            .unacked
            .values()
            .find(|u| u.queue.is_stream())
            .map(|u| u.queue.clone())
    }

    /// Takes the unacked deliveries, not those held by an open transaction
    /// (basic.recover: the transaction still settles those at commit).
    pub fn take_unacked(&self) -> Vec<Unacked> {
        std::mem::take(&mut self.deliveries.lock().unacked)
            .into_values()
            .collect()
    }

    /// Takes every unacked delivery, with those held by an open transaction
    /// (the channel is closing).
    pub fn take_all_unacked(&self) -> Vec<Unacked> {
        let mut d = self.deliveries.lock();
        let mut all = std::mem::take(&mut d.unacked);
        all.append(&mut d.tx_settled);
        all.into_values().collect()
    }
}

impl DeliverySink for ChannelShared {
    fn channel_id(&self) -> u16 {
        self.id
    }

    fn connection_id(&self) -> ConnectionId {
        self.connection
    }

    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered> {
        let mut deliveries = self.deliveries.lock();
        if delivery
            .live
            .as_ref()
            .is_some_and(|live| !live.load(Ordering::Acquire))
        {
            return Err(Undelivered {
                refused: Refused::Closed,
                message: delivery.message,
            });
        }
        let permit = match self.out.try_reserve() {
            Ok(permit) => permit,
            Err(error) => {
                let refused = match error {
                    TrySendError::Full(()) => Refused::Full,
                    TrySendError::Closed(()) => Refused::Closed,
                };
                return Err(Undelivered {
                    refused,
                    message: delivery.message,
                });
            }
        };
        let delivery_tag = deliveries.next_tag();
        let Delivery {
            kind,
            message,
            redelivered,
            ..
        } = delivery;
        let counter = match (&kind, unacked.is_some()) {
            (DeliveryKind::Consumer(_), true) => &self.counters.deliver,
            (DeliveryKind::Consumer(_), false) => &self.counters.deliver_no_ack,
            (DeliveryKind::Get { .. }, true) => &self.counters.get,
            (DeliveryKind::Get { .. }, false) => &self.counters.get_no_ack,
        };
        counter.incr();
        if redelivered {
            self.counters.redeliver.incr();
        }
        permit.send(match kind {
            DeliveryKind::Consumer(consumer_tag) => Outbound::Deliver {
                channel: self.id,
                consumer_tag,
                delivery_tag,
                redelivered,
                message,
            },
            DeliveryKind::Get { message_count } => Outbound::GetOk {
                channel: self.id,
                delivery_tag,
                redelivered,
                message_count,
                message,
            },
        });
        Ok(deliveries.sent(unacked, self.clock.now()))
    }

    fn room(&self) -> SinkFuture<'_> {
        Box::pin(async move { self.out.reserve().await.is_ok() })
    }

    fn credit(&self) -> &Arc<ChannelCredit> {
        &self.credit
    }

    fn take_unacked_from(&self, queue: &Arc<Queue>) -> Vec<SeqId> {
        self.deliveries.lock().take_from(queue)
    }

    fn queue_deleted<'a>(&'a self, consumer_tag: &'a ConsumerTag) -> SinkFuture<'a> {
        Box::pin(async move {
            self.consumers.lock().remove(consumer_tag);
            if !self.cancel_notify {
                return true;
            }
            let cancel = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: ShortString::try_new(consumer_tag.to_string()).unwrap_or_default(),
                nowait: true,
            }));
            self.out
                .send(Outbound::Method(self.id, cancel))
                .await
                .is_ok()
        })
    }
}

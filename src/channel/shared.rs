//! The part of a channel that queues touch: its outbound queue, delivery tags,
//! unacknowledged deliveries and prefetch limits.
//!
//! Queues deliver from whatever task publishes or acks, so this state is behind a
//! mutex. A delivery tag is taken and the delivery queued to the writer under the
//! same lock, so the client sees tags in increasing order. Lock order: a queue's
//! lock may be held while taking a channel's, never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::connection::writer::OutboundTx;
use crate::queue::{Queue, SeqId};

/// A delivery the client has not acknowledged yet.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// The queue the message came from.
    pub queue: Arc<Queue>,
    /// Its position in that queue.
    pub seq: SeqId,
    /// The consumer it went to (None for basic.get).
    pub consumer: Option<Arc<ConsumerCredit>>,
}

/// A consumer's count of unacked deliveries, checked against its prefetch.
#[derive(Debug, Default)]
pub struct ConsumerCredit {
    /// Deliveries not yet acked.
    pub unacked: AtomicU32,
    /// The consumer's prefetch count (0 = unlimited).
    pub prefetch: u16,
    /// Its channel's count of consumer deliveries not yet acked
    /// ([`ChannelShared::consumer_unacked`]).
    pub channel_unacked: Arc<AtomicU32>,
}

impl ConsumerCredit {
    /// Whether one more delivery fits the consumer's prefetch.
    pub fn has_room(&self) -> bool {
        self.prefetch == 0 || self.unacked.load(Ordering::Acquire) < u32::from(self.prefetch)
    }

    /// A delivery that needs an ack went out.
    pub fn delivered(&self) {
        self.unacked.fetch_add(1, Ordering::AcqRel);
        self.channel_unacked.fetch_add(1, Ordering::AcqRel);
    }

    /// One of its deliveries was settled (acked, nacked, rejected or requeued).
    pub fn settled(&self) {
        self.unacked.fetch_sub(1, Ordering::AcqRel);
        self.channel_unacked.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Delivery bookkeeping of one channel.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// The tag the next delivery gets.
    pub next_tag: u64,
    /// Unacked deliveries by tag, in tag order.
    pub unacked: BTreeMap<u64, Unacked>,
    /// Deliveries acked, nacked or rejected inside the open transaction: no longer
    /// the client's to settle, not settled with their queues until tx.commit.
    /// Their consumers' credit comes back at commit; they go back to their queues
    /// with the rest if the channel closes first.
    pub tx_settled: BTreeMap<u64, Unacked>,
    /// Channel-wide prefetch (basic.qos global=true; 0 = unlimited).
    pub global_prefetch: u16,
}

impl Deliveries {
    /// Takes the next delivery tag (tags start at 1).
    pub fn take_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }
}

/// A channel as the queues see it.
#[derive(Debug)]
pub struct ChannelShared {
    /// Channel number.
    pub id: u16,
    /// The connection's writer queue.
    pub out: OutboundTx,
    /// Whether the client wants basic.cancel when a queue it consumes from goes.
    pub cancel_notify: bool,
    /// Tags, unacked deliveries, prefetch.
    pub deliveries: Mutex<Deliveries>,
    /// Consumer deliveries not yet settled, on all of this channel's consumers,
    /// cancelled ones included: what basic.qos global=true limits. basic.get
    /// deliveries do not count, as in RabbitMQ.
    pub consumer_unacked: Arc<AtomicU32>,
    /// This channel's consumers by tag, with their queue. Any task may remove one
    /// (a queue deleted by another connection cancels its consumers).
    pub consumers: Mutex<HashMap<Arc<str>, Arc<Queue>>>,
    /// What the management API reports of the channel's modes.
    pub report: ChannelReport,
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
    pub fn new(id: u16, out: OutboundTx, cancel_notify: bool) -> Arc<Self> {
        Arc::new(ChannelShared {
            id,
            out,
            cancel_notify,
            deliveries: Mutex::new(Deliveries::default()),
            consumer_unacked: Arc::default(),
            consumers: Mutex::new(HashMap::new()),
            report: ChannelReport::default(),
        })
    }

    /// Whether the channel-wide prefetch allows one more consumer delivery.
    pub fn has_global_room(&self) -> bool {
        let limit = self.deliveries.lock().global_prefetch;
        limit == 0 || self.consumer_unacked.load(Ordering::Acquire) < u32::from(limit)
    }

    /// Removes the deliveries an ack/nack/reject names: exactly `tag`, or with
    /// `multiple` every tag up to it (tag 0 with multiple: all). `None` when the
    /// tag is not outstanding, which RabbitMQ answers with 406.
    pub fn settle(&self, tag: u64, multiple: bool) -> Option<BTreeMap<u64, Unacked>> {
        let mut d = self.deliveries.lock();
        if multiple && tag == 0 {
            return Some(std::mem::take(&mut d.unacked));
        }
        if !d.unacked.contains_key(&tag) {
            return None;
        }
        if !multiple {
            return d
                .unacked
                .remove_entry(&tag)
                .map(|(t, u)| BTreeMap::from([(t, u)]));
        }
        let rest = d.unacked.split_off(&(tag + 1));
        Some(std::mem::replace(&mut d.unacked, rest))
    }

    /// Holds deliveries settled inside a transaction until commit or rollback.
    pub fn hold_for_tx(&self, settled: BTreeMap<u64, Unacked>) {
        self.deliveries.lock().tx_settled.extend(settled);
    }

    /// tx.commit: takes the held deliveries with these tags.
    pub fn take_held(&self, tags: &[u64]) -> BTreeMap<u64, Unacked> {
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

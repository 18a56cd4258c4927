//! The part of a channel that queues touch: its outbound queue, delivery tags,
//! unacknowledged deliveries and prefetch limits.
//!
//! Queues deliver from whatever task publishes or acks, so this state is behind a
//! mutex. A delivery tag is taken and the delivery queued to the writer under the
//! same lock, so the client sees tags in increasing order. Lock order: a queue's
//! lock may be held while taking a channel's, never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

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
}

impl ConsumerCredit {
    /// Whether one more delivery fits the consumer's prefetch.
    pub fn has_room(&self) -> bool {
        self.prefetch == 0 || self.unacked.load(Ordering::Acquire) < u32::from(self.prefetch)
    }
}

/// Delivery bookkeeping of one channel.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// The tag the next delivery gets.
    pub next_tag: u64,
    /// Unacked deliveries by tag, in tag order.
    pub unacked: BTreeMap<u64, Unacked>,
    /// Channel-wide prefetch (basic.qos global=true; 0 = unlimited).
    pub global_prefetch: u16,
}

impl Deliveries {
    /// Takes the next delivery tag (tags start at 1).
    pub fn take_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Whether the channel-wide prefetch allows one more unacked delivery.
    pub fn has_room(&self) -> bool {
        self.global_prefetch == 0 || self.unacked.len() < usize::from(self.global_prefetch)
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
    /// This channel's consumers by tag, with their queue. Any task may remove one
    /// (a queue deleted by another connection cancels its consumers).
    pub consumers: Mutex<HashMap<Arc<str>, Arc<Queue>>>,
}

impl ChannelShared {
    /// New shared state for channel `id`.
    pub fn new(id: u16, out: OutboundTx, cancel_notify: bool) -> Arc<Self> {
        Arc::new(ChannelShared {
            id,
            out,
            cancel_notify,
            deliveries: Mutex::new(Deliveries::default()),
            consumers: Mutex::new(HashMap::new()),
        })
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

    /// Puts settled deliveries back as unacked (tx.rollback of acks).
    pub fn unsettle(&self, settled: BTreeMap<u64, Unacked>) {
        self.deliveries.lock().unacked.extend(settled);
    }

    /// Takes every unacked delivery (channel closing, basic.recover).
    pub fn take_all_unacked(&self) -> Vec<Unacked> {
        std::mem::take(&mut self.deliveries.lock().unacked)
            .into_values()
            .collect()
    }
}

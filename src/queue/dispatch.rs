//! The delivery loop: ready messages, in queue order, handed to the consumers
//! that can take them, under the queue's lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ready::{Entry, Taken};
use super::{Consumer, Delivery, DeliveryKind, Queue, QueueState, Refused, SeqId, Unacked, retry};

impl Queue {
    /// Hands ready messages, in queue order, to the consumers that can take
    /// them (see `consumers.rs` for who goes first).
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut QueueState) {
        while !st.ready.is_empty() {
            let Some(consumer) = st.consumers.next() else {
                return;
            };
            let Some((seq, entry)) = st.ready.pop_first() else {
                return;
            };
            self.offer(st, &consumer, seq, entry);
        }
    }

    /// Delivers the ready message `seq` to `consumer`; true if it went out.
    /// One the consumer's sink refused is back at its place in the ready
    /// list, and the consumer waits for room.
    #[inline(always)]
    pub(super) fn offer(
        self: &Arc<Self>,
        st: &mut QueueState,
        consumer: &Arc<Consumer>,
        seq: SeqId,
        entry: Entry,
    ) -> bool {
        // The message moves into the delivery; an acked-mode one is also
        // kept as outstanding, a refused one comes back.
        let (entry, message) = entry.take_message(!consumer.no_ack);
        let message = retry::with_delivery_count(&st.args, entry.returns, message);
        let delivery = Delivery {
            kind: DeliveryKind::Consumer(consumer.tag.clone()),
            message,
            redelivered: entry.redelivered,
            live: None,
        };
        let unacked = (!consumer.no_ack).then(|| Unacked {
            queue: self.clone(),
            seq,
            consumer: Some(consumer.credit.clone()),
            delivered_at: 0,
        });
        match consumer.sink.try_deliver(delivery, unacked) {
            Ok(_) => {
                let kind = if consumer.no_ack {
                    &self.counters.deliver_no_ack
                } else {
                    &self.counters.deliver
                };
                kind.incr();
                if entry.redelivered {
                    self.counters.redeliver.incr();
                }
                self.delivered(st, seq, entry);
                true
            }
            Err(undelivered) => {
                // Back at its place; the consumer waits for room.
                st.ready
                    .insert(seq, entry.with_message(undelivered.message));
                match undelivered.refused {
                    Refused::Full => self.park(consumer),
                    // The connection is going away; its cleanup removes the consumer.
                    Refused::Closed => consumer.parked.store(true, Ordering::Release),
                }
                false
            }
        }
    }

    /// A delivery went out: an acked-mode one is outstanding until settled,
    /// a no-ack one has left the queue.
    pub(super) fn delivered(&self, st: &mut QueueState, seq: SeqId, mut entry: Taken) {
        match entry.kept.take() {
            Some(message) => {
                st.outstanding.insert(seq, entry.with_message(message));
            }
            None => {
                if entry.stored {
                    st.ready.forget_seq(seq);
                }
            }
        }
    }

    /// A consumer whose writer queue is full waits for room, then the queue retries.
    pub(super) fn park(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        if consumer.parked.swap(true, Ordering::AcqRel) {
            return;
        }
        let queue = self.clone();
        let consumer = consumer.clone();
        tokio::spawn(async move {
            if consumer.sink.room().await {
                consumer.parked.store(false, Ordering::Release);
                queue.kick();
            }
        });
    }
}

//! The delivery loop: ready messages, in queue order, handed to the consumers
//! that can take them, under the queue's lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::delivery::DeliverySink;
use super::ready::{Entry, Taken};
use super::{Consumer, Delivery, DeliveryKind, Queue, QueueState, Refused, SeqId, Unacked, retry};

/// Who a ready message goes to.
pub(super) enum Recipient<'a> {
    /// A consumer, as basic.deliver.
    Consumer(&'a Arc<Consumer>),
    /// basic.get's channel, as get-ok with the ready count after it.
    Get {
        /// The channel's sink.
        sink: &'a dyn DeliverySink,
        /// Whether no ack is due.
        no_ack: bool,
        /// Messages still ready.
        message_count: u32,
    },
}

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
        match self.send_ready(st, seq, entry, Recipient::Consumer(consumer)) {
            Ok(()) => true,
            Err(Refused::Full) => {
                self.park(consumer);
                false
            }
            Err(Refused::Closed) => {
                // The connection is going away; its cleanup removes the consumer.
                consumer.parked.store(true, Ordering::Release);
                false
            }
        }
    }

    /// Sends the ready message `seq` to `to` (basic.deliver or get-ok) with
    /// its delivery count, keeps it outstanding when an ack is due, counts
    /// it. A refused message is back at its place in the ready list, and the
    /// refusal is returned.
    #[inline(always)]
    pub(super) fn send_ready(
        self: &Arc<Self>,
        st: &mut QueueState,
        seq: SeqId,
        entry: Entry,
        to: Recipient<'_>,
    ) -> Result<(), Refused> {
        let (sink, no_ack, kind, credit, counter) = match to {
            Recipient::Consumer(c) => (
                &*c.sink,
                c.no_ack,
                DeliveryKind::Consumer(c.tag.clone()),
                Some(&c.credit),
                if c.no_ack {
                    &self.counters.deliver_no_ack
                } else {
                    &self.counters.deliver
                },
            ),
            Recipient::Get {
                sink,
                no_ack,
                message_count,
            } => (
                sink,
                no_ack,
                DeliveryKind::Get { message_count },
                None,
                if no_ack {
                    &self.counters.get_no_ack
                } else {
                    &self.counters.get
                },
            ),
        };
        // The message moves into the delivery; an acked-mode one is also
        // kept as outstanding, a refused one comes back.
        let (entry, message) = entry.take_message(!no_ack);
        let message = retry::with_delivery_count(&st.args, entry.returns, message);
        let delivery = Delivery {
            kind,
            message,
            redelivered: entry.redelivered,
            live: None,
        };
        let unacked = (!no_ack).then(|| Unacked {
            queue: self.clone(),
            seq,
            consumer: credit.cloned(),
            delivered_at: 0,
        });
        match sink.try_deliver(delivery, unacked) {
            Ok(_) => {
                counter.incr();
                if entry.redelivered {
                    self.counters.redeliver.incr();
                }
                self.delivered(st, seq, entry);
                Ok(())
            }
            Err(undelivered) => {
                st.ready
                    .insert(seq, entry.with_message(undelivered.message));
                Err(undelivered.refused)
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

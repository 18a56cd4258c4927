//! Prefetch and what returns credit: basic.qos (per consumer, or channel-wide
//! with global=true), and settling deliveries (ack, nack, reject, recover),
//! which frees the credit they held and lets queues deliver again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use warren_codec::protocol::{AMQPClass, basic};

use super::tx::TxOp;
use super::{Channel, Mode};
use crate::error::AmqpError;
use crate::names::DeliveryTag;
use crate::queue::{Queue, Return, Unacked, by_queue};

/// What happens to settled deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// basic.ack: done with them.
    Ack,
    /// nack/reject with requeue: back to their queues, redelivered (nack
    /// returns them, reject fails them: delayed retries may tell apart).
    Requeue(Return),
    /// nack/reject without requeue: dead-lettered or dropped.
    Discard,
}

impl Settle {
    /// nack/reject: requeue (as `why`) or discard.
    pub fn requeue_or_discard(requeue: bool, why: Return) -> Settle {
        if requeue {
            Settle::Requeue(why)
        } else {
            Settle::Discard
        }
    }
}

impl Channel {
    /// basic.qos: a channel-wide prefetch applies at once (queues held back
    /// may deliver), a per-consumer one to consumers created after it.
    pub(super) async fn qos(&mut self, m: basic::Qos) {
        if m.global {
            self.shared
                .credit
                .prefetch
                .store(m.prefetch_count, Ordering::Release);
            self.kick_consumed_queues();
        } else {
            self.consumer_prefetch = m.prefetch_count;
            self.shared
                .report
                .prefetch
                .store(m.prefetch_count, Ordering::Relaxed);
        }
        self.reply(AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})))
            .await;
    }

    pub(super) fn settle(
        &mut self,
        tag: DeliveryTag,
        multiple: bool,
        how: Settle,
    ) -> Result<(), AmqpError> {
        let settled = self
            .shared
            .settle(tag, multiple)
            .ok_or_else(|| AmqpError::precondition_failed(format!("unknown delivery tag {tag}")))?;
        if how != Settle::Ack
            && let Some(u) = settled.values().find(|u| u.queue.is_stream())
        {
            // RabbitMQ closes the connection: a stream cannot take one back.
            return Err(u.queue.not_for_streams("basic.nack and basic.reject"));
        }
        if self.mode == Mode::Tx {
            let tags = settled.keys().copied().collect();
            self.shared.hold_for_tx(settled);
            self.tx_pending.push(TxOp::Settle(tags, how));
            return Ok(());
        }
        self.apply_settle(settled, how);
        Ok(())
    }

    pub(super) fn apply_settle(&self, settled: BTreeMap<DeliveryTag, Unacked>, how: Settle) {
        if how == Settle::Ack {
            self.shared.counters.ack.add(settled.len() as u64);
            for u in settled.values() {
                u.queue.note_acked(u);
            }
        }
        by_queue(settled.into_values().collect(), |queue, seqs| match how {
            Settle::Ack => queue.ack(seqs),
            Settle::Discard => queue.reject(seqs),
            Settle::Requeue(why) => queue.requeue(seqs, why),
        });
        // A channel-wide prefetch may have held back other queues' consumers.
        if self.shared.credit.prefetch.load(Ordering::Acquire) != 0 {
            self.kick_consumed_queues();
        }
    }

    fn kick_consumed_queues(&self) {
        let queues: Vec<Arc<Queue>> = self.shared.consumers.lock().values().cloned().collect();
        for queue in queues {
            queue.kick();
        }
    }

    pub(super) fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        if let Some(queue) = self.shared.unacked_stream() {
            return Err(queue.not_for_streams("basic.recover"));
        }
        by_queue(self.shared.take_unacked(), |queue, seqs| {
            queue.requeue(seqs, Return::Returned)
        });
        Ok(())
    }
}

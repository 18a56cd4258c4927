//! basic.get, and what becomes of delivered messages and of the queue's content: acks,
//! rejects, requeues (at the original position), purge and delete.

use std::sync::Arc;

use tokio::time::Instant;

use super::dead_letter::{Dead, Reason};
use super::delivery::DeliverySink;
use super::dispatch::Recipient;
use super::kind::Backend;
use super::retry::Return;
use super::{Consumer, GetResult, Queue, QueueState, SeqId, quorum, remote};

impl Queue {
    /// basic.get: hands the head message to `sink` as get-ok.
    pub fn get(self: &Arc<Self>, sink: &dyn DeliverySink, no_ack: bool) -> GetResult {
        // The channel refuses basic.get on a stream before it gets here.
        self.with_state(|st, dead| {
            self.renew_lease(st);
            self.expire(st, Instant::now(), dead);
            let Some((seq, entry)) = st.ready.pop_first() else {
                return GetResult::Empty;
            };
            let message_count = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
            let to = Recipient::Get {
                sink,
                no_ack,
                message_count,
            };
            if self.send_ready(st, seq, entry, to).is_err() {
                return GetResult::Busy;
            }
            GetResult::Sent
        })
        .unwrap_or(GetResult::Empty)
    }

    /// Forgets acknowledged deliveries and lets more messages flow.
    pub fn ack(self: &Arc<Self>, seqs: impl IntoIterator<Item = SeqId>) {
        if let Some(remote) = self.remote_backend() {
            return self.settle_remote(remote, seqs, remote::Settlement::Ack);
        }
        if let Some(quorum) = self.quorum() {
            return quorum.settle(seqs, quorum::live::Settle::Ack);
        }
        if let Some(stream) = self.stream() {
            self.counters
                .ack
                .add_concurrent(seqs.into_iter().count() as u64);
            stream.acked();
            return;
        }
        self.with_state(|st, dead| {
            let mut acked = 0;
            for seq in seqs {
                if let Some(entry) = st.outstanding.remove(&seq) {
                    st.ready.forget(seq, &entry);
                    acked += 1;
                }
            }
            self.counters.ack.add(acked);
            self.expire(st, Instant::now(), dead);
            self.dispatch(st);
        });
    }

    /// Deliveries rejected or nacked without requeue: dead-lettered (reason
    /// rejected) if the queue has a dead-letter exchange, else dropped.
    pub fn reject(self: &Arc<Self>, seqs: impl IntoIterator<Item = SeqId>) {
        if let Some(remote) = self.remote_backend() {
            return self.settle_remote(remote, seqs, remote::Settlement::Reject);
        }
        if let Some(quorum) = self.quorum() {
            return quorum.settle(seqs, quorum::live::Settle::Reject);
        }
        if let Some(stream) = self.stream() {
            // Nothing leaves a stream; the credit came back.
            stream.acked();
            return;
        }
        self.with_state(|st, dead| {
            for seq in seqs {
                if let Some(entry) = st.outstanding.remove(&seq) {
                    st.ready.forget(seq, &entry);
                    self.discard(dead, entry.message, Reason::Rejected);
                }
            }
            self.expire(st, Instant::now(), dead);
            self.dispatch(st);
        });
    }

    /// Puts delivered messages back (returned for `why`) at their original
    /// positions, marked redelivered, or, under delayed retries, after their
    /// backoff. One that came back more often than the delivery limit allows
    /// is dead-lettered instead (reason delivery_limit), one whose TTL passed
    /// meanwhile expires, and a full drop-head queue drops its head.
    pub fn requeue(self: &Arc<Self>, seqs: impl IntoIterator<Item = SeqId>, why: Return) {
        if let Some(remote) = self.remote_backend() {
            return self.settle_remote(remote, seqs, remote::Settlement::requeue(why));
        }
        if let Some(quorum) = self.quorum() {
            let failed = why == Return::Failed;
            return quorum.settle(seqs, quorum::live::Settle::Requeue { failed });
        }
        if let Some(stream) = self.stream() {
            // A stream keeps every message: nothing to put back.
            stream.acked();
            return;
        }
        self.with_state(|st, dead| self.requeue_locked(st, dead, seqs, why));
    }

    pub(super) fn requeue_locked(
        self: &Arc<Self>,
        st: &mut QueueState,
        dead: &mut Vec<Dead>,
        seqs: impl IntoIterator<Item = SeqId>,
        why: Return,
    ) {
        if st.deleted {
            return;
        }
        let now = Instant::now();
        let limit = st.args.delivery_limit();
        let mut timed = false;
        for seq in seqs {
            if let Some(mut entry) = st.outstanding.remove(&seq) {
                entry.returns += 1;
                if limit.is_some_and(|limit| entry.returns > limit) {
                    st.ready.forget(seq, &entry);
                    self.discard(dead, entry.message, Reason::DeliveryLimit);
                    continue;
                }
                entry.redelivered = true;
                let Some(entry) = self.retry_later(st, seq, entry, why, now) else {
                    timed = true;
                    continue;
                };
                timed |= entry.expires_at.is_some();
                st.ready.insert(seq, entry);
            }
        }
        self.drop_head(st, dead);
        self.expire(st, now, dead);
        if timed {
            self.schedule(st);
        }
        self.dispatch(st);
    }

    /// Drops every ready message and every one waiting for its due time
    /// (dead-lettering none); returns how many.
    pub fn purge(&self) -> u32 {
        // The channel refuses queue.purge on a stream before it gets here.
        let Some(state) = self.classic() else {
            return 0;
        };
        let mut st = state.lock();
        let waiting = st.waiting.drain();
        for (seq, parked) in &waiting {
            if parked.stored() {
                st.ready.forget_seq(*seq);
            }
        }
        let count = st.ready.clear() + waiting.len();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Marks the queue deleted (dead-lettering nothing); returns its ready
    /// count and its consumers.
    pub fn delete(&self) -> (u32, Vec<Arc<Consumer>>) {
        let state = match &self.backend {
            Backend::Classic(state) => state,
            // RabbitMQ's delete-ok counts no message for a stream.
            Backend::Stream(stream) => return (0, stream.delete()),
            // Its home counts; this node's consumers of it end.
            Backend::Remote(remote) => return (0, Self::drop_remote_consumers(remote)),
            Backend::Quorum(quorum) => {
                let ready = u32::try_from(quorum.counts().0).unwrap_or(u32::MAX);
                return (ready, quorum.delete());
            }
        };
        let mut st = state.lock();
        st.deleted = true;
        // The vhost drops the queue's stored messages all at once.
        let count = st.ready.discard_all() + st.waiting.drain().len();
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        st.outstanding.clear();
        self.wake.notify_one();
        (count, st.consumers.take_all())
    }
}

//! A queue's consumers: consumer priorities (`x-priority` on basic.consume) and
//! single active consumer (`x-single-active-consumer`), as RabbitMQ's classic
//! queues have them.
//!
//! - Consumers are kept by priority, highest first, in registration order within
//!   a priority. A message goes to the first consumer in that order that can take
//!   it now (credit left, writer not full), which then moves to the back of its
//!   priority: round-robin among the highest priority with credit, lower
//!   priorities only while all higher ones are blocked.
//! - With single active consumer, the first consumer registered is the active
//!   one, whatever its priority, and nothing goes to the others, even while it is
//!   blocked. When it goes (cancel, channel or connection closed), the first
//!   remaining consumer in priority order takes over and gets what is ready
//!   right away; on a channel close the old one's unacked messages are requeued
//!   first, so they reach the new one first, redelivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;

use warren_codec::types::FieldTable;
use warren_exchanges::type_name;

use super::dead_letter::Dead;
use super::delivery::{ConsumerCredit, DeliverySink, same_sink};
use super::kind::Backend;
use super::{Queue, QueueState, Return, SeqId};
use crate::error::AmqpError;
use crate::names::ConsumerTag;
use warren_exchanges::integer;

/// A consumer attached to a queue.
#[derive(Debug)]
pub struct Consumer {
    /// The consumer tag.
    pub tag: ConsumerTag,
    /// Where its deliveries go (its channel).
    pub sink: Arc<dyn DeliverySink>,
    /// Deliveries need no ack.
    pub no_ack: bool,
    /// Asked for exclusive access to the queue.
    pub exclusive: bool,
    /// Its `x-priority` (0 unless given; higher goes first).
    pub priority: i64,
    /// Unacked count and prefetch.
    pub credit: Arc<ConsumerCredit>,
    /// Waiting for room in its connection's writer queue.
    pub(super) parked: AtomicBool,
}

impl Consumer {
    /// A consumer on `sink` with the default priority.
    pub fn new(
        tag: ConsumerTag,
        sink: Arc<dyn DeliverySink>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u16,
    ) -> Arc<Self> {
        Self::with_priority(tag, sink, no_ack, exclusive, prefetch, 0, None)
    }

    /// A consumer on `sink` with this `x-priority` and acknowledgement
    /// timeout (milliseconds; see [`ConsumerCredit::ack_timeout`]).
    pub fn with_priority(
        tag: ConsumerTag,
        sink: Arc<dyn DeliverySink>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u16,
        priority: i64,
        ack_timeout: Option<u64>,
    ) -> Arc<Self> {
        let credit = Arc::new(ConsumerCredit {
            prefetch,
            ack_timeout,
            channel: sink.credit().clone(),
            ..Default::default()
        });
        Arc::new(Consumer {
            tag,
            sink,
            no_ack,
            exclusive,
            priority,
            credit,
            parked: AtomicBool::new(false),
        })
    }

    /// Whether it can take a delivery now: not parked, and credit left.
    #[inline]
    pub(super) fn can_take(&self) -> bool {
        if self.parked.load(Ordering::Acquire) {
            return false;
        }
        self.no_ack || (self.credit.has_room() && self.credit.channel.has_room())
    }
}

/// The `x-consumer-timeout` of a basic.consume, in milliseconds: a
/// non-negative integer of any AMQP integer type; anything else is 406.
pub fn timeout_arg(arguments: &FieldTable, queue: &Queue) -> Result<Option<u64>, AmqpError> {
    let Some(value) = arguments.inner().get("x-consumer-timeout") else {
        return Ok(None);
    };
    integer(value)
        .and_then(|v| u64::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid arg 'x-consumer-timeout' for {}: \"expected non-negative integer, got {}\"",
                queue.describe(),
                type_name(value)
            ))
        })
}

/// Consumers of a deleted queue: each one's channel forgets it and, when its
/// client advertised consumer_cancel_notify, sends basic.cancel.
pub async fn notify_cancelled(consumers: &[Arc<Consumer>]) {
    for consumer in consumers {
        consumer.sink.queue_deleted(&consumer.tag).await;
    }
}

/// The `x-priority` of a basic.consume: an integer of any AMQP integer type,
/// 0 when absent; anything else is RabbitMQ's 406.
pub fn priority_arg(arguments: &FieldTable, queue: &Queue) -> Result<i64, AmqpError> {
    let Some(value) = arguments.inner().get("x-priority") else {
        return Ok(0);
    };
    // Every integer type RabbitMQ takes here fits an i64.
    integer(value)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid arg 'x-priority' for {}: \"expected integer, got {}\"",
                queue.describe(),
                type_name(value)
            ))
        })
}

/// The consumers of one queue.
#[derive(Debug, Default)]
pub(super) struct Consumers {
    /// By priority, highest first; within a priority in registration order,
    /// each moved to the back when it gets a delivery.
    groups: Vec<(i64, VecDeque<Arc<Consumer>>)>,
    len: usize,
    /// `x-single-active-consumer`: only `active` gets messages.
    single_active: bool,
    active: Option<Arc<Consumer>>,
}

impl Consumers {
    pub fn new(single_active: bool) -> Self {
        Consumers {
            single_active,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Consumer>> {
        self.groups.iter().flat_map(|(_, group)| group.iter())
    }

    /// Adds a consumer behind those of its priority; the first one of a single
    /// active consumer queue becomes the active one.
    fn add(&mut self, consumer: Arc<Consumer>) {
        if self.single_active && self.active.is_none() {
            self.active = Some(consumer.clone());
        }
        let at = self
            .groups
            .partition_point(|(priority, _)| *priority > consumer.priority);
        match self.groups.get_mut(at) {
            Some((priority, group)) if *priority == consumer.priority => group.push_back(consumer),
            _ => self
                .groups
                .insert(at, (consumer.priority, VecDeque::from([consumer]))),
        }
        self.len += 1;
    }

    /// Removes the consumers `gone` picks. When the active one is among them,
    /// the first remaining consumer in priority order becomes active. Returns
    /// whether any was removed.
    fn remove(&mut self, gone: impl Fn(&Consumer) -> bool) -> bool {
        let before = self.len;
        for (_, group) in &mut self.groups {
            group.retain(|c| !gone(c));
        }
        self.groups.retain(|(_, group)| !group.is_empty());
        self.len = self.groups.iter().map(|(_, group)| group.len()).sum();
        if self.active.as_deref().is_some_and(&gone) {
            self.active = self
                .groups
                .first()
                .and_then(|(_, group)| group.front().cloned());
        }
        self.len != before
    }

    /// Takes them all (the queue is being deleted).
    pub fn take_all(&mut self) -> Vec<Arc<Consumer>> {
        self.len = 0;
        self.active = None;
        std::mem::take(&mut self.groups)
            .into_iter()
            .flat_map(|(_, group)| group)
            .collect()
    }

    /// Whether a consumer could take a delivery now (what consumer capacity
    /// measures).
    pub fn can_deliver(&self) -> bool {
        if self.single_active {
            return self.active.as_ref().is_some_and(|c| c.can_take());
        }
        self.iter().any(|c| c.can_take())
    }

    /// The consumer the next message goes to, if any can take it now.
    #[inline]
    pub fn next(&mut self) -> Option<Arc<Consumer>> {
        if self.single_active {
            return self.active.clone().filter(|c| c.can_take());
        }
        for (_, group) in &mut self.groups {
            // The front one first, without an iterator over the deque's two
            // halves; alone in its priority it stays where it is, at the back
            // already (most queues have one consumer: about 70 instructions).
            if let Some(front) = group.front().filter(|c| c.can_take()) {
                let consumer = front.clone();
                if group.len() > 1 {
                    group.rotate_left(1);
                }
                return Some(consumer);
            }
            if let Some(i) = group.iter().skip(1).position(|c| c.can_take()) {
                // To the back of its priority: round-robin.
                let consumer = group.remove(i + 1)?;
                group.push_back(consumer.clone());
                return Some(consumer);
            }
        }
        None
    }
}

impl Queue {
    /// Attached consumers (with single active consumer, the waiting ones too).
    pub fn consumer_count(&self) -> u32 {
        let count = match &self.backend {
            Backend::Classic(state) => state.lock().consumers.len(),
            Backend::Stream(stream) => stream.consumers().len(),
            // Its home counts them.
            Backend::Remote(_) => 0,
            Backend::Quorum(quorum) => quorum.counts().2,
        };
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Whether the queue has consumers (for delete if-unused).
    pub fn has_consumers(&self) -> bool {
        self.consumer_count() > 0
    }

    /// Attaches a consumer; RabbitMQ's exclusive-consumer rules apply. On success
    /// `accepted` runs first, under the queue's lock (the channel sends
    /// consume-ok there), so the client sees consume-ok before any delivery and
    /// never sees it for a refused consumer.
    pub fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        arguments: &FieldTable,
        accepted: impl FnOnce(),
    ) -> Result<(), AmqpError> {
        if let Some(stream) = self.stream() {
            return stream.add_consumer(self, consumer, arguments, accepted);
        }
        if self.quorum().is_some() || self.remote_backend().is_some() {
            // Their consumers register asynchronously (the channel's own paths).
            return Err(AmqpError::internal_error(format!(
                "{} takes consumers through its channel path",
                self.describe()
            )));
        }
        self.with_state(|st, dead| self.add_consumer_locked(st, dead, consumer, accepted))
            .unwrap_or(Ok(()))
    }

    fn add_consumer_locked(
        self: &Arc<Self>,
        st: &mut QueueState,
        dead: &mut Vec<Dead>,
        consumer: Arc<Consumer>,
        accepted: impl FnOnce(),
    ) -> Result<(), AmqpError> {
        if st.deleted {
            return Err(AmqpError::not_found(format!("no {}", self.describe())));
        }
        // A single active consumer queue never takes an exclusive consumer.
        let in_use = if self.spec.args.single_active_consumer {
            consumer.exclusive
        } else {
            st.consumers.iter().any(|c| c.exclusive)
                || (consumer.exclusive && !st.consumers.is_empty())
        };
        if in_use {
            return Err(AmqpError::access_refused(format!(
                "{} in exclusive use",
                self.describe()
            )));
        }
        accepted();
        st.consumers.add(consumer);
        st.ever_had_consumer = true;
        self.expire(st, Instant::now(), dead);
        self.dispatch(st);
        Ok(())
    }

    /// Detaches the consumer with this tag on this channel (basic.cancel: its
    /// unacked deliveries stay with the channel). Returns whether the queue
    /// should now be auto-deleted.
    pub fn remove_consumer(self: &Arc<Self>, sink: &dyn DeliverySink, tag: &str) -> bool {
        if let Some(remote) = self.remote_backend() {
            // Auto-delete is the home's to decide.
            self.cancel_remote(remote, sink, tag);
            return false;
        }
        if let Some(quorum) = self.quorum() {
            quorum.cancel(sink, tag);
            return false;
        }
        if let Some(stream) = self.stream() {
            stream.remove_consumer(sink, tag);
            return false;
        }
        self.with_state(|st, dead| {
            let gone = |c: &Consumer| same_sink(c.sink.as_ref(), sink) && &*c.tag == tag;
            self.consumers_left(st, dead, gone, Vec::new())
        })
        .unwrap_or(false)
    }

    /// A channel closes: detaches all its consumers and, in the same step, puts
    /// its unacked deliveries from this queue back (redelivered) before a new
    /// single active consumer is served, as RabbitMQ does when a channel goes
    /// down. Returns whether the queue should now be auto-deleted.
    pub fn release_channel(self: &Arc<Self>, sink: &dyn DeliverySink) -> bool {
        if let Some(remote) = self.remote_backend() {
            self.release_remote(remote, sink);
            return false;
        }
        if let Some(quorum) = self.quorum() {
            quorum.release_channel(self, sink);
            return false;
        }
        if let Some(stream) = self.stream() {
            stream.release_channel(self, sink);
            return false;
        }
        self.with_state(|st, dead| {
            let seqs = sink.take_unacked_from(self);
            let gone = |c: &Consumer| same_sink(c.sink.as_ref(), sink);
            self.consumers_left(st, dead, gone, seqs)
        })
        .unwrap_or(false)
    }

    /// Removes the consumers `gone` picks, requeues `seqs`, and lets messages
    /// flow to whoever is active now. Returns whether the queue should now be
    /// auto-deleted (its requeued messages then go with it).
    fn consumers_left(
        self: &Arc<Self>,
        st: &mut QueueState,
        dead: &mut Vec<Dead>,
        gone: impl Fn(&Consumer) -> bool,
        seqs: Vec<SeqId>,
    ) -> bool {
        if !st.consumers.remove(gone) && seqs.is_empty() {
            return false;
        }
        if st.consumers.is_empty() {
            self.renew_lease(st);
            if self.spec.auto_delete && st.ever_had_consumer && !st.deleted {
                return true;
            }
        }
        self.requeue_locked(st, dead, seqs, Return::Failed);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::queue::testing::TestSink;

    fn consumer(tag: &str, priority: i64, prefetch: u16) -> Arc<Consumer> {
        Consumer::with_priority(
            ConsumerTag::from(tag),
            TestSink::new(),
            false,
            false,
            prefetch,
            priority,
            None,
        )
    }

    fn tags(consumers: &mut Consumers, n: usize) -> Vec<String> {
        (0..n)
            .filter_map(|_| consumers.next())
            .map(|c| {
                c.credit.delivered();
                c.tag.to_string()
            })
            .collect()
    }

    #[test]
    fn highest_priority_with_credit_first_round_robin_within_it() {
        let mut consumers = Consumers::new(false);
        consumers.add(consumer("low", -1, 0));
        consumers.add(consumer("a", 10, 2));
        consumers.add(consumer("default", 0, 1));
        consumers.add(consumer("b", 10, 2));
        assert_eq!(
            tags(&mut consumers, 7),
            ["a", "b", "a", "b", "default", "low", "low"]
        );
    }

    #[test]
    fn single_active_is_the_first_then_the_best_of_the_rest() {
        let mut consumers = Consumers::new(true);
        consumers.add(consumer("first", 0, 1));
        consumers.add(consumer("five", 5, 0));
        consumers.add(consumer("ten", 10, 0));
        consumers.add(consumer("ten-later", 10, 0));
        // Only the active one, and nobody while it is blocked.
        assert_eq!(tags(&mut consumers, 3), ["first"]);
        assert!(consumers.remove(|c| &*c.tag == "five"));
        assert!(consumers.next().is_none());
        assert!(consumers.remove(|c| &*c.tag == "first"));
        assert_eq!(tags(&mut consumers, 2), ["ten", "ten"]);
        assert!(!consumers.remove(|c| &*c.tag == "first"));
        assert_eq!(consumers.len(), 2);
        consumers.remove(|c| &*c.tag == "ten");
        assert_eq!(tags(&mut consumers, 1), ["ten-later"]);
    }
}

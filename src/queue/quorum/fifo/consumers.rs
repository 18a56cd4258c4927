//! The fifo's consumers: registration (checkout), cancel, settlements, what
//! a closed channel or a lost node had out, single active consumer, and the
//! assignment of ready messages.
//!
//! Assignment is deterministic: the consumer with the highest priority that
//! has credit gets the next message; among equal priorities the one served
//! longest ago (round-robin by a turn number, registration order first).
//! With single active consumer only the active one gets messages; when it
//! goes, the earliest registered consumer still up takes over.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ConsumerKey, Effect, Fifo, MsgHeader, MsgId, Out};
use crate::queue::dead_letter::Reason;

/// Whether a consumer takes deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerStatus {
    /// Registered: takes deliveries while it has credit.
    Up,
    /// basic.cancel'd: kept only while it has messages out.
    Cancelled,
}

/// A consumer and what it has out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// basic.qos prefetch count; 0 is unlimited.
    pub prefetch: u32,
    /// `x-priority`: higher goes first.
    pub priority: i64,
    /// Up or cancelled.
    pub status: ConsumerStatus,
    /// A basic.get's key: takes no deliveries, goes with its last message.
    pub once: bool,
    /// Delivered and not settled, by id.
    pub checked_out: BTreeMap<MsgId, MsgHeader>,
    /// Registration order (single active consumer's succession).
    seq: u64,
    /// Round-robin: the lowest turn among equals is served next.
    turn: u64,
}

impl Consumer {
    /// A basic.get's one-shot consumer.
    pub(super) fn once(seq: u64) -> Self {
        Consumer {
            prefetch: 1,
            priority: 0,
            status: ConsumerStatus::Up,
            once: true,
            checked_out: BTreeMap::new(),
            seq,
            turn: seq,
        }
    }

    /// Takes deliveries (up and not a basic.get's).
    pub fn is_live(&self) -> bool {
        self.status == ConsumerStatus::Up && !self.once
    }

    /// Room for one more delivery under its prefetch.
    pub fn has_credit(&self) -> bool {
        self.prefetch == 0 || self.checked_out.len() < self.prefetch as usize
    }

    /// Nothing more to keep it for.
    fn is_done(&self) -> bool {
        self.checked_out.is_empty() && (self.once || self.status == ConsumerStatus::Cancelled)
    }
}

impl Fifo {
    /// basic.consume, or a consumer registered again after a leader change
    /// (`resume`: the ids its node still holds; the key's others return).
    pub(super) fn checkout(
        &mut self,
        key: ConsumerKey,
        prefetch: u32,
        priority: i64,
        resume: Option<Vec<MsgId>>,
        out: &mut Out,
    ) {
        let seq = self.bump_seq();
        let consumer = self.consumers.entry(key.clone()).or_insert(Consumer {
            prefetch,
            priority,
            status: ConsumerStatus::Up,
            once: false,
            checked_out: BTreeMap::new(),
            seq,
            turn: seq,
        });
        consumer.prefetch = prefetch;
        consumer.priority = priority;
        consumer.status = ConsumerStatus::Up;
        // A basic.get's key turned consumer keeps what it has out.
        consumer.once = false;
        let mut lost = Vec::new();
        if let Some(held) = resume {
            // Assigned but never received (lost with the old leader): back to
            // the head, redelivered, without counting as a failed delivery.
            let held: BTreeSet<MsgId> = held.into_iter().collect();
            let ids: Vec<MsgId> = consumer
                .checked_out
                .keys()
                .filter(|id| !held.contains(id))
                .copied()
                .collect();
            lost.extend(ids.iter().filter_map(|id| consumer.checked_out.remove(id)));
        }
        for header in lost {
            self.put_back(header);
        }
        if self.config.single_active_consumer {
            match &self.active {
                Some(active) if *active == key => {}
                Some(_) => out
                    .effects
                    .push(Effect::ActiveChanged { key, active: false }),
                None => {
                    self.active = Some(key.clone());
                    out.effects
                        .push(Effect::ActiveChanged { key, active: true });
                }
            }
        }
    }

    /// basic.cancel: no more deliveries; its messages stay out until
    /// settled, returned or discarded, or its channel goes.
    pub(super) fn cancel(&mut self, key: &ConsumerKey, out: &mut Out) {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return;
        };
        if consumer.once {
            return;
        }
        consumer.status = ConsumerStatus::Cancelled;
        if consumer.is_done() {
            self.consumers.remove(key);
        }
        if self.active.as_ref() == Some(key) {
            self.active = None;
            self.activate_next(out);
        }
    }

    /// basic.ack: the messages leave the queue. Ids not out to `key` are
    /// ignored (a settle repeated, or after the messages were returned).
    pub(super) fn settle(&mut self, key: &ConsumerKey, ids: &[MsgId], out: &mut Out) {
        for header in self.take_checked_out(key, ids) {
            out.released.insert(header.id);
        }
    }

    /// Requeue: back to the head; a failed delivery counts, and past the
    /// limit the message is let go (reason `delivery_limit`).
    pub(super) fn return_ids(
        &mut self,
        key: &ConsumerKey,
        ids: &[MsgId],
        failed: bool,
        out: &mut Out,
    ) {
        for header in self.take_checked_out(key, ids) {
            if failed {
                self.return_failed(header, out);
            } else {
                self.put_back(header);
            }
        }
    }

    /// Reject without requeue: dead-lettered (reason `rejected`) or dropped.
    pub(super) fn discard(&mut self, key: &ConsumerKey, ids: &[MsgId], out: &mut Out) {
        for header in self.take_checked_out(key, ids) {
            self.let_go(header.id, Reason::Rejected, out);
        }
    }

    /// A channel or node went: its consumers go, everything they had out
    /// returns as failed deliveries (RabbitMQ's `return_all`, in id order).
    pub(super) fn remove_consumers(&mut self, gone: impl Fn(&ConsumerKey) -> bool, out: &mut Out) {
        let keys: Vec<ConsumerKey> = self.consumers.keys().filter(|k| gone(k)).cloned().collect();
        for key in &keys {
            if let Some(consumer) = self.consumers.remove(key) {
                for header in consumer.checked_out.into_values() {
                    self.return_failed(header, out);
                }
            }
        }
        if self
            .active
            .as_ref()
            .is_some_and(|active| keys.contains(active))
        {
            self.active = None;
            self.activate_next(out);
        }
    }

    /// Single active consumer: the earliest registered consumer still up
    /// becomes the active one.
    pub(super) fn activate_next(&mut self, out: &mut Out) {
        let next = self
            .consumers
            .iter()
            .filter(|(_, c)| c.is_live())
            .min_by_key(|(_, c)| c.seq)
            .map(|(k, _)| k.clone());
        if let Some(key) = next {
            self.active = Some(key.clone());
            out.effects
                .push(Effect::ActiveChanged { key, active: true });
        }
    }

    /// Hands ready messages to consumers with credit, expiring the head
    /// before each one.
    pub(super) fn assign(&mut self, out: &mut Out) {
        loop {
            self.expire(out);
            if self.head().is_none() {
                return;
            }
            let Some(key) = self.next_consumer() else {
                return;
            };
            let Some(mut header) = self.take_head() else {
                return;
            };
            let turn = self.bump_seq();
            out.effects.push(Effect::Deliver {
                key: key.clone(),
                id: header.id,
                delivery_count: header.delivery_count,
                redelivered: header.acquired,
            });
            header.acquired = true;
            if let Some(consumer) = self.consumers.get_mut(&key) {
                consumer.turn = turn;
                consumer.checked_out.insert(header.id, header);
            }
        }
    }

    /// Who gets the next message, if anyone can take one.
    fn next_consumer(&self) -> Option<ConsumerKey> {
        if self.config.single_active_consumer {
            let key = self.active.as_ref()?;
            let consumer = self.consumers.get(key)?;
            return (consumer.is_live() && consumer.has_credit()).then(|| key.clone());
        }
        self.consumers
            .iter()
            .filter(|(_, c)| c.is_live() && c.has_credit())
            .min_by_key(|(_, c)| (std::cmp::Reverse(c.priority), c.turn))
            .map(|(k, _)| k.clone())
    }

    /// Takes `ids` out of `key`'s checked-out messages (those it has),
    /// removing the consumer when nothing keeps it any more.
    fn take_checked_out(&mut self, key: &ConsumerKey, ids: &[MsgId]) -> Vec<MsgHeader> {
        let Some(consumer) = self.consumers.get_mut(key) else {
            return Vec::new();
        };
        let taken: Vec<MsgHeader> = ids
            .iter()
            .filter_map(|id| consumer.checked_out.remove(id))
            .collect();
        if consumer.is_done() {
            self.consumers.remove(key);
        }
        taken
    }

    /// A failed delivery comes back: counted, then requeued at the head or,
    /// past the delivery limit, let go.
    fn return_failed(&mut self, mut header: MsgHeader, out: &mut Out) {
        header.delivery_count = header.delivery_count.saturating_add(1);
        if self
            .config
            .delivery_limit
            .is_some_and(|limit| header.delivery_count > limit)
        {
            self.let_go(header.id, Reason::DeliveryLimit, out);
        } else {
            self.put_back(header);
        }
    }
}

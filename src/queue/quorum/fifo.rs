//! The quorum queue's state machine, Warren's `rabbit_fifo`: pure and
//! deterministic. Every member applies the same [`Command`]s in log order
//! and reaches the same [`Fifo`] (serde: it is the Raft snapshot); the
//! [`Effect`]s of an apply are executed by the leader only (bodies' releases
//! by every member). The only clock is the `ts` commands carry.
//!
//! - Messages: `returns` (requeued, delivered first, in id order) then
//!   `ready` (enqueue order). Headers only; bodies are in the store.
//! - Consumers (`fifo/consumers.rs`) and what each has out are replicated, so
//!   a delivery costs no log entry: assignment happens in `apply`.
//! - After every command: expire at the head, assign to consumers, then
//!   apply `drop-head` (RabbitMQ's `checkout` then `evaluate_limit`).
//! - Semantics follow RabbitMQ 4.0–4.2 quorum queues for AMQP 0-9-1: a
//!   return counts as a failed delivery; more than `delivery_limit` failed
//!   deliveries dead-letters (or drops) the message; expiry only at the head.

mod consumers;
mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use consumers::{Consumer, ConsumerStatus};
pub use types::{
    Command, Config, ConsumerKey, DEFAULT_DELIVERY_LIMIT, Effect, MsgHeader, MsgId, Overflow,
    Reply, Settlement,
};

use crate::queue::dead_letter::Reason;

/// One quorum queue's replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fifo {
    /// The arguments in force.
    config: Config,
    /// Never delivered, in enqueue (id) order.
    ready: VecDeque<MsgHeader>,
    /// Returned, delivered before `ready`, oldest id first.
    returns: BTreeMap<MsgId, MsgHeader>,
    /// Body bytes of `ready` and `returns`.
    ready_bytes: u64,
    /// Consumers, with what each has out.
    consumers: BTreeMap<ConsumerKey, Consumer>,
    /// Single active consumer: the active one.
    active: Option<ConsumerKey>,
    /// Registration order and round-robin turns.
    next_seq: u64,
    /// The last enqueued id (ids must grow).
    last_id: Option<MsgId>,
    /// The latest `ts` seen: commands without a clock expire against it.
    now: u64,
}

/// What one apply produced: the answer to the submitter and the effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The answer.
    pub reply: Reply,
    /// What the leader does, in order.
    pub effects: Vec<Effect>,
}

/// Effects being collected during one apply; released ids are gathered and
/// emitted last, so a dead letter's body is still there when it is read.
#[derive(Default)]
struct Out {
    effects: Vec<Effect>,
    released: BTreeSet<MsgId>,
}

impl Out {
    fn finish(self, reply: Reply) -> Applied {
        let mut effects = self.effects;
        if !self.released.is_empty() {
            effects.push(Effect::Release {
                ids: self.released.into_iter().collect(),
            });
        }
        Applied { reply, effects }
    }
}

impl Fifo {
    /// An empty queue with these arguments.
    pub fn new(config: Config) -> Self {
        Fifo {
            config,
            ..Fifo::default()
        }
    }

    /// Applies one command of the log.
    pub fn apply(&mut self, command: Command) -> Applied {
        let mut out = Out::default();
        let reply = match command {
            Command::Enqueue {
                id,
                size,
                expires_at,
                ts,
            } => {
                self.advance(ts);
                // What expired by now does not count against the limits.
                self.expire(&mut out);
                self.enqueue(id, size, expires_at)
            }
            Command::Checkout {
                key,
                prefetch,
                priority,
                resume,
            } => {
                self.checkout(key, prefetch, priority, resume, &mut out);
                Reply::Ok
            }
            Command::Cancel { key } => {
                self.cancel(&key, &mut out);
                Reply::Ok
            }
            Command::Settle { key, ids } => {
                self.settle(&key, &ids, &mut out);
                Reply::Ok
            }
            Command::Return { key, ids, failed } => {
                self.return_ids(&key, &ids, failed, &mut out);
                Reply::Ok
            }
            Command::Discard { key, ids } => {
                self.discard(&key, &ids, &mut out);
                Reply::Ok
            }
            Command::ChannelDown {
                node,
                connection,
                channel,
            } => {
                self.remove_consumers(
                    |k| k.node == node && k.connection == connection && k.channel == channel,
                    &mut out,
                );
                Reply::Ok
            }
            Command::NodeDown { node } => {
                self.remove_consumers(|k| k.node == node, &mut out);
                Reply::Ok
            }
            Command::Dequeue {
                key,
                settlement,
                ts,
            } => {
                self.advance(ts);
                self.dequeue(key, settlement, &mut out)
            }
            Command::Tick { ts } => {
                self.advance(ts);
                Reply::Ok
            }
            Command::Purge => Reply::Purged(self.purge(&mut out)),
            Command::UpdateConfig(config) => {
                self.update_config(config, &mut out);
                Reply::Ok
            }
        };
        self.assign(&mut out);
        self.drop_head(&mut out);
        out.finish(reply)
    }

    /// The arguments in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages ready for delivery (returned ones included).
    pub fn messages_ready(&self) -> u64 {
        (self.ready.len() + self.returns.len()) as u64
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    /// Messages delivered and not yet settled, returned or discarded.
    pub fn messages_unacked(&self) -> u64 {
        self.consumers
            .values()
            .map(|c| c.checked_out.len() as u64)
            .sum()
    }

    /// Body bytes of the unacked messages.
    pub fn unacked_bytes(&self) -> u64 {
        self.consumers
            .values()
            .flat_map(|c| c.checked_out.values())
            .map(|h| u64::from(h.size))
            .sum()
    }

    /// Consumers that take deliveries (not cancelled, not a basic.get's).
    pub fn consumer_count(&self) -> usize {
        self.consumers.values().filter(|c| c.is_live()).count()
    }

    /// A consumer, if registered (cancelled ones stay while they have
    /// messages out).
    pub fn consumer(&self, key: &ConsumerKey) -> Option<&Consumer> {
        self.consumers.get(key)
    }

    /// Every consumer by key.
    pub fn consumers(&self) -> impl Iterator<Item = (&ConsumerKey, &Consumer)> {
        self.consumers.iter()
    }

    /// Single active consumer: the active one.
    pub fn active_consumer(&self) -> Option<&ConsumerKey> {
        self.active.as_ref()
    }

    /// The ready messages in delivery order (returned first).
    pub fn ready_headers(&self) -> impl Iterator<Item = &MsgHeader> {
        self.returns.values().chain(self.ready.iter())
    }

    /// When the head expires, if it has a TTL: the leader's next `Tick`.
    pub fn next_expiry(&self) -> Option<u64> {
        self.head().and_then(|h| h.expires_at)
    }

    /// Moves the clock forward (a leader's clock may step back; the
    /// machine's never does, as RabbitMQ's monotonic `last_command_time`).
    fn advance(&mut self, ts: u64) {
        self.now = self.now.max(ts);
    }

    fn enqueue(&mut self, id: MsgId, size: u32, expires_at: Option<u64>) -> Reply {
        if self.last_id.is_some_and(|last| id <= last) {
            return Reply::Duplicate;
        }
        if self.refuses(size) {
            return Reply::Rejected;
        }
        self.last_id = Some(id);
        let ttl_at = self
            .config
            .message_ttl
            .map(|ttl| self.now.saturating_add(ttl));
        let expires_at = match (expires_at, ttl_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ready_bytes += u64::from(size);
        self.ready.push_back(MsgHeader {
            id,
            size,
            expires_at,
            delivery_count: 0,
            acquired: false,
        });
        Reply::Accepted
    }

    /// reject-publish: whether a message of `size` bytes would go over a limit.
    fn refuses(&self, size: u32) -> bool {
        self.config.overflow == Overflow::RejectPublish
            && (self
                .config
                .max_length
                .is_some_and(|max| self.messages_ready() + 1 > max)
                || self
                    .config
                    .max_length_bytes
                    .is_some_and(|max| self.ready_bytes + u64::from(size) > max))
    }

    /// drop-head: lets go of messages from the head until within the limits.
    fn drop_head(&mut self, out: &mut Out) {
        if self.config.overflow != Overflow::DropHead {
            return;
        }
        let (max_length, max_bytes) = (self.config.max_length, self.config.max_length_bytes);
        while max_length.is_some_and(|max| self.messages_ready() > max)
            || max_bytes.is_some_and(|max| self.ready_bytes > max)
        {
            let Some(header) = self.take_head() else {
                return;
            };
            self.let_go(header.id, Reason::Maxlen, out);
        }
    }

    /// The next message to deliver.
    fn head(&self) -> Option<&MsgHeader> {
        self.returns.values().next().or_else(|| self.ready.front())
    }

    /// Takes the next message to deliver out of the ready ones.
    fn take_head(&mut self) -> Option<MsgHeader> {
        let header = match self.returns.pop_first() {
            Some((_, h)) => h,
            None => self.ready.pop_front()?,
        };
        self.ready_bytes -= u64::from(header.size);
        Some(header)
    }

    /// Puts a returned message back at the head, among the returned ones by id.
    fn put_back(&mut self, header: MsgHeader) {
        self.ready_bytes += u64::from(header.size);
        self.returns.insert(header.id, header);
    }

    /// Expires messages at the head whose time has come (only the head, as
    /// RabbitMQ: a message behind an unexpired one waits for its turn).
    fn expire(&mut self, out: &mut Out) {
        while self
            .head()
            .and_then(|h| h.expires_at)
            .is_some_and(|at| self.now >= at)
        {
            if let Some(header) = self.take_head() {
                self.let_go(header.id, Reason::Expired, out);
            }
        }
    }

    /// A message leaves for good without being settled: dead-lettered when
    /// the queue has a dead-letter exchange (at-most-once), else dropped.
    fn let_go(&mut self, id: MsgId, reason: Reason, out: &mut Out) {
        if self.config.dead_lettering {
            out.effects.push(Effect::DeadLetter { id, reason });
        }
        out.released.insert(id);
    }

    fn purge(&mut self, out: &mut Out) -> u64 {
        let count = self.messages_ready();
        let returned = std::mem::take(&mut self.returns).into_keys();
        let ready = std::mem::take(&mut self.ready).into_iter().map(|h| h.id);
        out.released.extend(returned.chain(ready));
        self.ready_bytes = 0;
        count
    }

    fn update_config(&mut self, config: Config, out: &mut Out) {
        let sac_changed = config.single_active_consumer != self.config.single_active_consumer;
        self.config = config;
        if sac_changed {
            self.active = None;
            if self.config.single_active_consumer {
                self.activate_next(out);
            }
        }
    }

    /// basic.get: the head, settled at once or checked out to `key` (a
    /// one-shot consumer that takes no deliveries and goes with its last
    /// message), as RabbitMQ's dequeue.
    fn dequeue(&mut self, key: ConsumerKey, settlement: Settlement, out: &mut Out) -> Reply {
        if self.config.single_active_consumer {
            return Reply::Unsupported;
        }
        if self.consumers.get(&key).is_some_and(|c| !c.once) {
            // A live consumer's key: RabbitMQ answers empty too.
            return Reply::Empty;
        }
        self.expire(out);
        let Some(mut header) = self.take_head() else {
            return Reply::Empty;
        };
        let delivered = header.clone();
        header.acquired = true;
        match settlement {
            Settlement::Settled => {
                out.released.insert(header.id);
            }
            Settlement::Unsettled => {
                let seq = self.bump_seq();
                let consumer = self
                    .consumers
                    .entry(key)
                    .or_insert_with(|| Consumer::once(seq));
                consumer.checked_out.insert(header.id, header);
            }
        }
        Reply::Dequeued {
            header: delivered,
            ready: self.messages_ready(),
        }
    }

    /// The next registration or round-robin number.
    fn bump_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

//! The queue engine: ready messages in order, deliveries to consumers with credit,
//! acks, requeues at the original position.
//!
//! Each queue's mutable state has one owner: a mutex that is never held across
//! `.await`. Whoever publishes, acks or consumes runs the delivery loop
//! ([`Queue::dispatch`]) under that lock and hands deliveries straight to the
//! consumers' writer queues, so a transient message crosses no more task
//! boundaries than reader -> writer.
//!
//! - `ready.rs`: the ready list (priority order, bytes, expiry index).
//! - `backlog/`: the ready list in memory up to a window, the rest on disk
//!   (`recover.rs`: read back at start, deep ones from segment summaries);
//!   persistent messages of durable queues in the store.
//! - `ttl.rs`: message TTL, the queue's `x-expires` lease, the timer task.
//! - `limits.rs`: `x-max-length(-bytes)` and `x-overflow`.
//! - `policy.rs`: the arguments in force under a policy, applied live.
//! - `dead_letter.rs`: `x-dead-letter-exchange`, the `x-death` header.
//! - `retry.rs`: delayed retries (`x-delayed-retry-*`), `x-opt-delivery-time`,
//!   `x-delivery-count`.
//! - `waiting.rs`: the messages not ready before a due time, by due time, in
//!   memory up to a window and on disk past it.
//! - `consumers.rs`: consumer priorities, single active consumer, attaching
//!   and detaching consumers.
//! - `dispatch.rs`: the delivery loop, and the straight hand-over of a message
//!   published to an empty queue.
//! - `delivery.rs`: the delivery seam: a queue hands messages to a
//!   [`DeliverySink`] (a channel), which tags, records and sends them.
//! - `host.rs`: the host seam: a queue asks its [`QueueHost`] (a vhost) to
//!   dead-letter messages and to delete it on expiry.
//! - `settle.rs`: basic.get, acks, rejects, requeues, purge and delete.
//! - `stored.rs`: a durable queue's messages read back at start and its
//!   redelivered marks at shutdown.
//!
//! This room imports no channel, vhost or connection: the seams are traits
//! defined here and implemented above.
//!
//! Messages a queue lets go (rejected, expired, over a limit, over the delivery
//! limit) are collected under the lock and dead-lettered after it is released,
//! so a queue never holds its lock while publishing into another.

pub mod args;
mod backlog;
mod consumers;
pub mod dead_letter;
pub mod delivery;
mod dispatch;
pub mod host;
mod inspect;
pub mod kind;
mod limits;
mod policy;
pub mod quorum;
mod ready;
pub mod remote;
mod retry;
#[cfg(test)]
mod retry_tests;
mod settle;
mod stored;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod ttl;
mod waiting;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;
use warren_codec::types::FieldTable;

use crate::dedup::{QueueDedup, Slot};
use crate::durable::Storage;
use crate::error::AmqpError;
use crate::message::Message;
use crate::names::{ConnectionId, QueueName, VHostName, resource};
use crate::policy::Applied;
use crate::stats::{History, QueueCounters};
pub use args::QueueArgs;
use backlog::Backlog;
use consumers::Consumers;
pub use consumers::{Consumer, notify_cancelled, priority_arg, timeout_arg};
use dead_letter::{Dead, DeadLetterTarget, Reason};
pub use delivery::{
    ChannelCredit, CoarseClock, ConsumerCredit, Deliveries, Delivery, DeliveryKind, DeliverySink,
    Refused, Unacked, Undelivered, by_queue,
};
pub use host::QueueHost;
pub use inspect::{QueueStats, deletable};
use kind::Backend;
pub use kind::QueueType;
use ready::Entry;
pub use retry::{Jitter, RetryArgs, RetryOn, RetrySettings, Return};
use stream::StreamQueue;
pub use ttl::Arrival;
use waiting::Waiting;
use warren_storage::QueueId;

/// A message's position in its queue: increasing with arrival, kept on requeue.
pub type SeqId = u64;

/// How a queue was declared.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Survives a restart.
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<ConnectionId>,
    /// Deleted when its last consumer goes (once it has had one).
    pub auto_delete: bool,
    /// The declare arguments as given.
    pub arguments: FieldTable,
    /// The `x-` arguments as declared, parsed once (what is in force, with
    /// the policy, is `QueueState::args`).
    pub args: QueueArgs,
}

#[derive(Debug)]
struct QueueState {
    /// The arguments in force: the declared ones under the policy.
    args: QueueArgs,
    next_seq: SeqId,
    ready: Backlog,
    /// Delivered and waiting for an ack. Keyed by our own seqs, so a fast
    /// hash (SipHash was 3% of a persistent message's instructions).
    outstanding: HashMap<SeqId, Entry, foldhash::fast::RandomState>,
    /// Not ready before a due time (a delayed retry, `x-opt-delivery-time`).
    waiting: Waiting,
    consumers: Consumers,
    ever_had_consumer: bool,
    deleted: bool,
    /// Last declare, basic.get or departure of the last consumer (`x-expires`).
    used_at: Instant,
    timer: ttl::Timer,
    /// The ids of messages in the queue (`x-message-deduplication`), `None` when off.
    dedup: Option<QueueDedup>,
}

/// What a queue did with a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Taken (enqueued, delivered, or dropped by the queue's own rules).
    Accepted,
    /// Refused by `x-overflow` reject-publish(-dlx): the publisher gets a nack.
    Refused,
}

/// What basic.get found.
#[derive(Debug, PartialEq, Eq)]
pub enum GetResult {
    /// The queue had no ready message.
    Empty,
    /// A message was sent to the client.
    Sent,
    /// The sink had no room: wait for it and ask again.
    Busy,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    /// Its name.
    pub name: QueueName,
    /// Its vhost's name.
    pub vhost: VHostName,
    /// How it was declared.
    pub spec: QueueSpec,
    /// The engine that holds its messages (see `kind.rs`).
    backend: Backend,
    /// Where it lives, for dead-lettering and for deleting itself (`x-expires`).
    host: Weak<dyn QueueHost>,
    /// Wakes the timer task (see `ttl.rs`).
    wake: Arc<Notify>,
    /// Its id in the store.
    pub store_id: QueueId,
    /// The policies that apply (what the management API shows).
    policy: Mutex<Arc<Applied>>,
    /// The consumer timeout in force in milliseconds (`NO_TIMEOUT`: none), read
    /// by the timeout ticker without the queue's lock.
    consumer_timeout: AtomicU64,
    /// Message counters (rates, see `crate::stats`).
    pub counters: QueueCounters,
    /// Samples of the counters and lengths (`inspect.rs`).
    pub history: History,
    /// Taken out of its vhost's table (deleted, or hosted elsewhere now): a
    /// binding's handle on it no longer stands for its name ([`Queue::listed`]).
    unlisted: AtomicBool,
}

/// `Queue::consumer_timeout` when the queue sets none.
pub(super) const NO_TIMEOUT: u64 = u64::MAX;

impl Drop for Queue {
    fn drop(&mut self) {
        // Lets a sleeping timer task see that the queue is gone.
        self.wake.notify_one();
    }
}

impl Queue {
    /// A new, empty queue called `name` in the vhost called `vhost`, living
    /// in `host`, whose messages are `store_id` in `storage`.
    pub fn new(
        name: QueueName,
        vhost: VHostName,
        host: Weak<dyn QueueHost>,
        storage: Arc<Storage>,
        spec: QueueSpec,
        store_id: QueueId,
    ) -> Result<Arc<Self>, AmqpError> {
        let backend = match spec.args.stream {
            Some(args) => {
                Backend::Stream(StreamQueue::open(storage, store_id, args).map_err(|e| {
                    AmqpError::internal_error(format!("cannot open the stream's log: {e}"))
                })?)
            }
            None => Backend::Classic(Self::classic_state(storage, &spec, store_id)),
        };
        let queue = Self::with_backend(name, vhost, host, spec, store_id, backend);
        if let Some(state) = queue.classic() {
            queue.renew_lease(&mut state.lock());
        }
        Ok(queue)
    }

    /// The queue around `backend`, whatever its kind.
    fn with_backend(
        name: QueueName,
        vhost: VHostName,
        host: Weak<dyn QueueHost>,
        spec: QueueSpec,
        store_id: QueueId,
        backend: Backend,
    ) -> Arc<Self> {
        let consumer_timeout = AtomicU64::new(spec.args.consumer_timeout.unwrap_or(NO_TIMEOUT));
        Arc::new(Queue {
            name,
            vhost,
            backend,
            spec,
            host,
            wake: Arc::new(Notify::new()),
            store_id,
            policy: Mutex::default(),
            consumer_timeout,
            counters: QueueCounters::default(),
            history: History::default(),
            unlisted: AtomicBool::new(false),
        })
    }

    /// Whether it is still the queue its vhost knows by its name: a
    /// binding's handle on it may route without a name lookup only then.
    #[inline]
    pub fn listed(&self) -> bool {
        !self.unlisted.load(Ordering::Acquire)
    }

    /// Its vhost takes it out of its table (before it does, so no publish
    /// reaches it through a handle after it is gone by name).
    pub fn unlist(&self) {
        self.unlisted.store(true, Ordering::Release);
    }

    /// A new classic queue's state.
    fn classic_state(
        storage: Arc<Storage>,
        spec: &QueueSpec,
        store_id: QueueId,
    ) -> Mutex<QueueState> {
        let consumers = Consumers::new(spec.args.single_active_consumer);
        let keeps = spec.durable && spec.exclusive_owner.is_none();
        let ready = Backlog::new(storage, store_id, keeps, spec.args.max_priority);
        Mutex::new(QueueState {
            args: spec.args.clone(),
            next_seq: 0,
            ready,
            outstanding: HashMap::default(),
            waiting: Waiting::new(spec.args.max_priority.is_none()),
            consumers,
            ever_had_consumer: false,
            deleted: false,
            used_at: Instant::now(),
            timer: ttl::Timer::default(),
            dedup: spec.args.deduplication.as_ref().map(QueueDedup::new),
        })
    }

    /// The classic engine's state (`None` for a stream).
    fn classic(&self) -> Option<&Mutex<QueueState>> {
        match &self.backend {
            Backend::Classic(state) => Some(state),
            _ => None,
        }
    }

    /// The stream engine (`None` for a classic queue).
    pub(crate) fn stream(&self) -> Option<&Arc<StreamQueue>> {
        match &self.backend {
            Backend::Stream(stream) => Some(stream),
            _ => None,
        }
    }

    /// Whether it is a stream.
    pub fn is_stream(&self) -> bool {
        self.stream().is_some()
            || self
                .remote_backend()
                .is_some_and(|r| r.kind == QueueType::Stream)
    }

    /// A delivery of this queue was acked (a stream's named consumer moves on).
    pub fn note_acked(&self, unacked: &Unacked) {
        if let (Some(stream), Some(credit)) = (self.stream(), &unacked.consumer) {
            stream.acked_by(credit, unacked.seq);
        }
    }

    /// The 540 NOT_IMPLEMENTED a stream answers to what streams do not do
    /// (`what`: `basic.get`, `queue.purge`, ...), as RabbitMQ words it.
    pub fn not_for_streams(&self, what: &str) -> AmqpError {
        AmqpError::not_implemented(format!(
            "{what} not supported by stream queues {}",
            self.describe()
        ))
    }

    /// What the queue really is, as the management API reports its `type`
    /// (a queue declared `quorum` is `classic` until Warren has a cluster).
    pub fn type_name(&self) -> &'static str {
        self.backend.type_name()
    }

    /// Runs `f` under a classic queue's lock, then dead-letters what it let
    /// go (to the dead-letter exchange in force then; without one it is
    /// dropped). `None` for a stream: callers dispatch streams first.
    fn with_state<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut QueueState, &mut Vec<Dead>) -> R,
    ) -> Option<R> {
        let mut dead = Vec::new();
        let (result, target) = {
            let mut st = self.classic()?.lock();
            let result = f(&mut st, &mut dead);
            st.ready.flush_gone();
            let target = if dead.is_empty() {
                None
            } else {
                DeadLetterTarget::of(&st.args)
            };
            (result, target)
        };
        match target {
            Some(target) => self.dead_letter(dead, &target),
            // Never grown (nearly every call): it owns no memory, so it skips
            // its drop glue, an out-of-line call of about 20 instructions.
            None if dead.capacity() == 0 => std::mem::forget(dead),
            None => drop(dead),
        }
        Some(result)
    }

    /// A message leaves the queue for `reason`: kept for dead-lettering (the
    /// caller drops it if the queue has no dead-letter exchange).
    fn discard(&self, dead: &mut Vec<Dead>, message: Arc<Message>, reason: Reason) {
        dead.push((message, reason));
    }

    /// A declare of this queue (`x-expires`: the lease starts again).
    pub fn touch(self: &Arc<Self>) {
        if let Some(state) = self.classic() {
            self.renew_lease(&mut state.lock());
        }
    }

    /// `queue 'q' in vhost '/'`.
    pub fn describe(&self) -> String {
        resource("queue", &self.name, &self.vhost)
    }

    /// 405 when an exclusive queue belongs to another connection.
    pub fn check_exclusive(&self, connection: ConnectionId) -> Result<(), AmqpError> {
        match self.spec.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's strict check for a redeclare: the declare's owner (`Some` of the
    /// declaring connection when it asks for exclusive, else `None`) must be the
    /// queue's owner exactly; any mismatch is the same 405, never a 406.
    pub fn check_exclusive_strict(&self, owner: Option<ConnectionId>) -> Result<(), AmqpError> {
        if self.spec.exclusive_owner == owner {
            Ok(())
        } else {
            Err(self.locked())
        }
    }

    fn locked(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            self.describe()
        ))
    }

    /// Ready messages (what declare-ok and get-ok report), expired ones gone.
    pub fn message_count(self: &Arc<Self>) -> u32 {
        if let Some(quorum) = self.quorum() {
            return u32::try_from(quorum.counts().0).unwrap_or(u32::MAX);
        }
        if let Some(stream) = self.stream() {
            return u32::try_from(stream.message_count()).unwrap_or(u32::MAX);
        }
        self.with_state(|st, dead| {
            self.expire(st, Instant::now(), dead);
            u32::try_from(st.ready.len()).unwrap_or(u32::MAX)
        })
        .unwrap_or_default()
    }

    /// Whether a message published here must be on disk before its confirm:
    /// a persistent one in a durable classic queue, any in a stream.
    pub fn stores(&self, message: &Message) -> bool {
        self.is_stream() || (message.is_persistent() && self.keeps_persistent())
    }

    /// Enqueues a message and delivers what can be delivered; a queue over its
    /// length limit drops its head or refuses the message (`x-overflow`).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        self.publish_at(message, Arrival::now())
    }

    /// [`Queue::publish`] of a message that arrived at `arrival` (read once
    /// for all the queues it reaches).
    pub fn publish_at(self: &Arc<Self>, message: Arc<Message>, arrival: Arrival) -> Enqueued {
        if let Some(quorum) = self.quorum() {
            // Callers that need the confirm use `QuorumQueue::publish` (the vhost does).
            drop(quorum.publish(&message));
            return Enqueued::Accepted;
        }
        if let Some(stream) = self.stream() {
            self.counters.publish.incr_concurrent();
            stream.publish(message);
            return Enqueued::Accepted;
        }
        self.with_state(|st, dead| {
            if st.deleted {
                return Enqueued::Accepted;
            }
            let now = arrival.at;
            self.expire(st, now, dead);
            if self.refuses(st, &message) {
                if st.args.overflow == args::Overflow::RejectPublishDlx {
                    self.discard(dead, message, Reason::Maxlen);
                }
                return Enqueued::Refused;
            }
            let dedup_key = match &mut st.dedup {
                None => None,
                Some(dedup) => match dedup.key(&message) {
                    None => None,
                    Some(key) => {
                        let (ready, outstanding, waiting) =
                            (&st.ready, &st.outstanding, &st.waiting);
                        let held = |slot: Slot| {
                            outstanding.contains_key(&slot.seq)
                                || waiting.contains(slot.seq)
                                || ready.holds(slot.seq, slot.priority)
                        };
                        if dedup.is_duplicate(&key, now, held) {
                            // Swallowed and confirmed (see README, "Deduplication").
                            return Enqueued::Accepted;
                        }
                        Some(key)
                    }
                },
            };
            let seq = st.next_seq;
            st.next_seq += 1;
            let expires_at = ttl::expiry_of(st.args.message_ttl, message.expiration_ms(), now);
            let priority = self
                .spec
                .args
                .max_priority
                .map_or(0, |max| message.properties.priority().unwrap_or(0).min(max));
            if let (Some(dedup), Some(key)) = (&mut st.dedup, dedup_key) {
                dedup.insert(
                    key,
                    Slot {
                        seq,
                        priority,
                        expires_at,
                    },
                );
            }
            // `x-opt-delivery-time` (RabbitMQ 4.4's quorum queues): not ready before then.
            let wait_ms = retry::delivery_delay_ms(&message);
            let mut entry = Entry {
                message,
                redelivered: false,
                expires_at,
                priority,
                returns: 0,
                stored: false,
                arrived_ms: arrival.wall_ms,
            };
            if !st.ready.store_new(seq, &mut entry, wait_ms) {
                return Enqueued::Refused;
            }
            if let Some(wait_ms) = wait_ms {
                st.waiting
                    .insert(now + std::time::Duration::from_millis(wait_ms), seq, entry);
                self.counters.publish.incr();
                self.drop_head(st, dead);
                self.schedule(st);
                return Enqueued::Accepted;
            }
            self.counters.publish.incr();
            // An empty queue with a consumer that can take the message hands it
            // straight over: the same order as a push and a dispatch, without
            // the trip through the ready list (about 200 instructions).
            match st.ready.is_empty().then(|| st.consumers.next()).flatten() {
                Some(consumer) => {
                    if !self.offer(st, &consumer, seq, entry) {
                        self.dispatch(st);
                    }
                }
                None => {
                    st.ready.push(seq, entry);
                    self.dispatch(st);
                }
            }
            self.drop_head(st, dead);
            if expires_at.is_some() {
                // TTL 0: what no consumer took right away expires now.
                self.expire(st, now, dead);
                self.schedule(st);
            }
            Enqueued::Accepted
        })
        .unwrap_or(Enqueued::Accepted)
    }

    /// Runs the delivery loop (after a change that may let messages flow).
    pub fn kick(self: &Arc<Self>) {
        if let Some(stream) = self.stream() {
            stream.acked();
            return;
        }
        self.with_state(|st, dead| {
            self.expire(st, Instant::now(), dead);
            self.dispatch(st);
        });
    }
}

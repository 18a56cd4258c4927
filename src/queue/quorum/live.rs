//! A quorum queue on one of its member nodes: `Backend::Quorum`. Every change goes
//! through the queue's Raft group ([`QuorumLog`], implemented by the cluster); every member
//! applies the log to its [`Machine`], and each member hands the deliveries the fifo
//! assigns to consumers *of its own node* to their channels, from its own apply: no
//! delivery crosses the network, and a leader change does not interrupt consumers.
//!
//! Writes leave in order from one task per queue (publishes batched into one entry while
//! the previous write is in flight). A consumer's key carries this node's run in its
//! connection (`boot`), so consumers a restarted node had are told apart from new ones and
//! returned (`ChannelDown`) once the node has replayed the queue's log.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::fifo::{Command, ConsumerKey, Effect, MsgId, Settlement as Dequeue};
use super::machine::{MAX_BATCH, Machine, QuorumCommand, QuorumReply};
use crate::message::Message;
use crate::message::WireMessage;
use crate::names::NodeId;
use crate::queue::delivery::{Delivery, DeliveryKind, DeliverySink, Refused, Unacked};
use crate::queue::{Consumer, Queue, SeqId};

/// A write's answer: the entry's index and its reply.
pub type Written = Pin<Box<dyn Future<Output = Result<(u64, Bytes), String>> + Send>>;

/// The Raft groups of quorum queues, as the queue room sees them.
pub trait QuorumLog: Send + Sync + fmt::Debug {
    /// Appends `command` to `group` through its leader.
    fn write(&self, group: u64, command: Bytes) -> Written;
    /// Whether this node leads `group` now.
    fn leads(&self, group: u64) -> bool;
    /// The leader of `group` this node knows of, and the members it hears from.
    fn leader(&self, group: u64) -> (Option<NodeId>, Vec<NodeId>);
    /// The queue of `group` was deleted: this node stops hosting it.
    fn remove(&self, group: u64);
}

/// Where a quorum queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The node that declared it (and started its group).
    pub home: NodeId,
    /// Its group's members.
    pub members: Vec<NodeId>,
}

/// A write waiting for its turn.
enum Pending {
    Publish(WireMessage, oneshot::Sender<bool>),
    Op(Command, Option<oneshot::Sender<Option<(u64, QuorumReply)>>>),
}

/// A consumer of this node.
struct Local {
    consumer: Arc<Consumer>,
    /// Consume-ok went out: deliveries may go to the channel.
    active: bool,
    /// Deliveries waiting for consume-ok or for room in the channel's writer.
    backlog: VecDeque<(MsgId, Arc<Message>, bool)>,
    /// A task is waiting for room to send the backlog.
    draining: bool,
    /// The log index of its checkout, once committed.
    checked_out_at: Option<u64>,
}

/// How long a write may wait for its group (a leader's loss takes an election, 2.5 to 5 s).
const WRITE_WITHIN: Duration = Duration::from_secs(20);

/// A quorum queue's handle on a member node.
pub struct QuorumQueue {
    /// Its Raft group (the metadata log index that declared it).
    pub group: u64,
    /// Where it lives.
    pub placement: Placement,
    here: NodeId,
    /// This node's run, in its consumers' keys.
    run: u64,
    log: Arc<dyn QuorumLog>,
    machine: Mutex<Machine>,
    applied: watch::Sender<u64>,
    locals: Mutex<HashMap<ConsumerKey, Local>>,
    /// Deliveries to this node's channels not settled yet, with their consumer.
    delivered: Mutex<HashMap<MsgId, ConsumerKey>>,
    writes: mpsc::UnboundedSender<Pending>,
    queue: OnceLock<Weak<Queue>>,
    /// Log bytes applied since the last snapshot was asked for (compaction, `chores`).
    since_snapshot: std::sync::atomic::AtomicU64,
    /// The queue was deleted.
    deleted: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for QuorumQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuorumQueue")
            .field("group", &self.group)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

impl QuorumQueue {
    /// The handle of group `group` on node `here` (in its run `run`), writing through `log`.
    pub fn new(
        group: u64,
        placement: Placement,
        here: NodeId,
        run: u64,
        log: Arc<dyn QuorumLog>,
        config: super::fifo::Config,
    ) -> Arc<Self> {
        let (writes, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            group,
            placement,
            here,
            run: run & 0xffff_ffff,
            log,
            machine: Mutex::new(Machine {
                fifo: super::fifo::Fifo::new(config),
                ..Machine::default()
            }),
            applied: watch::channel(0).0,
            locals: Mutex::default(),
            delivered: Mutex::default(),
            writes,
            queue: OnceLock::new(),
            since_snapshot: std::sync::atomic::AtomicU64::new(0),
            deleted: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(write_in_order(Arc::downgrade(&queue), rx));
        queue
    }

    /// Ties the handle to the queue it is the engine of.
    pub(crate) fn attach(&self, queue: &Arc<Queue>) {
        let _ = self.queue.set(Arc::downgrade(queue));
    }

    fn queue(&self) -> Option<Arc<Queue>> {
        self.queue.get().and_then(Weak::upgrade)
    }

    /// The key of consumer `tag` of `sink` on this node, in this run.
    pub fn key(&self, sink: &dyn DeliverySink, tag: &str) -> ConsumerKey {
        ConsumerKey::new(
            self.here.0,
            (self.run << 32) | (sink.connection_id().0 & 0xffff_ffff),
            sink.channel_id(),
            tag,
        )
    }

    /// Publishes `message`; the receiver says whether a majority has it (false: refused
    /// by `reject-publish`, or no leader in time).
    pub fn publish(&self, message: &Message) -> oneshot::Receiver<bool> {
        let (taken, receiver) = oneshot::channel();
        let _ = self
            .writes
            .send(Pending::Publish(WireMessage::of(message), taken));
        receiver
    }

    /// Appends `command` after everything this node wrote before, not waiting.
    fn submit(&self, command: Command) {
        let _ = self.writes.send(Pending::Op(command, None));
    }

    /// Appends `command` and waits for its reply.
    async fn ask(&self, command: Command) -> Option<QuorumReply> {
        self.ask_in_order(command).await.map(|(_, reply)| reply)
    }

    /// Appends `command` after this node's earlier writes; its index and reply.
    async fn ask_in_order(&self, command: Command) -> Option<(u64, QuorumReply)> {
        let (reply, receiver) = oneshot::channel();
        let _ = self.writes.send(Pending::Op(command, Some(reply)));
        receiver.await.ok().flatten()
    }

    /// Applies the log entry at `index` (every member, in log order).
    pub fn apply(&self, index: u64, bytes: &[u8]) -> Vec<u8> {
        let (applied, consumers_went) = {
            let mut machine = self.machine.lock();
            let before = machine.fifo.consumer_count();
            let applied = machine.apply(index, bytes);
            (applied, machine.fifo.consumer_count() < before)
        };
        self.applied.send_replace(index);
        self.since_snapshot
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if consumers_went {
            self.forget_removed_consumers(index);
        }
        self.execute(applied.effects);
        applied
            .reply
            .and_then(|r| postcard::to_stdvec(&r).ok())
            .unwrap_or_default()
    }

    /// The state, for the group's snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(&*self.machine.lock()).unwrap_or_default()
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&self, data: &[u8]) -> Result<(), std::io::Error> {
        let machine: Machine = postcard::from_bytes(data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let applied = machine.applied;
        *self.machine.lock() = machine;
        self.applied.send_replace(applied);
        Ok(())
    }

    /// This node's consumers the log removed (their node was taken for down): they end
    /// here too, with basic.cancel to clients that asked for it.
    fn forget_removed_consumers(&self, index: u64) {
        let gone: Vec<Arc<Consumer>> = {
            let machine = self.machine.lock();
            let mut locals = self.locals.lock();
            let keys: Vec<ConsumerKey> = locals
                .iter()
                .filter(|(key, local)| {
                    local.checked_out_at.is_some_and(|at| at <= index)
                        && machine.fifo.consumer(key).is_none()
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.iter()
                .filter_map(|key| locals.remove(key).map(|l| l.consumer))
                .collect()
        };
        if !gone.is_empty() {
            tokio::spawn(async move { crate::queue::notify_cancelled(&gone).await });
        }
    }

    /// The channels of other nodes that consume from the queue: (node, connection, channel).
    pub fn consumer_channels_elsewhere(&self) -> Vec<(u64, u64, u16)> {
        let machine = self.machine.lock();
        let mut channels: Vec<(u64, u64, u16)> = machine
            .fifo
            .consumers()
            .filter(|(key, _)| key.node != self.here.0)
            .map(|(key, _)| (key.node, key.connection, key.channel))
            .collect();
        channels.sort_unstable();
        channels.dedup();
        channels
    }

    /// A channel of another node is gone: what its consumers had out returns.
    pub fn channel_down(&self, node: u64, connection: u64, channel: u16) {
        self.submit(Command::ChannelDown {
            node,
            connection,
            channel,
        });
    }

    /// Another node is down: what its consumers had out returns.
    pub fn node_down(&self, node: u64) {
        self.submit(Command::NodeDown { node });
    }

    /// Deliveries to this node's consumers; dead letters if this node leads.
    fn execute(&self, effects: Vec<(Effect, Option<WireMessage>)>) {
        for (effect, body) in effects {
            match effect {
                Effect::Deliver {
                    key,
                    id,
                    delivery_count,
                    redelivered,
                } if key.node == self.here.0 => {
                    let Some(message) = body.and_then(|b| b.to_message()) else {
                        continue;
                    };
                    let message = with_count(message, delivery_count);
                    self.deliver(key, id, message, redelivered);
                }
                Effect::DeadLetter { reason, .. } if self.log.leads(self.group) => {
                    if let (Some(queue), Some(message)) =
                        (self.queue(), body.and_then(|b| b.to_message()))
                    {
                        queue.dead_letter_now(message, reason);
                    }
                }
                _ => {}
            }
        }
    }

    fn deliver(&self, key: ConsumerKey, id: MsgId, message: Arc<Message>, redelivered: bool) {
        let mut locals = self.locals.lock();
        let Some(local) = locals.get_mut(&key) else {
            // A consumer of an earlier run of this node: returned once it is replayed.
            return;
        };
        local.backlog.push_back((id, message, redelivered));
        if local.active && !local.draining {
            self.drain(&key, local);
        }
    }

    /// Hands a consumer's backlog to its channel while its writer has room; else waits
    /// for room on a task.
    fn drain(&self, key: &ConsumerKey, local: &mut Local) {
        let Some(queue) = self.queue() else {
            return;
        };
        while let Some((id, message, redelivered)) = local.backlog.pop_front() {
            let consumer = &local.consumer;
            let unacked = (!consumer.no_ack).then(|| Unacked {
                queue: queue.clone(),
                seq: id.0,
                consumer: Some(consumer.credit.clone()),
                delivered_at: 0,
            });
            let delivery = Delivery {
                kind: DeliveryKind::Consumer(consumer.tag.clone()),
                message,
                redelivered,
                live: None,
            };
            match consumer.sink.try_deliver(delivery, unacked) {
                Ok(_) => {
                    if consumer.no_ack {
                        self.submit(Command::Settle {
                            key: key.clone(),
                            ids: vec![id],
                        });
                    } else {
                        self.delivered.lock().insert(id, key.clone());
                    }
                }
                Err(undelivered) if undelivered.refused == Refused::Full => {
                    local
                        .backlog
                        .push_front((id, undelivered.message, redelivered));
                    local.draining = true;
                    let sink = consumer.sink.clone();
                    let key = key.clone();
                    let weak = self.queue.get().cloned();
                    tokio::spawn(async move {
                        let room = sink.room().await;
                        let Some(queue) = weak.and_then(|w| w.upgrade()) else {
                            return;
                        };
                        if let Some(quorum) = queue.quorum() {
                            let mut locals = quorum.locals.lock();
                            if let Some(local) = locals.get_mut(&key) {
                                local.draining = false;
                                if room {
                                    quorum.drain(&key, local);
                                }
                            }
                        }
                    });
                    return;
                }
                // The channel is closing: its release returns everything it had.
                Err(_) => return,
            }
        }
    }

    /// basic.consume: registered here first (deliveries wait for consume-ok), then
    /// checked out in the log.
    pub async fn consume(&self, consumer: Arc<Consumer>) -> Result<ConsumerKey, ()> {
        let key = self.key(consumer.sink.as_ref(), &consumer.tag);
        let checkout = Command::Checkout {
            key: key.clone(),
            prefetch: u32::from(consumer.credit.prefetch),
            priority: consumer.priority,
            resume: None,
        };
        self.locals.lock().insert(
            key.clone(),
            Local {
                consumer,
                active: false,
                backlog: VecDeque::new(),
                draining: false,
                checked_out_at: None,
            },
        );
        match self.ask_in_order(checkout).await {
            Some((index, QuorumReply::Ok)) => {
                if let Some(local) = self.locals.lock().get_mut(&key) {
                    local.checked_out_at = Some(index);
                }
                Ok(key)
            }
            _ => {
                self.locals.lock().remove(&key);
                Err(())
            }
        }
    }

    /// Consume-ok went out: deliveries flow.
    pub fn activate(&self, key: &ConsumerKey) {
        let mut locals = self.locals.lock();
        if let Some(local) = locals.get_mut(key) {
            local.active = true;
            if !local.draining {
                self.drain(key, local);
            }
        }
    }

    /// Whether the queue was deleted (its group must not start again).
    pub fn deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The queue is deleted: its group stops here, and this node's consumers end
    /// (returned, to be told).
    pub(crate) fn delete(&self) -> Vec<Arc<Consumer>> {
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
        self.log.remove(self.group);
        self.drop_local_consumers()
    }

    /// This node's consumers end (returned, to be told).
    fn drop_local_consumers(&self) -> Vec<Arc<Consumer>> {
        self.locals
            .lock()
            .drain()
            .map(|(_, local)| local.consumer)
            .collect()
    }

    /// basic.cancel.
    pub(crate) fn cancel(&self, sink: &dyn DeliverySink, tag: &str) {
        let key = self.key(sink, tag);
        if self.locals.lock().remove(&key).is_some() {
            self.submit(Command::Cancel { key });
        }
    }

    /// The channel closes: its consumers go and what it had out returns.
    pub(crate) fn release_channel(&self, queue: &Arc<Queue>, sink: &dyn DeliverySink) {
        let key = self.key(sink, "");
        self.locals
            .lock()
            .retain(|k, _| !(k.connection == key.connection && k.channel == key.channel));
        let seqs = sink.take_unacked_from(queue);
        {
            let mut delivered = self.delivered.lock();
            for seq in seqs {
                delivered.remove(&MsgId(seq));
            }
        }
        self.submit(Command::ChannelDown {
            node: key.node,
            connection: key.connection,
            channel: key.channel,
        });
    }

    /// Settles deliveries this node's channels got.
    pub(crate) fn settle(&self, seqs: impl IntoIterator<Item = SeqId>, how: Settle) {
        let mut by_key: Vec<(ConsumerKey, Vec<MsgId>)> = Vec::new();
        {
            let mut delivered = self.delivered.lock();
            for seq in seqs {
                let id = MsgId(seq);
                if let Some(key) = delivered.remove(&id) {
                    match by_key.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ids)) => ids.push(id),
                        None => by_key.push((key, vec![id])),
                    }
                }
            }
        }
        for (key, ids) in by_key {
            self.submit(match how {
                Settle::Ack => Command::Settle { key, ids },
                Settle::Reject => Command::Discard { key, ids },
                // Every requeue counts as a delivery, as on RabbitMQ 3.x to 4.2 quorum
                // queues (4.3 stops counting basic.nack's).
                Settle::Requeue { .. } => Command::Return {
                    key,
                    ids,
                    failed: true,
                },
            });
        }
    }

    /// basic.get for `sink`: the message, its delivery count, whether it was delivered
    /// before and how many are left; `None` when empty. Err(()) when the log did not
    /// answer; Ok(Err) for a queue basic.get does not serve (single active consumer).
    pub async fn get(
        &self,
        sink: &dyn DeliverySink,
        no_ack: bool,
    ) -> Result<Option<(MsgId, Arc<Message>, bool, u64)>, GetRefused> {
        let key = self.key(sink, "amq.get");
        let command = Command::Dequeue {
            key: key.clone(),
            settlement: if no_ack {
                Dequeue::Settled
            } else {
                Dequeue::Unsettled
            },
            ts: wall_clock_ms(),
        };
        let (_, reply) = self
            .ask_indexed(command)
            .await
            .ok_or(GetRefused::NoLeader)?;
        match reply {
            QuorumReply::Empty => Ok(None),
            QuorumReply::Unsupported => Err(GetRefused::SingleActiveConsumer),
            QuorumReply::Dequeued {
                id,
                delivery_count,
                redelivered,
                ready,
                message,
            } => {
                let Some(message) = message.to_message() else {
                    return Ok(None);
                };
                if !no_ack {
                    self.delivered.lock().insert(id, key);
                }
                Ok(Some((
                    id,
                    with_count(message, delivery_count),
                    redelivered,
                    ready,
                )))
            }
            _ => Err(GetRefused::NoLeader),
        }
    }

    async fn ask_indexed(&self, command: Command) -> Option<(u64, QuorumReply)> {
        let bytes = Bytes::from(postcard::to_stdvec(&QuorumCommand::Op(command)).ok()?);
        let (index, reply) = self.log.write(self.group, bytes).await.ok()?;
        Some((index, postcard::from_bytes(&reply).ok()?))
    }

    /// queue.purge: how many ready messages went.
    pub async fn purge(&self) -> Option<u64> {
        match self.ask(Command::Purge).await {
            Some(QuorumReply::Purged(n)) => Some(n),
            _ => None,
        }
    }

    /// Ready messages, unacked messages, consumers (this member's applied state).
    pub fn counts(&self) -> (u64, u64, usize) {
        let m = self.machine.lock();
        (
            m.fifo.messages_ready(),
            m.fifo.messages_unacked(),
            m.fifo.consumer_count(),
        )
    }

    /// The group's leader as this member knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.log.leader(self.group).0
    }

    /// The members this node hears from (itself, and the leader's link to each when it
    /// leads or the leader when not).
    pub fn online(&self) -> Vec<NodeId> {
        self.log.leader(self.group).1
    }

    /// Ready and unacked body bytes.
    pub fn bytes(&self) -> (u64, u64) {
        let m = self.machine.lock();
        (m.fifo.ready_bytes(), m.fifo.unacked_bytes())
    }

    /// Returns what consumers of this node's earlier runs had out (they died with it).
    pub fn return_stale_consumers(&self) {
        let stale: Vec<(u64, u16)> = {
            let m = self.machine.lock();
            let mut stale: Vec<(u64, u16)> = m
                .fifo
                .consumers()
                .filter(|(k, _)| k.node == self.here.0 && k.connection >> 32 != self.run)
                .map(|(k, _)| (k.connection, k.channel))
                .collect();
            stale.sort_unstable();
            stale.dedup();
            stale
        };
        for (connection, channel) in stale {
            self.submit(Command::ChannelDown {
                node: self.here.0,
                connection,
                channel,
            });
        }
    }

    /// Whether the log grew enough since the last snapshot to compact it: by more than
    /// twice what the queue holds (so rewriting the content stays cheap per message) and
    /// 8 MiB, or by 1 MiB once the queue is empty (a busy queue that is often empty does
    /// not snapshot every second). Resets the count when it says yes.
    pub fn wants_snapshot(&self) -> bool {
        use std::sync::atomic::Ordering;
        let grown = self.since_snapshot.load(Ordering::Relaxed);
        let (ready, unacked) = self.bytes();
        let (messages, out, _) = self.counts();
        let held = ready + unacked;
        let wanted = if messages + out == 0 {
            grown > 1 << 20
        } else {
            grown > (2 * held).max(8 << 20)
        };
        if wanted {
            self.since_snapshot.store(0, Ordering::Relaxed);
        }
        wanted
    }

    /// The arguments in force changed (a policy): appended when they differ from the
    /// replicated ones (every member may ask; the entry is idempotent).
    pub fn update_config(&self, config: super::fifo::Config) {
        if self.machine.lock().fifo.config() != &config {
            self.submit(Command::UpdateConfig(config));
        }
    }

    /// Appends a clock tick when a message's TTL may have passed (the leader's job).
    pub fn tick(&self) {
        if !self.log.leads(self.group) {
            return;
        }
        let now = wall_clock_ms();
        let due = self.machine.lock().fifo.next_expiry();
        if due.is_some_and(|at| at <= now) {
            self.submit(Command::Tick { ts: now });
        }
    }
}

/// Why basic.get was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetRefused {
    /// No leader answered in time.
    NoLeader,
    /// The queue has single active consumer on (RabbitMQ refuses basic.get there too).
    SingleActiveConsumer,
}

/// How deliveries are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// basic.ack.
    Ack,
    /// Without requeue: dead-lettered or dropped.
    Reject,
    /// Back to the head.
    Requeue {
        /// Counts against the delivery limit.
        failed: bool,
    },
}

/// The message as delivered `count` times before: `x-delivery-count` from the first
/// redelivery, as RabbitMQ's quorum queues.
fn with_count(message: Arc<Message>, count: u32) -> Arc<Message> {
    if count == 0 {
        return message;
    }
    Arc::new(message.with_header(
        crate::queue::retry::DELIVERY_COUNT_HEADER,
        warren_codec::types::AMQPValue::LongLongInt(i64::from(count)),
    ))
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes a queue's commands in order: publishes that queued up while a write was in
/// flight go together in one entry.
async fn write_in_order(queue: Weak<QuorumQueue>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut next: Option<Pending> = None;
    loop {
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let Some(q) = queue.upgrade() else {
            return;
        };
        match first {
            Pending::Publish(message, taken) => {
                let mut messages = vec![message];
                let mut answers = vec![taken];
                let mut bytes = 0usize;
                while messages.len() < MAX_BATCH && bytes < 4 << 20 {
                    match rx.try_recv() {
                        Ok(Pending::Publish(m, t)) => {
                            bytes += m.body.len();
                            messages.push(m);
                            answers.push(t);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let command = QuorumCommand::Enqueue {
                    ts: wall_clock_ms(),
                    messages,
                };
                let taken = match write(&q, &command).await {
                    Some((_, QuorumReply::Enqueued(taken))) => taken,
                    _ => Vec::new(),
                };
                for (i, answer) in answers.into_iter().enumerate() {
                    let _ = answer.send(taken.get(i).copied().unwrap_or(false));
                }
            }
            Pending::Op(command, reply) => {
                let written = write(&q, &QuorumCommand::Op(command)).await;
                if let Some(reply) = reply {
                    let _ = reply.send(written);
                }
            }
        }
    }
}

async fn write(queue: &QuorumQueue, command: &QuorumCommand) -> Option<(u64, QuorumReply)> {
    let bytes = Bytes::from(postcard::to_stdvec(command).ok()?);
    match tokio::time::timeout(WRITE_WITHIN, queue.log.write(queue.group, bytes)).await {
        Ok(Ok((index, reply))) => Some((index, postcard::from_bytes(&reply).ok()?)),
        Ok(Err(error)) => {
            tracing::warn!(group = queue.group, %error, "a quorum queue write failed");
            None
        }
        Err(_) => None,
    }
}

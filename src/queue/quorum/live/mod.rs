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

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

pub use super::consumers::{GetRefused, Settle};
use super::fifo::{Command, ConsumerKey, Effect, MsgId};
use super::machine::{Machine, QuorumReply};
use super::writes::{Pending, write_in_order};
use crate::message::Message;
use crate::message::WireMessage;
use crate::names::NodeId;
use crate::queue::delivery::{Delivery, DeliveryKind, DeliverySink, Refused, Unacked};
use crate::queue::{Consumer, Queue};

mod departed;

/// A write's answer: the entry's index and its reply.
pub type Written = Pin<Box<dyn Future<Output = Result<(u64, Bytes), String>> + Send>>;

/// The Raft groups of quorum queues, as the queue room sees them.
pub trait QuorumLog: Send + Sync + fmt::Debug {
    /// Appends `command` to `group` through its leader.
    fn write(&self, group: u64, command: Bytes) -> Written;
    /// Appends `command` to `group` only if this node leads it, in its current term: never
    /// forwarded, never retried elsewhere.
    fn write_as_leader(&self, group: u64, command: Bytes) -> Written;
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
    /// This node became a member later (a member added): it never initialises the group.
    pub added: bool,
}

/// A consumer of this node.
pub(super) struct Local {
    pub(super) consumer: Arc<Consumer>,
    /// Consume-ok went out: deliveries may go to the channel.
    pub(super) active: bool,
    /// Deliveries waiting for consume-ok or for room in the channel's writer.
    pub(super) backlog: VecDeque<(MsgId, Arc<Message>, bool)>,
    /// A task is waiting for room to send the backlog.
    pub(super) draining: bool,
    /// The log index of its checkout, once committed.
    pub(super) checked_out_at: Option<u64>,
}

/// A quorum queue's handle on a member node.
pub struct QuorumQueue {
    /// Its Raft group (the metadata log index that declared it).
    pub group: u64,
    /// Where it lives.
    placement: Mutex<Placement>,
    pub(super) here: NodeId,
    /// This node's run, in its consumers' keys.
    pub(super) run: u64,
    pub(super) log: Arc<dyn QuorumLog>,
    pub(super) machine: Mutex<Machine>,
    pub(super) applied: watch::Sender<u64>,
    pub(super) locals: Mutex<HashMap<ConsumerKey, Local>>,
    /// Deliveries to this node's channels not settled yet, with their consumer.
    pub(super) delivered: Mutex<HashMap<MsgId, ConsumerKey>>,
    pub(super) writes: mpsc::UnboundedSender<Pending>,
    queue: OnceLock<Weak<Queue>>,
    /// Log bytes applied since the last snapshot was asked for (compaction, `chores`).
    since_snapshot: std::sync::atomic::AtomicU64,
    /// The bytes the queue held when this member last asked for a snapshot.
    snapshot_held: std::sync::atomic::AtomicU64,
    /// The queue was deleted.
    pub(super) deleted: std::sync::atomic::AtomicBool,
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
        bodies: super::bodies::Bodies,
    ) -> Arc<Self> {
        let (writes, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            group,
            placement: Mutex::new(placement),
            here,
            run: run & 0xffff_ffff,
            log,
            machine: Mutex::new(Machine::new(config, bodies, Some(here.0))),
            applied: watch::channel(0).0,
            locals: Mutex::default(),
            delivered: Mutex::default(),
            writes,
            queue: OnceLock::new(),
            since_snapshot: std::sync::atomic::AtomicU64::new(0),
            snapshot_held: std::sync::atomic::AtomicU64::new(0),
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
    pub(super) fn submit(&self, command: Command) {
        let _ = self.writes.send(Pending::Op(command, None));
    }

    /// Appends `command` and waits for its reply.
    pub(super) fn ask(
        &self,
        command: Command,
    ) -> impl Future<Output = Option<QuorumReply>> + Send + 'static {
        let asked = self.ask_in_order(command);
        async move { asked.await.map(|(_, reply)| reply) }
    }

    /// Appends `command` after this node's earlier writes (queued now, not when the
    /// future is first polled); its index and reply.
    pub(super) fn ask_in_order(
        &self,
        command: Command,
    ) -> impl Future<Output = Option<(u64, QuorumReply)>> + Send + 'static {
        let (reply, receiver) = oneshot::channel();
        let _ = self.writes.send(Pending::Op(command, Some(reply)));
        async move { receiver.await.ok().flatten() }
    }

    /// Applies the log entry at `index` (every member, in log order).
    pub fn apply(&self, index: u64, bytes: &[u8]) -> Vec<u8> {
        let (applied, consumers_went) = {
            let mut machine = self.machine.lock();
            let before = machine.fifo.consumer_count();
            let applied = machine.apply(index, bytes, &|| self.log.leads(self.group));
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

    /// Writes the state into the group's snapshot (an error, e.g. a paged body that
    /// cannot be read back, fails the snapshot: the log is then kept).
    pub fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<(), std::io::Error> {
        self.machine.lock().snapshot_to(out)
    }

    /// Replaces the state with a snapshot's, read from `input`.
    pub fn restore(&self, input: &mut dyn std::io::Read) -> Result<(), std::io::Error> {
        let applied = {
            let mut machine = self.machine.lock();
            machine.restore_from(input)?;
            machine.applied
        };
        self.applied.send_replace(applied);
        Ok(())
    }

    /// This node's consumers the log removed (their node was taken for down): they end
    /// here too, with basic.cancel to clients that asked for it.
    pub(super) fn forget_removed_consumers(&self, index: u64) {
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
                        // Logged where it failed; the message stays checked out to the
                        // consumer (not lost) and returns when its channel goes.
                        tracing::error!(group = self.group, %id, "a quorum queue delivery has no readable body; held back");
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
    pub(super) fn drain(&self, key: &ConsumerKey, local: &mut Local) {
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
            // Known before the channel has it: its settle may come back at once (the
            // channel of another node acks before this thread runs on).
            if !consumer.no_ack {
                self.delivered.lock().insert(id, key.clone());
            }
            let handed = consumer.sink.try_deliver(delivery, unacked);
            if handed.is_err() && !consumer.no_ack {
                self.delivered.lock().remove(&id);
            }
            match handed {
                Ok(_) => {
                    if consumer.no_ack {
                        self.submit(Command::Settle {
                            key: key.clone(),
                            ids: vec![id],
                        });
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

    /// queue.purge: how many ready messages went.
    pub fn purge(&self) -> impl Future<Output = Option<u64>> + Send + 'static {
        let asked = self.ask(Command::Purge);
        async move {
            match asked.await {
                Some(QuorumReply::Purged(n)) => Some(n),
                _ => None,
            }
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

    /// Where it lives now (its members change when one is added or removed).
    pub fn placement(&self) -> Placement {
        self.placement.lock().clone()
    }

    /// Its members from now on; a removed home passes to the first member left (the
    /// node non-members send consumers to).
    pub fn set_members(&self, members: Vec<NodeId>) {
        let mut placement = self.placement.lock();
        if !members.contains(&placement.home)
            && let Some(&first) = members.first()
        {
            placement.home = first;
        }
        placement.members = members;
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

    /// Whether the log grew enough since the last snapshot to compact it: by more than
    /// twice what the queue holds (so rewriting the content stays cheap per message) and
    /// 8 MiB, or by 1 MiB once the queue is empty (a busy queue that is often empty does
    /// not snapshot every second), or once it is empty after a snapshot that kept more
    /// than 1 MiB. Resets the count when it says yes.
    pub fn wants_snapshot(&self) -> bool {
        use std::sync::atomic::Ordering;
        let grown = self.since_snapshot.load(Ordering::Relaxed);
        let (ready, unacked) = self.bytes();
        let (messages, out, _) = self.counts();
        let held = ready + unacked;
        let wanted = if messages + out == 0 {
            // Also once the queue drained after a snapshot that kept content: the drain's
            // own entries (small settles) may never reach 1 MiB.
            grown > 1 << 20 || (grown > 0 && self.snapshot_held.load(Ordering::Relaxed) > 1 << 20)
        } else {
            grown > (2 * held).max(8 << 20)
        };
        if wanted {
            self.since_snapshot.store(0, Ordering::Relaxed);
            self.snapshot_held.store(held, Ordering::Relaxed);
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

/// The message as delivered `count` times before: `x-delivery-count` from the first
/// redelivery, as RabbitMQ's quorum queues.
pub(super) fn with_count(message: Arc<Message>, count: u32) -> Arc<Message> {
    if count == 0 {
        return message;
    }
    Arc::new(message.with_header(
        crate::queue::retry::DELIVERY_COUNT_HEADER,
        warren_codec::types::AMQPValue::LongLongInt(i64::from(count)),
    ))
}

pub(super) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

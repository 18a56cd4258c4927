//! This node as the home of queues consumed from other nodes (issue 18, step 5): a channel
//! elsewhere consuming from a queue here is a [`ProxySink`] to the queue (one per remote
//! channel), so the queue's own rules (prefetch, priorities, single active consumer,
//! requeues, stream offsets) apply unchanged. A sink sends its deliveries to the channel's
//! node in batches, one batch in flight, so a slow client holds back only its own channel.
//!
//! Deliveries that need an ack are held in the [`Ledger`] until the channel's node settles
//! them; when that node says the channel is gone, or cannot be reached, everything the
//! channel held goes back to its queues (redelivered), as when a local channel closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Cluster;
use super::proxy::{ProxyAnswer, ProxyItem, ProxyMessage, encode, read_answer};
pub(super) use super::sink::lock;
use super::sink::{Capture, Ledger, ProxySink};
use crate::broker::Broker;
use crate::error::AmqpError;
use crate::meta::{NodeId, RemoteConsume};
use crate::names::{ConnectionId, ConsumerTag};
use crate::queue::delivery::{Unacked, by_queue};
use crate::queue::remote::{Settlement, SinkKey};
use crate::queue::{Consumer, Queue, SeqId};
use crate::vhost::VHost;

/// How long a sink may sit idle, holding deliveries, before it asks whether its channel's
/// connection is still open.
const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Deliveries a sink may have queued for its link before its consumers wait.
const SINK_QUEUE: usize = 512;

/// Most deliveries in one batch to a channel's node.
const BATCH: usize = 256;

/// The channels of other nodes using queues here.
#[derive(Debug)]
pub struct Homes {
    /// This node's run (a restart makes a new one): what other nodes' sinks compare.
    pub boot: u64,
    cluster: Weak<Cluster>,
    broker: Weak<Broker>,
    sinks: Mutex<HashMap<(NodeId, SinkKey), Arc<ProxySink>>>,
    pub(super) ledger: Arc<Ledger>,
    /// Sinks made so far: each gets its own connection id, counted down from the top.
    made: AtomicU64,
}

/// Connection ids of sinks are `PROXY_IDS - n`: far above any local connection's, so
/// their low 32 bits (what a quorum queue keeps) tell them apart from local ones too.
const PROXY_IDS: u64 = u64::MAX;

impl Homes {
    /// Serves other nodes' channels from `broker`'s queues over `cluster`'s links.
    pub fn new(cluster: Weak<Cluster>, broker: Weak<Broker>) -> Arc<Self> {
        Arc::new(Self {
            boot: fastrand::u64(..),
            cluster,
            broker,
            sinks: Mutex::default(),
            ledger: Arc::default(),
            made: AtomicU64::new(0),
        })
    }

    /// A request of `from` about a queue here.
    pub fn handle(
        self: &Arc<Self>,
        broker: &Broker,
        from: NodeId,
        message: ProxyMessage,
    ) -> ProxyAnswer {
        let result = match message {
            ProxyMessage::Consume {
                vhost,
                boot,
                consume,
            } => self.consume(broker, from, &vhost, boot, consume),
            ProxyMessage::Cancel {
                vhost,
                queue,
                sink,
                tag,
            } => {
                if let (Some(vhost), Some(sink)) = (broker.vhost(&vhost), self.sink_of(from, sink))
                {
                    lock(&sink.tags).remove(tag.as_str());
                    if let Some(queue) = vhost.queue(&queue)
                        && queue.remove_consumer(sink.as_ref(), &tag)
                    {
                        vhost.retire_queue(&queue);
                    }
                }
                Ok(ProxyAnswer::Done)
            }
            ProxyMessage::Release { vhost, queue, sink } => {
                if let (Some(vhost), Some(sink)) = (broker.vhost(&vhost), self.sink_of(from, sink))
                {
                    self.release_queue(&vhost, &sink, &queue);
                    let idle =
                        lock(&sink.tags).is_empty() && !self.ledger.holds_for(from, sink.key);
                    if idle {
                        self.forget(&sink);
                    }
                }
                Ok(ProxyAnswer::Done)
            }
            ProxyMessage::Settle {
                vhost,
                queue,
                seqs,
                how,
            } => {
                if let Some(queue) = broker.vhost(&vhost).and_then(|v| v.queue(&queue)) {
                    settle(&queue, self.ledger.take(from, queue.store_id, &seqs), how);
                }
                Ok(ProxyAnswer::Done)
            }
            ProxyMessage::Get {
                vhost,
                boot,
                queue,
                sink,
                no_ack,
            } => self.get(broker, from, &vhost, boot, &queue, sink, no_ack),
            ProxyMessage::Purge { vhost, queue } => {
                local_queue(broker, &vhost, &queue).and_then(|(_, q)| {
                    if q.is_stream() {
                        return Err(q.not_for_streams("queue.purge"));
                    }
                    Ok(ProxyAnswer::Purged(q.purge()))
                })
            }
            ProxyMessage::Groups => Ok(ProxyAnswer::Groups(
                self.cluster
                    .upgrade()
                    .map(|c| c.hosted_groups(broker))
                    .unwrap_or_default(),
            )),
            ProxyMessage::Counts { vhost, queue } => {
                any_queue(broker, &vhost, &queue).map(|(_, q)| ProxyAnswer::Counts {
                    messages: q.message_count(),
                    consumers: q.consumer_count(),
                })
            }
            _ => Err(AmqpError::internal_error(
                "unexpected request between nodes",
            )),
        };
        result.unwrap_or_else(|error| ProxyAnswer::failed(&error))
    }

    fn consume(
        self: &Arc<Self>,
        broker: &Broker,
        from: NodeId,
        vhost: &str,
        boot: u64,
        consume: RemoteConsume,
    ) -> Result<ProxyAnswer, AmqpError> {
        let (_, queue) = local_queue(broker, vhost, &consume.queue)?;
        // No connection of another node owns an exclusive queue here.
        queue.check_exclusive(ConnectionId(u64::MAX))?;
        let sink = self.sink(from, consume.sink, boot, vhost);
        let (tag, consumer) = sink_consumer(&sink, &consume);
        match queue.add_consumer(consumer, &consume.arguments.0, || {}) {
            Ok(()) => Ok(ProxyAnswer::Done),
            Err(error) => {
                lock(&sink.tags).remove(&tag);
                Err(error)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn get(
        self: &Arc<Self>,
        broker: &Broker,
        from: NodeId,
        vhost: &str,
        boot: u64,
        queue: &str,
        key: SinkKey,
        no_ack: bool,
    ) -> Result<ProxyAnswer, AmqpError> {
        let (_, queue) = local_queue(broker, vhost, queue)?;
        queue.check_exclusive(ConnectionId(u64::MAX))?;
        if queue.is_stream() {
            return Err(queue.not_for_streams("basic.get"));
        }
        let sink = self.sink(from, key, boot, vhost);
        let capture = Capture {
            sink: &sink,
            got: Mutex::new(None),
        };
        queue.get(&capture, no_ack);
        let got = lock(&capture.got).take();
        Ok(got.unwrap_or(ProxyAnswer::Empty))
    }

    /// The sink of channel `key` of `node` in its run `boot` (a new run's channel replaces
    /// an old one's, which lets go of everything first).
    pub(super) fn sink(
        self: &Arc<Self>,
        node: NodeId,
        key: SinkKey,
        boot: u64,
        vhost: &str,
    ) -> Arc<ProxySink> {
        if let Some(sink) = self.sink_of(node, key) {
            if sink.boot == boot {
                return sink;
            }
            self.release_sink(&sink);
        }
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let made = self.made.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
        let sink = Arc::new(ProxySink {
            id: ConnectionId(PROXY_IDS - made),
            node,
            key,
            boot,
            vhost: vhost.to_owned(),
            credit: Arc::default(),
            tx,
            tags: Mutex::default(),
            ledger: self.ledger.clone(),
            closed: AtomicBool::new(false),
            last_tag: AtomicU64::new(0),
        });
        lock(&self.sinks).insert((node, key), sink.clone());
        tokio::spawn(run_sink(Arc::downgrade(self), Arc::downgrade(&sink), rx));
        sink
    }

    /// Whether a sink here has the connection id whose low 32 bits are `connection` (a
    /// quorum queue's leader asking whether a consumer's channel is still there).
    pub(super) fn serves(&self, connection: u64) -> bool {
        lock(&self.sinks)
            .values()
            .any(|s| s.id.0 & 0xffff_ffff == connection && !s.closed.load(Ordering::Acquire))
    }

    fn sink_of(&self, node: NodeId, key: SinkKey) -> Option<Arc<ProxySink>> {
        lock(&self.sinks).get(&(node, key)).cloned()
    }

    /// Channel `sink` let go of `queue`: its consumers there end, what it held goes back.
    fn release_queue(&self, vhost: &Arc<VHost>, sink: &Arc<ProxySink>, queue: &str) {
        lock(&sink.tags).retain(|_, q| q != queue);
        if let Some(queue) = vhost.queue(queue)
            && queue.release_channel(sink.as_ref())
        {
            vhost.retire_queue(&queue);
        }
    }

    fn forget(&self, sink: &Arc<ProxySink>) {
        sink.closed.store(true, Ordering::Release);
        let mut sinks = lock(&self.sinks);
        if sinks
            .get(&(sink.node, sink.key))
            .is_some_and(|s| Arc::ptr_eq(s, sink))
        {
            sinks.remove(&(sink.node, sink.key));
        }
    }

    /// The channel is gone (its node says so, or cannot be reached): everything it had
    /// here ends and goes back.
    fn release_sink(&self, sink: &Arc<ProxySink>) {
        self.forget(sink);
        let Some(vhost) = self.broker.upgrade().and_then(|b| b.vhost(&sink.vhost)) else {
            return;
        };
        let mut queues: Vec<String> = lock(&sink.tags).values().cloned().collect();
        queues.sort();
        queues.dedup();
        for queue in queues {
            self.release_queue(&vhost, sink, &queue);
        }
        // Deliveries of basic.get, or of queues it consumed no more.
        let rest = self.ledger.take_sink(sink.node, sink.key, None);
        put_back(rest);
    }

    /// Asks the channel's node whether the channel's connection is still open, in the
    /// same run.
    async fn alive(&self, sink: &ProxySink) -> bool {
        let Some(cluster) = self.cluster.upgrade() else {
            return false;
        };
        let Some(payload) = encode(&ProxyMessage::Alive { sink: sink.key }) else {
            return false;
        };
        let Ok(response) = cluster.node.send_app(sink.node.0, payload).await else {
            return false;
        };
        drop(cluster);
        matches!(read_answer(response).await,
            Some(ProxyAnswer::Alive { boot, open }) if boot == sink.boot && open)
    }

    /// Sends a batch to the channel's node: what it could not hand over, or Err when the
    /// node did not answer.
    async fn send(
        &self,
        sink: &ProxySink,
        items: Vec<ProxyItem>,
    ) -> Result<Vec<(String, SeqId)>, ()> {
        let cluster = self.cluster.upgrade().ok_or(())?;
        let message = ProxyMessage::Deliveries {
            vhost: sink.vhost.clone(),
            sink: sink.key,
            items,
        };
        let payload = encode(&message).ok_or(())?;
        let response = cluster
            .node
            .send_app(sink.node.0, payload)
            .await
            .map_err(|_| ())?;
        drop(cluster);
        match read_answer(response).await {
            Some(ProxyAnswer::Undelivered(list)) => Ok(list),
            _ => Err(()),
        }
    }
}

/// Sends a sink's deliveries, a batch at a time; checks on its channel while idle.
async fn run_sink(homes: Weak<Homes>, sink: Weak<ProxySink>, mut rx: mpsc::Receiver<ProxyItem>) {
    loop {
        let first = match tokio::time::timeout(ALIVE_EVERY, rx.recv()).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => return,
            Err(_) => None,
        };
        let (Some(homes), Some(sink)) = (homes.upgrade(), sink.upgrade()) else {
            return;
        };
        let Some(first) = first else {
            if !homes.alive(&sink).await {
                tracing::debug!(node = %sink.node, "a consuming channel of another node is gone");
                homes.release_sink(&sink);
                return;
            }
            continue;
        };
        let mut items = vec![first];
        while items.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        match homes.send(&sink, items).await {
            Ok(undelivered) => {
                if let Some(vhost) = homes.broker.upgrade().and_then(|b| b.vhost(&sink.vhost)) {
                    for (queue, seq) in undelivered {
                        if let Some(q) = vhost.queue(&queue) {
                            put_back(homes.ledger.take(sink.node, q.store_id, &[seq]));
                        }
                    }
                }
            }
            Err(()) => {
                tracing::debug!(node = %sink.node, "deliveries could not reach a consuming channel's node");
                homes.release_sink(&sink);
                return;
            }
        }
    }
}

/// Registers consumer `consume` with `sink` (its tag for that channel), and the consumer.
pub(super) fn sink_consumer(
    sink: &Arc<ProxySink>,
    consume: &RemoteConsume,
) -> (ConsumerTag, Arc<Consumer>) {
    let tag = ConsumerTag::from(consume.tag.as_str());
    lock(&sink.tags).insert(tag.clone(), consume.queue.clone());
    let consumer = Consumer::with_priority(
        tag.clone(),
        sink.clone(),
        consume.no_ack,
        consume.exclusive,
        consume.prefetch,
        consume.priority,
        None,
    );
    (tag, consumer)
}

/// Settles `held` deliveries of `queue` as the channel did.
fn settle(queue: &Arc<Queue>, held: Vec<Unacked>, how: Settlement) {
    if held.is_empty() {
        return;
    }
    if how == Settlement::Ack {
        for u in &held {
            queue.note_acked(u);
        }
    }
    by_queue(held, |queue, seqs| match how {
        Settlement::Ack => queue.ack(seqs),
        Settlement::Reject => queue.reject(seqs),
        Settlement::Requeue { failed } => queue.requeue(seqs, Settlement::why(failed)),
    });
}

/// Puts deliveries back in their queues (redelivered), their credit returned.
fn put_back(held: Vec<Unacked>) {
    by_queue(held, |queue, seqs| {
        queue.requeue(seqs, crate::queue::Return::Failed)
    });
}

fn local_queue(
    broker: &Broker,
    vhost: &str,
    queue: &str,
) -> Result<(Arc<VHost>, Arc<Queue>), AmqpError> {
    let (vhost, found) = any_queue(broker, vhost, queue)?;
    if found.quorum().is_some() {
        // Its members serve their own channels; one not a member cannot be served yet.
        return Err(AmqpError::not_implemented(format!(
            "{} is a quorum queue: consume from, get from or purge it through one of its member nodes",
            found.describe()
        )));
    }
    Ok((vhost, found))
}

/// The quorum queue `queue` of `vhost` if this node is one of its members.
pub(super) fn local_or_quorum(broker: &Broker, vhost: &str, queue: &str) -> Option<Arc<Queue>> {
    let found = broker.vhost(vhost)?.queue(queue)?;
    found.quorum().is_some().then_some(found)
}

/// The queue `queue` of `vhost` here, whatever its kind.
fn any_queue(
    broker: &Broker,
    vhost: &str,
    queue: &str,
) -> Result<(Arc<VHost>, Arc<Queue>), AmqpError> {
    let vhost = broker
        .vhost(vhost)
        .ok_or_else(|| AmqpError::not_found(format!("no vhost '{vhost}'")))?;
    let found = vhost.queue(queue).ok_or_else(|| vhost.no_queue(queue))?;
    Ok((vhost, found))
}

//! Reaching queues that live on another node (issue 18, step 5): publishes routed here to
//! a queue whose home is another node are forwarded to that node, in order, and the
//! publisher's confirm waits for the home's answer (taken, and on disk there when the
//! message is persistent in a durable queue, as on one node).
//!
//! Messages are [`ProxyMessage`]s in postcard on the node link (`Request::App`); a
//! [`Forwarder`] keeps one ordered sender task per home node, and [`ProxyHandler`] is this
//! node's side as a home: it enqueues a forwarded message when it arrives (before
//! answering, so the link's order is the queue's order), then answers once it is safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use warren_raft::transport::wire::MAX_FRAME;
use warren_raft::{AppHandler, Response};

use super::Cluster;
use super::consume::Homes;

use crate::broker::Broker;
use crate::error::AmqpError;
use crate::message::{Message, WireMessage};
use crate::meta::{Forwarded, NodeId, RemoteConsume};
use crate::queue::remote::{Settlement, SinkKey};
use crate::queue::{Enqueued, SeqId};
use warren_codec::ReplyCode;

/// How long a forwarded publish may wait for its home's answer before it counts as not
/// taken (the publisher hears nack and republishes).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A message between nodes about queues.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProxyMessage {
    /// A message routed on the sender to `queues` of `vhost`, which live here.
    Publish {
        /// The vhost.
        vhost: String,
        /// The queues it reached.
        queues: Vec<String>,
        /// The message.
        message: WireMessage,
    },
    /// basic.consume from a channel of the sender (`boot`: the sender's run).
    Consume {
        /// The vhost.
        vhost: String,
        /// The sender's run.
        boot: u64,
        /// The consume.
        consume: RemoteConsume,
    },
    /// basic.cancel.
    Cancel {
        /// The vhost.
        vhost: String,
        /// The queue.
        queue: String,
        /// The channel.
        sink: SinkKey,
        /// The consumer tag.
        tag: String,
    },
    /// A channel of the sender let go of a queue (closed, or its consumers ended).
    Release {
        /// The vhost.
        vhost: String,
        /// The queue.
        queue: String,
        /// The channel.
        sink: SinkKey,
    },
    /// Deliveries settled on the sender.
    Settle {
        /// The vhost.
        vhost: String,
        /// The queue.
        queue: String,
        /// Their positions in it.
        seqs: Vec<SeqId>,
        /// Acked, rejected or requeued.
        how: Settlement,
    },
    /// basic.get.
    Get {
        /// The vhost.
        vhost: String,
        /// The sender's run.
        boot: u64,
        /// The queue.
        queue: String,
        /// The channel.
        sink: SinkKey,
        /// Taken without ack.
        no_ack: bool,
    },
    /// queue.purge.
    Purge {
        /// The vhost.
        vhost: String,
        /// The queue.
        queue: String,
    },
    /// The ready messages and consumers of a queue (passive declare, delete's conditions).
    Counts {
        /// The vhost.
        vhost: String,
        /// The queue.
        queue: String,
    },
    /// From a queue's home: deliveries (and consumer ends) for a channel of the receiver.
    Deliveries {
        /// The vhost.
        vhost: String,
        /// The channel.
        sink: SinkKey,
        /// In order.
        items: Vec<ProxyItem>,
    },
    /// From a queue's home: is this channel's connection still open?
    Alive {
        /// The channel.
        sink: SinkKey,
    },
    /// The quorum queues' groups the receiver hosts, with their leaders (rebalancing).
    Groups,
}

/// One thing a home sends a consuming channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProxyItem {
    /// basic.deliver.
    Deliver {
        /// The queue.
        queue: String,
        /// The consumer.
        tag: String,
        /// Its position in the queue (None for no-ack).
        seq: Option<SeqId>,
        /// Delivered before.
        redelivered: bool,
        /// The message.
        message: WireMessage,
    },
    /// The queue was deleted: the consumer ends.
    Cancelled {
        /// The queue.
        queue: String,
        /// The consumer.
        tag: String,
    },
}

/// The answer to a [`ProxyMessage`].
#[derive(Debug, Serialize, Deserialize)]
pub enum ProxyAnswer {
    /// Every queue took it (and it is on disk where it must be).
    Taken,
    /// A queue refused it (`reject-publish`), or the store failed.
    Refused,
    /// Done.
    Done,
    /// Refused with this AMQP error.
    Failed {
        /// The reply code.
        code: u16,
        /// The reply text, without the code name.
        text: String,
    },
    /// basic.get took a message.
    Got {
        /// Its position (None for no-ack).
        seq: Option<SeqId>,
        /// Delivered before.
        redelivered: bool,
        /// Ready messages left.
        message_count: u32,
        /// The message.
        message: WireMessage,
    },
    /// basic.get found nothing.
    Empty,
    /// queue.purge removed this many.
    Purged(u32),
    /// A queue's ready messages and consumers.
    Counts {
        /// Ready messages.
        messages: u32,
        /// Consumers.
        consumers: u32,
    },
    /// Deliveries the receiver could not hand over (queue, position).
    Undelivered(Vec<(String, SeqId)>),
    /// The channel's connection is open (in the sender's run `boot`).
    Alive {
        /// The run.
        boot: u64,
        /// Open.
        open: bool,
    },
    /// The quorum queues' groups the sender hosts.
    Groups(Vec<super::operate::GroupView>),
}

impl ProxyAnswer {
    /// The answer for `error`.
    pub fn failed(error: &AmqpError) -> Self {
        ProxyAnswer::Failed {
            code: error.code.code(),
            text: error.text.clone(),
        }
    }

    /// The error of a `Failed` answer, or what the caller asked for.
    pub fn error(code: u16, text: String) -> AmqpError {
        match ReplyCode::from_code(code) {
            Some(code) => AmqpError::new(code, text),
            None => AmqpError::internal_error(text),
        }
    }
}

/// A request waiting for its turn on the link to its home, and where its answer goes.
type Pending = (Bytes, oneshot::Sender<Option<ProxyAnswer>>);

/// The ordered senders to each home node.
pub struct Forwarder {
    cluster: Weak<Cluster>,
    homes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Pending>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Forwards over `cluster`'s node links.
    pub fn new(cluster: Weak<Cluster>) -> Self {
        Self {
            cluster,
            homes: Mutex::default(),
        }
    }

    /// Queues `message` for `home` (after what was queued for it before).
    pub fn publish(
        &self,
        home: NodeId,
        vhost: &str,
        queues: Vec<String>,
        message: &Message,
    ) -> Forwarded {
        let (taken, forwarded) = oneshot::channel();
        let request = ProxyMessage::Publish {
            vhost: vhost.to_owned(),
            queues,
            message: WireMessage::of(message),
        };
        let answer = self.send(home, &request);
        tokio::spawn(async move {
            let _ = taken.send(matches!(answer.await, Ok(Some(ProxyAnswer::Taken))));
        });
        forwarded
    }

    /// Queues `request` for `home`, after what was queued for it before; the receiver
    /// gets its answer, or None when it could not be sent or answered in time.
    pub fn send(
        &self,
        home: NodeId,
        request: &ProxyMessage,
    ) -> oneshot::Receiver<Option<ProxyAnswer>> {
        let (answer, receiver) = oneshot::channel();
        let Some(payload) = encode(request) else {
            let _ = answer.send(None);
            return receiver;
        };
        let mut homes = self.homes.lock().unwrap_or_else(|p| p.into_inner());
        let sender = homes.entry(home).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(send_in_order(self.cluster.clone(), home, rx));
            tx
        });
        // A closed sender drops `answer`: no answer.
        let _ = sender.send((payload, answer));
        receiver
    }
}

/// `request` in its link form, unless it would not fit the link's frames (a message over
/// the limit is not taken: its publisher hears nack at once).
pub fn encode(request: &ProxyMessage) -> Option<Bytes> {
    match postcard::to_stdvec(request) {
        Ok(payload) if payload.len() + 1024 > MAX_FRAME => {
            tracing::warn!(
                bytes = payload.len(),
                "message too large to send to another cluster node"
            );
            None
        }
        Ok(payload) => Some(Bytes::from(payload)),
        Err(error) => {
            tracing::error!(%error, "a message to another node could not be encoded");
            None
        }
    }
}

/// Sends one home's requests in order; each answer is awaited on its own.
async fn send_in_order(
    cluster: Weak<Cluster>,
    home: NodeId,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some((payload, answer)) = rx.recv().await {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let sent = cluster.node.send_app(home.0, payload).await;
        drop(cluster);
        match sent {
            Ok(response) => {
                tokio::spawn(async move {
                    let _ = answer.send(read_answer(response).await);
                });
            }
            Err(error) => {
                tracing::debug!(home = %home, %error, "a request could not be sent to its queue's node");
                let _ = answer.send(None);
            }
        }
    }
}

/// The answer to a request sent with `send_app`, if one came in time.
pub async fn read_answer(response: oneshot::Receiver<Response>) -> Option<ProxyAnswer> {
    match tokio::time::timeout(ANSWER_WITHIN, response).await {
        Ok(Ok(Response::App(Ok(bytes)))) => postcard::from_bytes(&bytes).ok(),
        _ => None,
    }
}

/// This node as the home of the queues others forward to, and as the origin of channels
/// consuming from queues elsewhere.
pub struct ProxyHandler {
    broker: Weak<Broker>,
    homes: Arc<Homes>,
}

impl ProxyHandler {
    /// Takes other nodes' requests into `broker`'s queues (`homes`: the state of this
    /// node's proxied consumers).
    pub fn new(broker: Weak<Broker>, homes: Arc<Homes>) -> Self {
        Self { broker, homes }
    }

    /// Enqueues a forwarded message now; answers whether it must wait for the commit, and
    /// the quorum queues' answers to wait for.
    fn take(
        &self,
        vhost: String,
        queues: Vec<String>,
        message: WireMessage,
    ) -> Result<(bool, Vec<oneshot::Receiver<bool>>), ()> {
        let broker = self.broker.upgrade().ok_or(())?;
        let message = message.into_message().ok_or(())?;
        // A vhost or queue deleted meanwhile takes nothing, as an unroutable publish.
        let Some(vhost) = broker.vhost(&vhost) else {
            return Ok((false, Vec::new()));
        };
        let mut stored = false;
        let mut refused = false;
        let mut replicated = Vec::new();
        for name in queues {
            if let Some(queue) = vhost.queue(&name) {
                if let Some(quorum) = queue.quorum() {
                    replicated.push(quorum.publish(&message));
                    continue;
                }
                match queue.publish(message.clone()) {
                    Enqueued::Accepted => stored |= queue.stores(&message),
                    Enqueued::Refused => refused = true,
                }
            }
        }
        if refused {
            Err(())
        } else {
            Ok((stored, replicated))
        }
    }

    /// A publish: enqueued now, answered once safe.
    fn publish(&self, vhost: String, queues: Vec<String>, message: WireMessage) -> Answering {
        let taken = self.take(vhost, queues, message);
        let broker = self.broker.clone();
        Box::pin(async move {
            let (stored, replicated) = match taken {
                Err(()) => return answer(ProxyAnswer::Refused),
                Ok(taken) => taken,
            };
            for quorum in replicated {
                if !matches!(quorum.await, Ok(true)) {
                    return answer(ProxyAnswer::Refused);
                }
            }
            if !stored {
                return answer(ProxyAnswer::Taken);
            }
            let Some(broker) = broker.upgrade() else {
                return answer(ProxyAnswer::Refused);
            };
            let generation = broker.storage.request();
            match broker.storage.wait(generation).await {
                Ok(()) => answer(ProxyAnswer::Taken),
                Err(_) => answer(ProxyAnswer::Refused),
            }
        })
    }
}

/// A handler's answer on its way.
pub type Answering =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, String>> + Send>>;

/// `answer` in its link form.
pub fn answer(answer: ProxyAnswer) -> Result<Bytes, String> {
    postcard::to_stdvec(&answer)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// An answer known now.
pub fn answered(now: ProxyAnswer) -> Answering {
    let bytes = answer(now);
    Box::pin(async move { bytes })
}

impl AppHandler for ProxyHandler {
    fn handle(&self, from: u64, payload: Bytes) -> Answering {
        let message = match postcard::from_bytes::<ProxyMessage>(&payload) {
            Ok(message) => message,
            Err(error) => {
                return Box::pin(async move { Err(format!("unreadable proxy message: {error}")) });
            }
        };
        let Some(broker) = self.broker.upgrade() else {
            return answered(ProxyAnswer::Refused);
        };
        // Everything that changes a queue runs here, before the next request from the
        // same node is read: the link's order is the queue's order.
        let from = NodeId(from);
        match message {
            ProxyMessage::Publish {
                vhost,
                queues,
                message,
            } => self.publish(vhost, queues, message),
            ProxyMessage::Deliveries { vhost, sink, items } => {
                super::deliver::deliveries(&broker, &vhost, sink, items)
            }
            ProxyMessage::Alive { sink } => answered(ProxyAnswer::Alive {
                boot: self.homes.boot,
                open: broker
                    .connections
                    .contains_key(&crate::names::ConnectionId(sink.connection))
                    || self.homes.serves(sink.connection),
            }),
            other => match self.homes.quorum_request(&broker, from, &other) {
                Some(later) => later,
                None => answered(self.homes.handle(&broker, from, other)),
            },
        }
    }
}

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
use warren_codec::ContentHeader;
use warren_raft::transport::wire::MAX_FRAME;
use warren_raft::{AppHandler, Response};

use super::Cluster;

use crate::broker::Broker;
use crate::message::Message;
use crate::meta::{Forwarded, NodeId};
use crate::queue::Enqueued;

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
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// Its properties in wire form.
        properties: Bytes,
        /// Its body.
        body: Bytes,
        /// Whether its `CC` keys were routing keys.
        cc_routed: bool,
    },
}

/// The answer to a [`ProxyMessage`].
#[derive(Debug, Serialize, Deserialize)]
pub enum ProxyAnswer {
    /// Every queue took it (and it is on disk where it must be).
    Taken,
    /// A queue refused it (`reject-publish`), or the store failed.
    Refused,
}

/// One publish waiting for its turn on the link to its home.
type Pending = (Bytes, oneshot::Sender<bool>);

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
        let (answer, forwarded) = oneshot::channel();
        let request = ProxyMessage::Publish {
            vhost: vhost.to_owned(),
            queues,
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            properties: message.header.raw_properties.clone(),
            body: message.body.clone(),
            cc_routed: message.cc_routed,
        };
        let payload = match postcard::to_stdvec(&request) {
            // The link's frames end at MAX_FRAME (with room for the request's envelope):
            // a larger message is not taken (its publisher hears nack at once).
            Ok(payload) if payload.len() + 1024 > MAX_FRAME => {
                tracing::warn!(
                    bytes = payload.len(),
                    "message too large to forward to its queue's node"
                );
                let _ = answer.send(false);
                return forwarded;
            }
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                tracing::error!(%error, "a forwarded publish could not be encoded");
                let _ = answer.send(false);
                return forwarded;
            }
        };
        let mut homes = self.homes.lock().unwrap_or_else(|p| p.into_inner());
        let sender = homes.entry(home).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(send_in_order(self.cluster.clone(), home, rx));
            tx
        });
        // A closed sender drops `answer`: not taken.
        let _ = sender.send((payload, answer));
        forwarded
    }
}

/// Sends one home's publishes in order; each answer is awaited on its own.
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
                    let taken = match tokio::time::timeout(ANSWER_WITHIN, response).await {
                        Ok(Ok(Response::App(Ok(bytes)))) => {
                            matches!(postcard::from_bytes(&bytes), Ok(ProxyAnswer::Taken))
                        }
                        _ => false,
                    };
                    let _ = answer.send(taken);
                });
            }
            Err(error) => {
                tracing::debug!(home = %home, %error, "a publish could not be forwarded");
                let _ = answer.send(false);
            }
        }
    }
}

/// This node as the home of the queues others forward to.
pub struct ProxyHandler {
    broker: Weak<Broker>,
}

impl ProxyHandler {
    /// Takes forwarded messages into `broker`'s queues.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    /// Enqueues a forwarded message now; answers whether it must wait for the commit.
    fn take(&self, message: ProxyMessage) -> Result<bool, ()> {
        let broker = self.broker.upgrade().ok_or(())?;
        let ProxyMessage::Publish {
            vhost,
            queues,
            exchange,
            routing_key,
            properties,
            body,
            cc_routed,
        } = message;
        let header = ContentHeader {
            class_id: warren_codec::content::BASIC_CLASS_ID,
            weight: 0,
            body_size: body.len() as u64,
            raw_properties: properties,
        };
        let properties = header.properties().ok_or(())?;
        let message = Arc::new(Message {
            exchange,
            routing_key,
            header,
            properties,
            body,
            cc_routed,
        });
        // A vhost or queue deleted meanwhile takes nothing, as an unroutable publish.
        let Some(vhost) = broker.vhost(&vhost) else {
            return Ok(false);
        };
        let mut stored = false;
        let mut refused = false;
        for name in queues {
            if let Some(queue) = vhost.queue(&name) {
                match queue.publish(message.clone()) {
                    Enqueued::Accepted => stored |= queue.stores(&message),
                    Enqueued::Refused => refused = true,
                }
            }
        }
        if refused { Err(()) } else { Ok(stored) }
    }
}

fn answer(answer: ProxyAnswer) -> Result<Bytes, String> {
    postcard::to_stdvec(&answer)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

impl AppHandler for ProxyHandler {
    fn handle(
        &self,
        _from: u64,
        payload: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, String>> + Send>> {
        let taken = match postcard::from_bytes::<ProxyMessage>(&payload) {
            Ok(message) => self.take(message),
            Err(error) => {
                return Box::pin(async move { Err(format!("unreadable proxy message: {error}")) });
            }
        };
        let broker = self.broker.clone();
        Box::pin(async move {
            match taken {
                Err(()) => answer(ProxyAnswer::Refused),
                Ok(false) => answer(ProxyAnswer::Taken),
                Ok(true) => {
                    let Some(broker) = broker.upgrade() else {
                        return answer(ProxyAnswer::Refused);
                    };
                    let generation = broker.storage.request();
                    match broker.storage.wait(generation).await {
                        Ok(()) => answer(ProxyAnswer::Taken),
                        Err(_) => answer(ProxyAnswer::Refused),
                    }
                }
            }
        })
    }
}

//! This node as the origin of channels consuming from queues that live elsewhere (issue 18,
//! step 5): the requests a channel's remote queue handle sends to the queue's home (consume,
//! get, purge, and in order with them settles, cancels and releases), and the deliveries
//! the home sends back, handed to the channels.

use std::sync::{Arc, Weak};

use super::proxy::{Answering, Forwarder, ProxyAnswer, ProxyItem, ProxyMessage, answer};
use crate::broker::Broker;
use crate::error::AmqpError;
use crate::meta::{AtHome, NodeId, RemoteConsume, RemoteGot};
use crate::names::ConsumerTag;
use crate::queue::Queue;
use crate::queue::remote::{HomeLink, Settlement, SinkKey};

/// Carries remote queues' settles, cancels and releases to their homes, in order with this
/// node's other requests there.
#[derive(Debug)]
pub struct ClusterLink {
    forwarder: Weak<Forwarder>,
}

impl ClusterLink {
    /// Over `forwarder`'s ordered senders.
    pub fn new(forwarder: &Arc<Forwarder>) -> Self {
        Self {
            forwarder: Arc::downgrade(forwarder),
        }
    }

    fn send(&self, queue: &Queue, request: ProxyMessage) {
        if let (Some(forwarder), Some(remote)) = (self.forwarder.upgrade(), queue.remote_backend())
        {
            // Answered `Done`; nothing waits for it.
            drop(forwarder.send(remote.home, &request));
        }
    }
}

impl HomeLink for ClusterLink {
    fn settle(&self, queue: &Queue, seqs: Vec<crate::queue::SeqId>, how: Settlement) {
        self.send(
            queue,
            ProxyMessage::Settle {
                vhost: queue.vhost.to_string(),
                queue: queue.name.to_string(),
                seqs,
                how,
            },
        );
    }

    fn cancel(&self, queue: &Queue, sink: SinkKey, tag: &ConsumerTag) {
        self.send(
            queue,
            ProxyMessage::Cancel {
                vhost: queue.vhost.to_string(),
                queue: queue.name.to_string(),
                sink,
                tag: tag.to_string(),
            },
        );
    }

    fn release(&self, queue: &Queue, sink: SinkKey) {
        self.send(
            queue,
            ProxyMessage::Release {
                vhost: queue.vhost.to_string(),
                queue: queue.name.to_string(),
                sink,
            },
        );
    }
}

/// RabbitMQ's answer when a queue's node cannot be reached.
fn home_down(home: String, vhost: &str, queue: &str) -> AmqpError {
    AmqpError::not_found(format!(
        "home node '{home}' of durable {} is down or inaccessible",
        crate::names::resource("queue", queue, vhost)
    ))
}

/// Sends `request` to `home` in order and maps its answer with `done`.
fn at_home<T: Send + 'static>(
    forwarder: &Forwarder,
    home: NodeId,
    home_name: String,
    request: ProxyMessage,
    vhost: String,
    queue: String,
    done: impl FnOnce(ProxyAnswer) -> Option<T> + Send + 'static,
) -> AtHome<T> {
    let answer = forwarder.send(home, &request);
    Box::pin(async move {
        match answer.await.ok().flatten() {
            Some(ProxyAnswer::Failed { code, text }) => Err(ProxyAnswer::error(code, text)),
            Some(other) => done(other).ok_or_else(|| {
                AmqpError::internal_error("unexpected answer from the queue's node")
            }),
            None => Err(home_down(home_name, &vhost, &queue)),
        }
    })
}

/// basic.consume at the queue's home.
pub fn consume_at(
    forwarder: &Forwarder,
    home: NodeId,
    home_name: String,
    vhost: &str,
    boot: u64,
    consume: RemoteConsume,
) -> AtHome<()> {
    let queue = consume.queue.clone();
    let request = ProxyMessage::Consume {
        vhost: vhost.to_owned(),
        boot,
        consume,
    };
    at_home(
        forwarder,
        home,
        home_name,
        request,
        vhost.to_owned(),
        queue,
        |a| matches!(a, ProxyAnswer::Done).then_some(()),
    )
}

/// basic.get at the queue's home.
#[allow(clippy::too_many_arguments)]
pub fn get_at(
    forwarder: &Forwarder,
    home: NodeId,
    home_name: String,
    vhost: &str,
    boot: u64,
    queue: &str,
    sink: SinkKey,
    no_ack: bool,
) -> AtHome<Option<RemoteGot>> {
    let request = ProxyMessage::Get {
        vhost: vhost.to_owned(),
        boot,
        queue: queue.to_owned(),
        sink,
        no_ack,
    };
    at_home(
        forwarder,
        home,
        home_name,
        request,
        vhost.to_owned(),
        queue.to_owned(),
        |a| match a {
            ProxyAnswer::Empty => Some(None),
            ProxyAnswer::Got {
                seq,
                redelivered,
                message_count,
                message,
            } => message.into_message().map(|message| {
                Some(RemoteGot {
                    seq,
                    redelivered,
                    message_count,
                    message,
                })
            }),
            _ => None,
        },
    )
}

/// queue.purge at the queue's home.
pub fn purge_at(
    forwarder: &Forwarder,
    home: NodeId,
    home_name: String,
    vhost: &str,
    queue: &str,
) -> AtHome<u32> {
    let request = ProxyMessage::Purge {
        vhost: vhost.to_owned(),
        queue: queue.to_owned(),
    };
    at_home(
        forwarder,
        home,
        home_name,
        request,
        vhost.to_owned(),
        queue.to_owned(),
        |a| match a {
            ProxyAnswer::Purged(count) => Some(count),
            _ => None,
        },
    )
}

/// A queue's ready messages and consumers, at its home.
pub fn counts_at(
    forwarder: &Forwarder,
    home: NodeId,
    home_name: String,
    vhost: &str,
    queue: &str,
) -> AtHome<(u32, u32)> {
    let request = ProxyMessage::Counts {
        vhost: vhost.to_owned(),
        queue: queue.to_owned(),
    };
    at_home(
        forwarder,
        home,
        home_name,
        request,
        vhost.to_owned(),
        queue.to_owned(),
        |a| match a {
            ProxyAnswer::Counts {
                messages,
                consumers,
            } => Some((messages, consumers)),
            _ => None,
        },
    )
}

/// Deliveries from a queue's home for channel `sink`: handed over in order; the answer
/// lists those whose consumer or channel is gone (the home puts them back).
pub fn deliveries(
    broker: &Arc<Broker>,
    vhost: &str,
    sink: SinkKey,
    items: Vec<ProxyItem>,
) -> Answering {
    let vhost = broker.vhost(vhost);
    Box::pin(async move {
        let mut undelivered = Vec::new();
        for item in items {
            match item {
                ProxyItem::Deliver {
                    queue,
                    tag,
                    seq,
                    redelivered,
                    message,
                } => {
                    let handle = vhost.as_ref().and_then(|v| v.remote_handle(&queue));
                    let taken = match (handle, message.into_message()) {
                        (Some(handle), Some(message)) => {
                            handle
                                .deliver_remote(sink, &tag, seq, message, redelivered)
                                .await
                        }
                        _ => false,
                    };
                    if let (false, Some(seq)) = (taken, seq) {
                        undelivered.push((queue, seq));
                    }
                }
                ProxyItem::Cancelled { queue, tag } => {
                    let handle = vhost.as_ref().and_then(|v| v.remote_handle(&queue));
                    if let Some(consumer) =
                        handle.and_then(|h| h.forget_remote_consumer(sink, &tag))
                    {
                        consumer.sink.queue_deleted(&consumer.tag).await;
                    }
                }
            }
        }
        answer(ProxyAnswer::Undelivered(undelivered))
    })
}

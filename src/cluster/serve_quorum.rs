//! A quorum queue's member serving channels of nodes that are not members (issue 18):
//! basic.consume, basic.get and queue.purge wait for the queue's log, so they are answered
//! later, but everything that must keep the link's order (the consumer's registration and
//! its checkout in the log) happens before the next request is read. Deliveries, settles,
//! cancels and releases then take the classic path (`consume.rs`): the queue delivers to
//! the channel's [`ProxySink`](super::sink::ProxySink) here and takes its settles from the
//! ledger.

use std::sync::Arc;

use super::consume::{Homes, local_or_quorum, lock, sink_consumer};
use super::proxy::{Answering, ProxyAnswer, ProxyMessage, answer};
use crate::broker::Broker;
use crate::error::AmqpError;
use crate::message::WireMessage;
use crate::meta::NodeId;
use crate::queue::delivery::Unacked;
use crate::queue::quorum::live::GetRefused;
use crate::queue::quorum::no_majority;

impl Homes {
    /// The answer to `message` if it is a consume, get or purge of a quorum queue here.
    pub fn quorum_request(
        self: &Arc<Self>,
        broker: &Broker,
        from: NodeId,
        message: &ProxyMessage,
    ) -> Option<Answering> {
        let (vhost, queue) = match message {
            ProxyMessage::Consume { vhost, consume, .. } => (vhost, &consume.queue),
            ProxyMessage::Get { vhost, queue, .. } | ProxyMessage::Purge { vhost, queue } => {
                (vhost, queue)
            }
            _ => return None,
        };
        let found = local_or_quorum(broker, vhost, queue)?;
        let quorum = found.quorum().cloned()?;
        let later: Answering = match message {
            ProxyMessage::Consume {
                vhost,
                boot,
                consume,
            } => {
                let sink = self.sink(from, consume.sink, *boot, vhost);
                let (tag, consumer) = sink_consumer(&sink, consume);
                let checked_out = quorum.checkout(consumer);
                Box::pin(async move {
                    let answer_now = match checked_out.await {
                        Ok(key) => {
                            // The channel's node holds deliveries until its client has
                            // consume-ok.
                            quorum.activate(&key);
                            ProxyAnswer::Done
                        }
                        Err(()) => {
                            lock(&sink.tags).remove(&tag);
                            ProxyAnswer::failed(&no_majority(&found))
                        }
                    };
                    answer(answer_now)
                })
            }
            ProxyMessage::Get {
                vhost,
                boot,
                sink: key,
                no_ack,
                ..
            } => {
                let (key, no_ack) = (*key, *no_ack);
                let sink = self.sink(from, key, *boot, vhost);
                let ledger = self.ledger.clone();
                let dequeued = quorum.dequeue(sink.as_ref(), no_ack);
                Box::pin(async move {
                    let got = match dequeued.await {
                        Ok(Some((id, message, redelivered, ready))) => {
                            if !no_ack {
                                ledger.hold(
                                    from,
                                    key,
                                    Unacked {
                                        queue: found.clone(),
                                        seq: id.0,
                                        consumer: None,
                                        delivered_at: 0,
                                    },
                                );
                            }
                            ProxyAnswer::Got {
                                seq: (!no_ack).then_some(id.0),
                                redelivered,
                                message_count: u32::try_from(ready).unwrap_or(u32::MAX),
                                message: WireMessage::of(&message),
                            }
                        }
                        Ok(None) => ProxyAnswer::Empty,
                        Err(GetRefused::SingleActiveConsumer) => {
                            ProxyAnswer::failed(&AmqpError::precondition_failed(format!(
                                "{} has single active consumer enabled: basic.get is not supported",
                                found.describe()
                            )))
                        }
                        Err(GetRefused::NoLeader) => ProxyAnswer::failed(&no_majority(&found)),
                        Err(GetRefused::BodyUnreadable) => ProxyAnswer::failed(
                            &crate::queue::quorum::consumers::body_unreadable(&found),
                        ),
                    };
                    answer(got)
                })
            }
            ProxyMessage::Purge { .. } => {
                let purging = quorum.purge();
                Box::pin(async move {
                    let purged = match purging.await {
                        Some(n) => ProxyAnswer::Purged(u32::try_from(n).unwrap_or(u32::MAX)),
                        None => ProxyAnswer::failed(&no_majority(&found)),
                    };
                    answer(purged)
                })
            }
            _ => return None,
        };
        Some(later)
    }
}

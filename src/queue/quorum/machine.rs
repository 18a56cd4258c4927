//! A quorum queue's replicated state on one member: the [`Fifo`] plus the bodies of the
//! messages it holds, applied from the queue's Raft log (`QuorumCommand`s in postcard).
//! Every member applies the same entries; a publish entry carries a batch of messages,
//! message `i` of the entry at log index `n` gets id `n << 16 | i`, so ids grow with the
//! log as the fifo requires.
//!
//! Bodies live in memory here (and in the Raft log and snapshots); moving them to the
//! segment store and compacting the log is step 8 of docs/cluster-design.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fifo::{Command, Effect, Fifo, MsgId, Reply};
use crate::message::WireMessage;

/// Messages one publish entry may carry (ids leave 16 bits for the position).
pub const MAX_BATCH: usize = 1 << 16;

/// One entry of a quorum queue's log.
#[derive(Debug, Serialize, Deserialize)]
pub enum QuorumCommand {
    /// Publishes, in order, at the leader's clock `ts` (ms since the epoch).
    Enqueue {
        /// The leader's clock.
        ts: u64,
        /// The messages.
        messages: Vec<WireMessage>,
    },
    /// Any other fifo command.
    Op(Command),
}

/// What an entry answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QuorumReply {
    /// Per message of a publish entry: taken (false: `reject-publish`).
    Enqueued(Vec<bool>),
    /// Done.
    Ok,
    /// queue.purge's count.
    Purged(u64),
    /// basic.get found nothing.
    Empty,
    /// basic.get's message.
    Dequeued {
        /// Its id.
        id: MsgId,
        /// Its delivery count before this get.
        delivery_count: u32,
        /// Delivered before.
        redelivered: bool,
        /// Messages still ready.
        ready: u64,
        /// The message (a no-ack get releases it in the same entry).
        message: WireMessage,
    },
    /// Not for this queue (basic.get with single active consumer).
    Unsupported,
    /// The entry could not be read.
    Unreadable,
}

/// The state every member keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// The fifo.
    pub fifo: Fifo,
    /// The bodies of the messages the fifo holds.
    pub bodies: BTreeMap<MsgId, WireMessage>,
    /// The last index applied.
    pub applied: u64,
}

/// What one apply asks the node to do.
#[derive(Debug, Default)]
pub struct Applied {
    /// The answer.
    pub reply: Option<QuorumReply>,
    /// The fifo's effects (releases already done).
    pub effects: Vec<(Effect, Option<WireMessage>)>,
}

impl Machine {
    /// Applies the entry at `index`.
    pub fn apply(&mut self, index: u64, bytes: &[u8]) -> Applied {
        let mut out = Applied::default();
        if index <= self.applied {
            // Replayed over a snapshot that already has it.
            return out;
        }
        self.applied = index;
        let command = match postcard::from_bytes::<QuorumCommand>(bytes) {
            Ok(command) => command,
            Err(error) => {
                tracing::warn!(index, %error, "quorum queue entry not understood; skipped");
                out.reply = Some(QuorumReply::Unreadable);
                return out;
            }
        };
        match command {
            QuorumCommand::Enqueue { ts, messages } => {
                let mut taken = Vec::with_capacity(messages.len());
                for (i, message) in messages.into_iter().enumerate().take(MAX_BATCH) {
                    let id = MsgId((index << 16) | i as u64);
                    let expires_at = message_expiry(&message, ts);
                    let size = u32::try_from(message.body.len()).unwrap_or(u32::MAX);
                    // The body first: an enqueue delivered at once needs it.
                    self.bodies.insert(id, message);
                    let applied = self.fifo.apply(Command::Enqueue {
                        id,
                        size,
                        expires_at,
                        ts,
                    });
                    let accepted = applied.reply == Reply::Accepted;
                    if !accepted {
                        self.bodies.remove(&id);
                    }
                    taken.push(accepted);
                    self.effects(applied.effects, &mut out);
                }
                out.reply = Some(QuorumReply::Enqueued(taken));
            }
            QuorumCommand::Op(command) => {
                let applied = self.fifo.apply(command);
                out.reply = Some(match applied.reply {
                    Reply::Purged(n) => QuorumReply::Purged(n),
                    Reply::Empty => QuorumReply::Empty,
                    Reply::Unsupported => QuorumReply::Unsupported,
                    Reply::Dequeued { header, ready } => match self.bodies.get(&header.id) {
                        Some(body) => QuorumReply::Dequeued {
                            id: header.id,
                            delivery_count: header.delivery_count,
                            redelivered: header.acquired,
                            ready,
                            message: body.clone(),
                        },
                        None => QuorumReply::Empty,
                    },
                    _ => QuorumReply::Ok,
                });
                self.effects(applied.effects, &mut out);
            }
        }
        out
    }

    /// Collects `effects` with the bodies they need, and drops released bodies (after
    /// the effects of the same apply took what they need, as the fifo orders them).
    fn effects(&mut self, effects: Vec<Effect>, out: &mut Applied) {
        for effect in effects {
            match effect {
                Effect::Release { ids } => {
                    for id in ids {
                        self.bodies.remove(&id);
                    }
                }
                Effect::Deliver { id, .. } | Effect::DeadLetter { id, .. } => {
                    let body = self.bodies.get(&id).cloned();
                    out.effects.push((effect, body));
                }
                other => out.effects.push((other, None)),
            }
        }
    }

    /// The body of message `id`, if the queue still holds it.
    pub fn body(&self, id: MsgId) -> Option<WireMessage> {
        self.bodies.get(&id).cloned()
    }
}

/// When a message published at `ts` expires by its own `expiration` property.
fn message_expiry(message: &WireMessage, ts: u64) -> Option<u64> {
    let message = message.to_message()?;
    message.expiration_ms().map(|ms| ts.saturating_add(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::quorum::fifo::{Config, ConsumerKey};
    use bytes::Bytes;

    fn message(body: &str) -> WireMessage {
        WireMessage {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::copy_from_slice(body.as_bytes()),
            cc_routed: false,
        }
    }

    fn encode(command: &QuorumCommand) -> Vec<u8> {
        postcard::to_stdvec(command).expect("encode")
    }

    #[test]
    fn a_batch_gets_growing_ids_and_bodies_go_when_settled() {
        let mut m = Machine {
            fifo: Fifo::new(Config::default()),
            ..Machine::default()
        };
        let enqueue = QuorumCommand::Enqueue {
            ts: 1,
            messages: vec![message("a"), message("b")],
        };
        let applied = m.apply(7, &encode(&enqueue));
        assert_eq!(applied.reply, Some(QuorumReply::Enqueued(vec![true, true])));
        assert_eq!(m.bodies.len(), 2);
        let key = ConsumerKey::new(1, 2, 3, "c");
        let checkout = QuorumCommand::Op(Command::Checkout {
            key: key.clone(),
            prefetch: 0,
            priority: 0,
            resume: None,
        });
        let applied = m.apply(8, &encode(&checkout));
        let delivered: Vec<(MsgId, String)> = applied
            .effects
            .iter()
            .filter_map(|(e, body)| match e {
                Effect::Deliver { id, .. } => Some((
                    *id,
                    String::from_utf8_lossy(&body.as_ref().expect("body").body).into_owned(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            delivered,
            vec![
                (MsgId(7 << 16), "a".into()),
                (MsgId((7 << 16) | 1), "b".into())
            ]
        );
        let settle = QuorumCommand::Op(Command::Settle {
            key,
            ids: vec![MsgId(7 << 16)],
        });
        m.apply(9, &encode(&settle));
        assert_eq!(
            m.bodies.keys().copied().collect::<Vec<_>>(),
            vec![MsgId((7 << 16) | 1)]
        );
        // An entry applied again (a replay over a snapshot) changes nothing.
        let again = m.apply(9, &encode(&QuorumCommand::Op(Command::Purge)));
        assert_eq!(again.reply, None);
        assert_eq!(m.bodies.len(), 1);
    }
}

//! A quorum queue's replicated state on one member: the [`Fifo`] plus the bodies of the
//! messages it holds, applied from the queue's Raft log (`QuorumCommand`s in postcard).
//! Every member applies the same entries; a publish entry carries a batch of messages,
//! message `i` of the entry at log index `n` gets id `n << 16 | i`, so ids grow with the
//! log as the fifo requires.
//!
//! The bodies are in [`Bodies`]: a window in memory, the rest in this member's spill files
//! (a member-local detail: the fifo does not see it). The Raft log and the snapshots carry
//! every body; a snapshot reads the paged ones back one at a time as it is encoded, and a
//! restore pages what is past the window as it decodes (docs/cluster-design.md step 8).

use std::fmt;
use std::io::{Read, Write};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bodies::{Bodies, BodyError};
use super::fifo::{Command, Config, Effect, Fifo, MsgId, Reply};
use super::stream::{ReadFlavor, Recorded};
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
    /// basic.get took a message whose body this member could not read back (logged).
    BodyUnreadable,
}

/// The state every member keeps.
#[derive(Debug)]
pub struct Machine {
    /// The fifo.
    pub fifo: Fifo,
    /// The bodies of the messages the fifo holds.
    pub bodies: Bodies,
    /// The last index applied.
    pub applied: u64,
    /// This member's node: deliveries to other nodes' consumers need no body here.
    pub here: Option<u64>,
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
    /// An empty queue with `config`, its bodies in `bodies`, on node `here`.
    pub fn new(config: Config, bodies: Bodies, here: Option<u64>) -> Self {
        Machine {
            fifo: Fifo::new(config),
            bodies,
            applied: 0,
            here,
        }
    }

    /// Applies the entry at `index`; `leads` says whether this member leads the group
    /// (only the leader dead-letters, so only it reads paged bodies for that).
    pub fn apply(&mut self, index: u64, bytes: &[u8], leads: &dyn Fn() -> bool) -> Applied {
        let out = self.apply_entry(index, bytes, leads);
        // Bodies released by this entry make room: the next ones come back from disk.
        self.bodies.refill();
        out
    }

    fn apply_entry(&mut self, index: u64, bytes: &[u8], leads: &dyn Fn() -> bool) -> Applied {
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
                        self.bodies.remove(id);
                    }
                    taken.push(accepted);
                    self.effects(applied.effects, &mut out, leads);
                }
                out.reply = Some(QuorumReply::Enqueued(taken));
            }
            QuorumCommand::Op(command) => {
                let applied = self.fifo.apply(command);
                out.reply = Some(match applied.reply {
                    Reply::Purged(n) => QuorumReply::Purged(n),
                    Reply::Empty => QuorumReply::Empty,
                    Reply::Unsupported => QuorumReply::Unsupported,
                    Reply::Dequeued { header, ready } => match self.bodies.get(header.id) {
                        Ok(Some(body)) => QuorumReply::Dequeued {
                            id: header.id,
                            delivery_count: header.delivery_count,
                            redelivered: header.acquired,
                            ready,
                            message: body,
                        },
                        Ok(None) => QuorumReply::Empty,
                        Err(error) => {
                            tracing::error!(%error, "basic.get: a quorum queue body cannot be read");
                            QuorumReply::BodyUnreadable
                        }
                    },
                    _ => QuorumReply::Ok,
                });
                self.effects(applied.effects, &mut out, leads);
            }
        }
        out
    }

    /// Collects `effects` with the bodies they need, and drops released bodies (after
    /// the effects of the same apply took what they need, as the fifo orders them).
    fn effects(&mut self, effects: Vec<Effect>, out: &mut Applied, leads: &dyn Fn() -> bool) {
        for effect in effects {
            let wanted = match &effect {
                Effect::Release { ids } => {
                    for id in ids {
                        self.bodies.remove(*id);
                    }
                    continue;
                }
                Effect::Deliver { id, key, .. } => {
                    self.here.is_none_or(|here| key.node == here).then_some(*id)
                }
                Effect::DeadLetter { id, .. } => leads().then_some(*id),
                _ => None,
            };
            let body = wanted.and_then(|id| match self.bodies.get(id) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, "a quorum queue delivery's body cannot be read");
                    None
                }
            });
            out.effects.push((effect, body));
        }
    }

    /// Writes the state as a snapshot into `out` (the snapshot's file): the fifo, every
    /// body (paged ones read back one at a time as they are written) and the last index
    /// applied, so the snapshot is never in memory whole. The layout of the earlier
    /// in-memory machine (`fifo`, a map of bodies, `applied`), so older snapshots still load.
    pub fn snapshot_to(&self, out: &mut dyn Write) -> Result<(), std::io::Error> {
        let view = SnapshotView {
            fifo: &self.fifo,
            bodies: BodiesView {
                ids: self.bodies.ids(),
                bodies: &self.bodies,
            },
            applied: self.applied,
        };
        let mut out = Recorded::new(out);
        match postcard::to_io(&view, &mut out) {
            Ok(_) => Ok(()),
            Err(e) => Err(out.error(e)),
        }
    }

    /// Replaces the state with a snapshot's, decoded as it is read from `input` (buffered);
    /// bodies past the window are paged as they come.
    pub fn restore_from(&mut self, input: &mut dyn Read) -> Result<(), std::io::Error> {
        self.bodies.clear();
        let mut input = Recorded::new(input);
        let mut decoder = postcard::Deserializer::from_flavor(ReadFlavor::new(&mut input));
        let decoded = Restore(&mut self.bodies).deserialize(&mut decoder);
        drop(decoder);
        let (fifo, applied) = decoded.map_err(|e| input.error(e))?;
        self.fifo = fifo;
        self.applied = applied;
        Ok(())
    }
}

/// A snapshot being encoded.
#[derive(Serialize)]
struct SnapshotView<'a> {
    fifo: &'a Fifo,
    bodies: BodiesView<'a>,
    applied: u64,
}

/// Every body, as a map in id order, read as encoded.
struct BodiesView<'a> {
    ids: Vec<MsgId>,
    bodies: &'a Bodies,
}

impl Serialize for BodiesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bodies = self.bodies;
        let mut map = serializer.serialize_map(Some(self.ids.len()))?;
        for &id in &self.ids {
            let body: Option<WireMessage> = bodies.get(id).map_err(|e: BodyError| {
                tracing::error!(error = %e, "quorum queue snapshot: a body cannot be read");
                <S::Error as ser::Error>::custom(e)
            })?;
            let Some(body) = body else {
                return Err(<S::Error as ser::Error>::custom(format!(
                    "body {id} missing"
                )));
            };
            map.serialize_entry(&id, &body)?;
        }
        map.end()
    }
}

/// Decodes a snapshot, handing each body to the store as it comes.
struct Restore<'a>(&'a mut Bodies);

impl<'de> DeserializeSeed<'de> for Restore<'_> {
    type Value = (Fifo, u64);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("Machine", &["fifo", "bodies", "applied"], self)
    }
}

impl<'de> Visitor<'de> for Restore<'_> {
    type Value = (Fifo, u64);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a quorum queue snapshot")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let fifo: Fifo = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        seq.next_element_seed(RestoreBodies(self.0))?
            .ok_or_else(|| de::Error::custom("no bodies"))?;
        let applied: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("no applied index"))?;
        Ok((fifo, applied))
    }
}

/// The bodies of a snapshot, into the store one by one.
struct RestoreBodies<'a>(&'a mut Bodies);

impl<'de> DeserializeSeed<'de> for RestoreBodies<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RestoreBodies<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of message bodies")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((id, body)) = map.next_entry::<MsgId, WireMessage>()? {
            self.0.insert(id, body);
        }
        Ok(())
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
    use crate::queue::quorum::fifo::ConsumerKey;
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
        let mut m = Machine::new(Config::default(), Bodies::in_memory(), None);
        let enqueue = QuorumCommand::Enqueue {
            ts: 1,
            messages: vec![message("a"), message("b")],
        };
        let applied = m.apply(7, &encode(&enqueue), &|| true);
        assert_eq!(applied.reply, Some(QuorumReply::Enqueued(vec![true, true])));
        assert_eq!(m.bodies.len(), 2);
        let key = ConsumerKey::new(1, 2, 3, "c");
        let checkout = QuorumCommand::Op(Command::Checkout {
            key: key.clone(),
            prefetch: 0,
            priority: 0,
            resume: None,
        });
        let applied = m.apply(8, &encode(&checkout), &|| true);
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
        m.apply(9, &encode(&settle), &|| true);
        assert_eq!(m.bodies.ids(), vec![MsgId((7 << 16) | 1)]);
        // An entry applied again (a replay over a snapshot) changes nothing.
        let again = m.apply(9, &encode(&QuorumCommand::Op(Command::Purge)), &|| true);
        assert_eq!(again.reply, None);
        assert_eq!(m.bodies.len(), 1);
    }
}

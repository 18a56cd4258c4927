//! The fifo's vocabulary: ids, message headers, the queue's configuration,
//! the commands of the log, the replies to them and the effects the leader
//! executes. Commands, headers and configuration are serde (they are in the
//! log and in snapshots); replies and effects stay on the applying node.

use serde::{Deserialize, Serialize};

use crate::names::ConsumerTag;
use crate::queue::dead_letter::Reason;

/// RabbitMQ 4.0's default `x-delivery-limit` for quorum queues.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;

/// A message's id: the Raft log index of the entry that enqueued it, so ids
/// grow in enqueue order and name the body in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId(pub u64);

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A consumer across the cluster: the node and connection it lives on, its
/// channel and its consumer tag. A basic.get uses a key of its own (see
/// [`Command::Dequeue`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConsumerKey {
    /// The node the consumer's connection is on.
    pub node: u64,
    /// The connection's id on that node.
    pub connection: u64,
    /// The channel number.
    pub channel: u16,
    /// The consumer tag.
    #[serde(with = "tag_serde")]
    pub tag: ConsumerTag,
}

impl ConsumerKey {
    /// The key of `tag` on this node, connection and channel.
    pub fn new(node: u64, connection: u64, channel: u16, tag: impl Into<ConsumerTag>) -> Self {
        ConsumerKey {
            node,
            connection,
            channel,
            tag: tag.into(),
        }
    }
}

/// `ConsumerTag` is an `Arc<str>` without serde; it travels as a string.
mod tag_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::names::ConsumerTag;

    pub fn serialize<S: Serializer>(tag: &ConsumerTag, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tag.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ConsumerTag, D::Error> {
        String::deserialize(d).map(ConsumerTag::from)
    }
}

/// What the state keeps of a message: no body (that is in the store, under
/// the id), only what the rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgHeader {
    /// The message's id (its enqueue's log index).
    pub id: MsgId,
    /// Body bytes (what `x-max-length-bytes` counts).
    pub size: u32,
    /// When it expires (ms since the epoch): the earlier of its own
    /// `expiration` and the queue's `x-message-ttl` at enqueue.
    pub expires_at: Option<u64>,
    /// Failed deliveries: returns, and deliveries out when their channel
    /// or node went down (the `x-delivery-count` header).
    pub delivery_count: u32,
    /// Checked out at least once: the `redelivered` flag of its next delivery.
    pub acquired: bool,
}

/// `x-overflow` of a quorum queue. RabbitMQ refuses `reject-publish-dlx`
/// for quorum queues; the broker refuses it at declare and in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Overflow {
    /// Drop (or dead-letter, reason `maxlen`) from the head.
    #[default]
    DropHead,
    /// Refuse the publish (the publisher gets a nack).
    RejectPublish,
}

/// The queue's arguments in force (declare arguments resolved with policies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `x-max-length`: ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: body bytes of ready messages.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-delivery-limit`: failed deliveries a message may have; `None` is
    /// unlimited (`-1` in RabbitMQ). Defaults to RabbitMQ 4.0's 20.
    pub delivery_limit: Option<u32>,
    /// `x-message-ttl` in ms, applied at enqueue.
    pub message_ttl: Option<u64>,
    /// An `x-dead-letter-exchange` is set: messages let go are dead-lettered
    /// rather than dropped.
    pub dead_lettering: bool,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            delivery_limit: Some(DEFAULT_DELIVERY_LIMIT),
            message_ttl: None,
            dead_lettering: false,
            single_active_consumer: false,
        }
    }
}

/// How a basic.get takes its message (RabbitMQ's dequeue `settled` and
/// `unsettled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// no-ack: the message leaves the queue at once.
    Settled,
    /// The message is checked out to the get's key until it is settled,
    /// returned or discarded.
    Unsettled,
}

/// One entry of the queue's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A publish. `ts` is the leader's clock (ms since the epoch) when it
    /// appended the entry.
    Enqueue {
        /// The entry's log index.
        id: MsgId,
        /// Body bytes.
        size: u32,
        /// The message's own `expiration`, resolved to a time by the leader.
        expires_at: Option<u64>,
        /// The leader's clock.
        ts: u64,
    },
    /// basic.consume, or a consumer's node registering it again after a
    /// leader change.
    Checkout {
        /// The consumer.
        key: ConsumerKey,
        /// basic.qos prefetch count; 0 is unlimited.
        prefetch: u32,
        /// `x-priority`.
        priority: i64,
        /// `None` for a new consumer. `Some(ids)` after a leader change: the
        /// ids the consumer's node still holds unacked; the key's other
        /// checked-out ids go back to the head (a plain `Vec` could not tell
        /// a resume holding nothing from a fresh consume, whose earlier
        /// deliveries under the same tag must stay out).
        resume: Option<Vec<MsgId>>,
    },
    /// basic.cancel: no more deliveries; what is out stays out until settled.
    Cancel {
        /// The consumer.
        key: ConsumerKey,
    },
    /// basic.ack.
    Settle {
        /// The consumer the messages were delivered to.
        key: ConsumerKey,
        /// The acked messages.
        ids: Vec<MsgId>,
    },
    /// basic.nack or basic.reject with requeue=true: back to the head.
    Return {
        /// The consumer the messages were delivered to.
        key: ConsumerKey,
        /// The requeued messages.
        ids: Vec<MsgId>,
        /// Counts as a failed delivery (`delivery_count + 1`, checked against
        /// the delivery limit). RabbitMQ 4.0–4.2 count every 0-9-1 requeue;
        /// 4.3 counts basic.reject's but not basic.nack's.
        failed: bool,
    },
    /// basic.nack or basic.reject with requeue=false: dead-lettered (reason
    /// `rejected`) or dropped.
    Discard {
        /// The consumer the messages were delivered to.
        key: ConsumerKey,
        /// The rejected messages.
        ids: Vec<MsgId>,
    },
    /// A channel closed (or its connection): its consumers go and what they
    /// had out returns, one more failed delivery each.
    ChannelDown {
        /// The channel's node.
        node: u64,
        /// The channel's connection.
        connection: u64,
        /// The channel number.
        channel: u16,
    },
    /// A node is gone: as `ChannelDown` for every consumer on it.
    NodeDown {
        /// The node.
        node: u64,
    },
    /// basic.get.
    Dequeue {
        /// The get's key (the broker's own tag for gets on that channel).
        key: ConsumerKey,
        /// no-ack or not.
        settlement: Settlement,
        /// The leader's clock.
        ts: u64,
    },
    /// The leader's clock moved: expire messages at the head.
    Tick {
        /// The leader's clock.
        ts: u64,
    },
    /// queue.purge: drop every ready message.
    Purge,
    /// The arguments in force changed (a policy).
    UpdateConfig(Config),
}

/// What a command answers (to whoever submitted it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done; nothing to say.
    Ok,
    /// Enqueued: the publisher gets an ack.
    Accepted,
    /// Refused by `reject-publish`: the publisher gets a nack.
    Rejected,
    /// An enqueue whose id is not above the last one (a replayed entry):
    /// ignored.
    Duplicate,
    /// queue.purge: how many messages went.
    Purged(u64),
    /// basic.get found nothing.
    Empty,
    /// basic.get's message.
    Dequeued {
        /// Its header as delivered (`delivery_count`, `acquired` before this get).
        header: MsgHeader,
        /// Messages still ready (get-ok's message-count).
        ready: u64,
    },
    /// basic.get on a single-active-consumer queue (RabbitMQ refuses it too).
    Unsupported,
}

/// What the leader does after an apply. Followers only keep the state,
/// except for [`Effect::Release`], which every member executes on its own
/// body store. A `Release` comes after every effect of the same apply that
/// still needs those bodies (a dead letter's republish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this message to the consumer.
    Deliver {
        /// The consumer.
        key: ConsumerKey,
        /// The message.
        id: MsgId,
        /// Its `x-delivery-count`.
        delivery_count: u32,
        /// Delivered before.
        redelivered: bool,
    },
    /// Republish the message to the dead-letter exchange.
    DeadLetter {
        /// The message.
        id: MsgId,
        /// Why.
        reason: Reason,
    },
    /// These bodies can be removed from the store: settled, dropped,
    /// dead-lettered, expired or purged. Sorted.
    Release {
        /// The messages.
        ids: Vec<MsgId>,
    },
    /// Single active consumer: this consumer is now the active one, or
    /// registered as waiting (`active: false`).
    ActiveChanged {
        /// The consumer.
        key: ConsumerKey,
        /// Whether it gets messages.
        active: bool,
    },
}

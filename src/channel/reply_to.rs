//! Direct reply-to, as RabbitMQ's "fast reply-to" does it: RPC replies go
//! straight to the requesting channel, through no queue.
//!
//! - basic.consume of the pseudo-queue `amq.rabbitmq.reply-to` in no-ack mode
//!   makes a channel's *reply consumer* (at most one per channel). No queue is
//!   created; the consumer gets an address `amq.rabbitmq.reply-to.<token>`, the
//!   token naming the connection and channel plus a random v4 UUID.
//! - A publish from that channel with `reply_to = amq.rabbitmq.reply-to` goes
//!   out with its `reply_to` rewritten to that address.
//! - A message published to the default exchange with the address as its
//!   routing key (or in its `CC`/`BCC` header) is delivered to the reply
//!   consumer at once, no-ack, as basic.deliver with the exchange and routing
//!   key it was published with. A reply counts as routed to no queue: with
//!   mandatory it is also returned (312 NO_ROUTE), as RabbitMQ does.
//! - queue.declare of any name starting with `amq.rabbitmq.reply-to` is a check:
//!   declare-ok (0 messages, 1 consumer) for the pseudo-queue and for a live
//!   address, 404 otherwise.
//! - basic.cancel of the reply consumer's tag, or the channel closing, ends it:
//!   its address routes nowhere from then on.
//!
//! The live addresses are in the vhost's [`Registry`]; the channel owns its
//! [`ReplyConsumer`], which leaves the registry when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use warren_codec::ContentHeader;
use warren_codec::Properties;
use warren_codec::protocol::{AMQPClass, basic, queue};
use warren_codec::types::ShortString;

use super::Channel;
use super::declare::generated_name;
use crate::error::AmqpError;
use crate::names::resource;
use crate::names::{ConnectionId, ConsumerTag};
use crate::vhost::VHost;
pub use crate::vhost::replies::{ADDRESS_PREFIX, PSEUDO_QUEUE, Registry, Target};

/// A channel's reply consumer. Dropping it takes its address out of the registry.
#[derive(Debug)]
pub struct ReplyConsumer {
    tag: ConsumerTag,
    address: Arc<str>,
    live: Arc<AtomicBool>,
    vhost: Arc<VHost>,
}

impl Drop for ReplyConsumer {
    fn drop(&mut self) {
        self.live.store(false, Ordering::Release);
        self.vhost.replies.remove(&self.address);
    }
}

/// Whether queue.declare of `name` is the reply-to check rather than a declare
/// (RabbitMQ takes every name with this prefix, passive or not).
pub fn is_reply_queue_name(name: &str) -> bool {
    name.starts_with(PSEUDO_QUEUE)
}

/// `amq.rabbitmq.reply-to.<identity>.<key>`: the identity is the connection and
/// channel (base64 of their numbers), the key a random v4 UUID (base64), so an
/// address cannot be guessed and is never reused.
fn new_address(connection: ConnectionId, channel: u16) -> String {
    let mut identity = connection.0.to_be_bytes().to_vec();
    identity.extend_from_slice(&channel.to_be_bytes());
    let key = uuid::Uuid::new_v4();
    format!(
        "{ADDRESS_PREFIX}{}.{}",
        base64(&identity),
        base64(key.as_bytes())
    )
}

/// Standard base64 with padding (the shape of RabbitMQ's reply-to suffixes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Channel {
    /// Whether a basic.consume names the pseudo-queue (the empty name counts
    /// when it was the queue last declared here, as in RabbitMQ).
    pub(super) fn consumes_replies(&self, queue: &ShortString) -> bool {
        match queue.as_str() {
            "" => self.last_queue == PSEUDO_QUEUE,
            name => name == PSEUDO_QUEUE,
        }
    }

    /// basic.consume of the pseudo-queue: the channel's reply consumer. Checked
    /// in RabbitMQ's order: a tag in use (530), ack mode (406), a reply consumer
    /// already there (406).
    pub(super) async fn consume_replies(&mut self, m: basic::Consume) -> Result<(), AmqpError> {
        if self
            .shared
            .consumers
            .lock()
            .contains_key(m.consumer_tag.as_str())
        {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            )));
        }
        if !m.no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply_consumer.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let tag = match m.consumer_tag.as_str() {
            "" => ConsumerTag::from(generated_name("amq.ctag-")),
            tag => ConsumerTag::from(tag),
        };
        let address: Arc<str> = Arc::from(new_address(self.conn.id, self.id));
        let live = Arc::new(AtomicBool::new(true));
        let sink: Arc<dyn crate::queue::DeliverySink> = self.shared.clone();
        self.conn.vhost.replies.add(Target {
            address: address.clone(),
            sink: Arc::downgrade(&sink),
            tag: tag.clone(),
            live: live.clone(),
        });
        self.reply_consumer = Some(ReplyConsumer {
            tag: tag.clone(),
            address,
            live,
            vhost: self.conn.vhost.clone(),
        });
        if !m.nowait {
            self.reply(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: ShortString::try_new(tag.to_string()).unwrap_or_default(),
                },
            )))
            .await;
        }
        Ok(())
    }

    /// Whether basic.cancel names the reply consumer (RabbitMQ looks there first).
    pub(super) fn cancels_replies(&self, tag: &ShortString) -> bool {
        self.reply_consumer
            .as_ref()
            .is_some_and(|r| &*r.tag == tag.as_str())
    }

    /// basic.cancel of the reply consumer.
    pub(super) async fn cancel_replies(&mut self, m: basic::Cancel) {
        self.end_reply_consumer();
        if !m.nowait {
            self.reply(AMQPClass::Basic(basic::AMQPMethod::CancelOk(
                basic::CancelOk {
                    consumer_tag: m.consumer_tag,
                },
            )))
            .await;
        }
    }

    /// Ends the reply consumer (cancel, channel closing): its address routes
    /// nowhere from now on, and no reply already on its way goes out after this.
    pub(super) fn end_reply_consumer(&mut self) {
        let _deliveries = self.shared.deliveries.lock();
        // Dropping it clears its live flag under the lock deliveries take.
        self.reply_consumer = None;
    }

    /// A publish with `reply_to = amq.rabbitmq.reply-to` carries the reply
    /// consumer's address instead; without a reply consumer it is 406.
    pub(super) fn rewrite_reply_to(
        &self,
        header: &mut ContentHeader,
        properties: &mut Properties,
    ) -> Result<(), AmqpError> {
        if properties.reply_to().as_ref().map(ShortString::as_str) != Some(PSEUDO_QUEUE) {
            return Ok(());
        }
        let Some(consumer) = &self.reply_consumer else {
            return Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            ));
        };
        let rewritten = properties
            .as_ref()
            .clone()
            .with_reply_to(ShortString::try_new(consumer.address.to_string()).unwrap_or_default());
        *header = ContentHeader::from_properties(header.body_size, &rewritten)
            .map_err(|e| AmqpError::precondition_failed(format!("invalid message: {e}")))?;
        *properties = rewritten.into();
        Ok(())
    }

    /// queue.declare of a name starting with `amq.rabbitmq.reply-to` (any flags):
    /// declare-ok with 0 messages and 1 consumer for the pseudo-queue and for a
    /// live reply consumer's address, else 404. CR and LF are taken out of the
    /// name first, as RabbitMQ does.
    pub(super) fn declare_reply_queue(
        &mut self,
        name: &str,
    ) -> Result<queue::DeclareOk, AmqpError> {
        let name: String = name.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        let exists = name == PSEUDO_QUEUE
            || (name.starts_with(ADDRESS_PREFIX) && self.conn.vhost.replies.is_live(&name));
        if !exists {
            return Err(AmqpError::not_found(format!(
                "no {}",
                resource("queue", &name, &self.conn.vhost.name)
            )));
        }
        self.last_queue.clone_from(&name);
        Ok(queue::DeclareOk {
            queue: ShortString::try_new(name).unwrap_or_default(),
            message_count: 0,
            consumer_count: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn addresses_are_unique_and_fit_a_short_string() {
        let a = new_address(ConnectionId(u64::MAX), u16::MAX);
        let b = new_address(ConnectionId(u64::MAX), u16::MAX);
        assert_ne!(a, b);
        assert!(a.starts_with(ADDRESS_PREFIX));
        assert!(a.len() < 100, "{a}");
        let suffix = &a[ADDRESS_PREFIX.len()..];
        let (identity, key) = suffix.split_once('.').expect("identity.key");
        assert_eq!(identity, base64(&[0xff; 10]));
        assert_eq!(key.len(), 24);
    }

    #[test]
    fn reply_queue_names() {
        assert!(is_reply_queue_name("amq.rabbitmq.reply-to"));
        assert!(is_reply_queue_name("amq.rabbitmq.reply-to.abc"));
        assert!(is_reply_queue_name("amq.rabbitmq.reply-toX"));
        assert!(!is_reply_queue_name("amq.rabbitmq.reply"));
        assert!(!is_reply_queue_name("q"));
    }
}

//! What the broker sends on a connection: the items of a connection's
//! outbound queue, which its writer task (`connection::writer`) encodes and
//! writes. A room of its own so that channels and the management API can
//! queue frames without depending on connections.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use warren_codec::ContentHeader;
use warren_codec::protocol::AMQPClass;

use crate::message::Message;
use crate::names::{ConsumerTag, DeliveryTag};

/// Something to send on the connection.
#[derive(Debug)]
pub enum Outbound {
    /// A method frame.
    Method(u16, AMQPClass),
    /// A method frame followed by a content header and body frames (rare:
    /// basic.return), boxed so that every item, each delivery too, is small
    /// enough to move without a `memcpy` call.
    MethodWithContent(u16, Box<WithContent>),
    /// basic.deliver with its content (encoded by hand: the hot path).
    Deliver {
        /// Channel number.
        channel: u16,
        /// The consumer's tag.
        consumer_tag: ConsumerTag,
        /// The channel's delivery tag.
        delivery_tag: DeliveryTag,
        /// Delivered before.
        redelivered: bool,
        /// The message.
        message: Arc<Message>,
    },
    /// basic.get-ok with its content.
    GetOk {
        /// Channel number.
        channel: u16,
        /// The channel's delivery tag.
        delivery_tag: DeliveryTag,
        /// Delivered before.
        redelivered: bool,
        /// Ready messages left in the queue.
        message_count: u32,
        /// The message.
        message: Arc<Message>,
    },
    /// Flush what is queued, then close the socket.
    Shutdown,
}

/// A method with its content: basic.return.
#[derive(Debug)]
pub struct WithContent {
    /// The method.
    pub method: AMQPClass,
    /// The content header.
    pub header: ContentHeader,
    /// The body.
    pub body: Bytes,
}

/// Sending side of a connection's outbound queue.
pub type OutboundTx = mpsc::Sender<Outbound>;

#[cfg(test)]
mod tests {
    /// Moves of up to 128 bytes are inlined (eight 16-byte stores); larger
    /// ones call `memcpy` (about 29 instructions), and a delivery is moved
    /// four times: into the queue, out of it, and twice into the writer's batch.
    #[test]
    fn an_item_moves_without_a_memcpy_call() {
        assert!(size_of::<super::Outbound>() <= 128);
    }
}

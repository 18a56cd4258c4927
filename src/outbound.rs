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
    /// A method frame followed by a content header and body frames.
    MethodWithContent(u16, AMQPClass, ContentHeader, Bytes),
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

/// Sending side of a connection's outbound queue.
pub type OutboundTx = mpsc::Sender<Outbound>;

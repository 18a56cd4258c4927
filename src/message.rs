//! A published message, shared by every queue it was routed to.

use bytes::Bytes;
use warren_codec::ContentHeader;
use warren_codec::protocol::BasicProperties;

/// One message as published: routed once, then shared (`Arc`) by all its queues.
#[derive(Debug)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Content header with the properties in wire form (delivered byte for byte).
    pub header: ContentHeader,
    /// The properties, parsed once on arrival.
    pub properties: BasicProperties,
    /// The body; never copied after assembly.
    pub body: Bytes,
}

impl Message {
    /// delivery-mode 2.
    pub fn is_persistent(&self) -> bool {
        *self.properties.delivery_mode() == Some(2)
    }

    /// Body size in bytes.
    pub fn body_size(&self) -> usize {
        self.body.len()
    }
}

//! A published message, shared by every queue it was routed to.

use bytes::Bytes;
use warren_codec::ContentHeader;
use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable, ShortString};

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
    /// Whether the keys in its `CC` header are among its routing keys: true as
    /// published, false once dead-lettered with a dead-letter routing key (which
    /// replaces all of them).
    pub cc_routed: bool,
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

    /// The per-message TTL in milliseconds: the `expiration` property, which the
    /// publish path has checked (an optional sign, then digits, not negative).
    pub fn expiration_ms(&self) -> Option<u64> {
        let expiration = self.properties.expiration().as_ref()?.as_str();
        expiration
            .trim_start_matches(['+', '-'])
            .parse::<u64>()
            .ok()
    }

    /// A copy with the header `name` set to `value` (added or replaced); the
    /// body is shared, not copied.
    pub fn with_header(&self, name: &str, value: AMQPValue) -> Message {
        let mut table = self
            .properties
            .headers()
            .as_ref()
            .map(|h| h.inner().clone())
            .unwrap_or_default();
        table.insert(ShortString::from(name), value);
        let properties = self
            .properties
            .clone()
            .with_headers(FieldTable::from(table));
        // Headers one value larger still fit a content header; if they did
        // not, the message stays as it came in.
        let (header, properties) =
            match ContentHeader::from_properties(self.body.len() as u64, &properties) {
                Ok(header) => (header, properties),
                Err(_) => (self.header.clone(), self.properties.clone()),
            };
        Message {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            header,
            properties,
            body: self.body.clone(),
            cc_routed: self.cc_routed,
        }
    }
}

/// `properties` with these headers and without `expiration`: what a message
/// carries once dead-lettered.
pub fn dead_letter_properties(
    properties: &BasicProperties,
    headers: FieldTable,
) -> BasicProperties {
    let p = properties;
    let mut out = BasicProperties::default().with_headers(headers);
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        out = out.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

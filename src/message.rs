//! A published message, shared by every queue it was routed to.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable, ShortString};
use warren_codec::{ContentHeader, Properties, SharedDelivery, ShortStr};

/// One message as published: routed once, then shared (`Arc`) by all its queues.
#[derive(Debug)]
pub struct Message {
    /// The exchange it was published to (as published: a slice of the frame).
    pub exchange: ShortStr,
    /// Its routing key (as published: a slice of the frame).
    pub routing_key: ShortStr,
    /// Content header with the properties in wire form (delivered byte for byte).
    pub header: ContentHeader,
    /// The properties, parsed once on arrival (shared, not boxed, when there
    /// are none or only delivery-mode).
    pub properties: Properties,
    /// The body; never copied after assembly.
    pub body: Bytes,
    /// Whether the keys in its `CC` header are among its routing keys: true as
    /// published, false once dead-lettered with a dead-letter routing key (which
    /// replaces all of them).
    pub cc_routed: bool,
    /// The frames its deliveries share, encoded once when it reaches several
    /// queues ([`Message::share_frames`]); unset otherwise.
    pub frames: OnceLock<SharedDelivery>,
}

/// A message in the form it travels between nodes and sits in a quorum queue's log: what
/// was published, the properties in wire form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties in wire form.
    pub properties: Bytes,
    /// Its body.
    pub body: Bytes,
    /// Whether its `CC` keys were routing keys.
    pub cc_routed: bool,
}

impl WireMessage {
    /// The wire form of `message`.
    pub fn of(message: &Message) -> Self {
        Self {
            exchange: message.exchange.to_string(),
            routing_key: message.routing_key.to_string(),
            properties: message.header.raw_properties.clone(),
            body: message.body.clone(),
            cc_routed: message.cc_routed,
        }
    }

    /// The message again (None when its properties do not parse).
    pub fn to_message(&self) -> Option<Arc<Message>> {
        self.clone().into_message()
    }

    /// The message again, taking the parts (None when its properties do not parse).
    pub fn into_message(self) -> Option<Arc<Message>> {
        let header = ContentHeader {
            class_id: warren_codec::content::BASIC_CLASS_ID,
            weight: 0,
            body_size: self.body.len() as u64,
            raw_properties: self.properties,
        };
        let properties = header.parsed()?;
        Some(Arc::new(Message {
            exchange: self.exchange.into(),
            routing_key: self.routing_key.into(),
            header,
            properties,
            body: self.body,
            cc_routed: self.cc_routed,
            frames: Default::default(),
        }))
    }
}

impl Message {
    /// Encodes the frames its deliveries share, once: it reaches several
    /// queues, and each delivery copies them rather than encoding them again.
    pub fn share_frames(&self) {
        if self.frames.get().is_none()
            && let Some(shared) =
                SharedDelivery::encode(&self.exchange, &self.routing_key, &self.header, &self.body)
        {
            let _ = self.frames.set(shared);
        }
    }

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
            .as_ref()
            .clone()
            .with_headers(FieldTable::from(table));
        // Headers one value larger still fit a content header; if they did
        // not, the message stays as it came in.
        let (header, properties) =
            match ContentHeader::from_properties(self.body.len() as u64, &properties) {
                Ok(header) => (header, properties.into()),
                Err(_) => (self.header.clone(), self.properties.clone()),
            };
        Message {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            header,
            properties,
            body: self.body.clone(),
            cc_routed: self.cc_routed,
            frames: Default::default(),
        }
    }
}

/// Basic's property flags: content-type, content-encoding, headers, and the
/// continuation bit (another flags word follows; never for basic).
const CONTENT_TYPE: u16 = 0x8000;
const CONTENT_ENCODING: u16 = 0x4000;
const HEADERS: u16 = 0x2000;
const CONTINUATION: u16 = 0x0001;

impl Message {
    /// A copy with the header `name` (not already present) set to the long
    /// `value` in its wire form only, spliced in instead of encoding the
    /// properties again: `properties` stay as published. For a copy that
    /// goes nowhere but a client's socket (a stream's deliveries, stamped
    /// with `x-stream-offset`); [`Message::with_header`] (both forms) when
    /// the header is already there or the properties are not the plain shape
    /// this expects.
    pub fn with_wire_header(&self, name: &str, value: i64) -> Message {
        let present = self
            .properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key(name));
        match (present, self.splice_long_header(name, value)) {
            (false, Some(raw)) => Message {
                exchange: self.exchange.clone(),
                routing_key: self.routing_key.clone(),
                header: ContentHeader {
                    raw_properties: raw,
                    ..self.header.clone()
                },
                properties: self.properties.clone(),
                body: self.body.clone(),
                cc_routed: self.cc_routed,
                frames: Default::default(),
            },
            _ => self.with_header(name, AMQPValue::LongLongInt(value)),
        }
    }

    /// The wire-form properties with the entry `name` = long `value` added to
    /// the headers table (made if absent); `None` if they do not parse.
    fn splice_long_header(&self, name: &str, value: i64) -> Option<Bytes> {
        let raw = &self.header.raw_properties;
        let name_len = u8::try_from(name.len()).ok()?;
        let flags = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
        if flags & CONTINUATION != 0 {
            return None;
        }
        let mut pos = 2usize;
        for flag in [CONTENT_TYPE, CONTENT_ENCODING] {
            if flags & flag != 0 {
                pos += 1 + usize::from(*raw.get(pos)?);
            }
        }
        let mut entry = Vec::with_capacity(2 + name.len() + 8);
        entry.push(name_len);
        entry.extend_from_slice(name.as_bytes());
        entry.push(b'l');
        entry.extend_from_slice(&value.to_be_bytes());
        let mut out = Vec::with_capacity(raw.len() + entry.len() + 4);
        if flags & HEADERS != 0 {
            let len_bytes: [u8; 4] = raw.get(pos..pos + 4)?.try_into().ok()?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let end = pos.checked_add(4)?.checked_add(len)?;
            let rest = raw.get(end..)?;
            let new_len = u32::try_from(len + entry.len()).ok()?;
            out.extend_from_slice(raw.get(..pos)?);
            out.extend_from_slice(&new_len.to_be_bytes());
            out.extend_from_slice(raw.get(pos + 4..end)?);
            out.extend_from_slice(&entry);
            out.extend_from_slice(rest);
        } else {
            out.extend_from_slice(&(flags | HEADERS).to_be_bytes());
            out.extend_from_slice(raw.get(2..pos)?);
            out.extend_from_slice(&u32::try_from(entry.len()).ok()?.to_be_bytes());
            out.extend_from_slice(&entry);
            out.extend_from_slice(raw.get(pos..)?);
        }
        Some(Bytes::from(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(properties: BasicProperties) -> Message {
        let header = ContentHeader::from_properties(3, &properties).expect("encode");
        Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            header,
            properties: properties.into(),
            body: Bytes::from_static(b"abc"),
            cc_routed: true,
            frames: Default::default(),
        }
    }

    /// The properties a client decodes from a message's wire form.
    fn on_the_wire(m: &Message) -> BasicProperties {
        let mut payload = Vec::new();
        payload.extend_from_slice(&60u16.to_be_bytes());
        payload.extend_from_slice(&0u16.to_be_bytes());
        payload.extend_from_slice(&3u64.to_be_bytes());
        payload.extend_from_slice(&m.header.raw_properties);
        ContentHeader::decode(1, Bytes::from(payload))
            .expect("decodes")
            .1
            .as_ref()
            .clone()
    }

    #[test]
    fn a_spliced_long_header_reads_as_an_encoded_one() {
        let mut headers = FieldTable::default();
        headers.insert("a".into(), AMQPValue::LongString("b".into()));
        let shapes = [
            BasicProperties::default(),
            BasicProperties::default().with_content_type("text/plain".into()),
            BasicProperties::default()
                .with_content_type("text/plain".into())
                .with_content_encoding("gzip".into())
                .with_delivery_mode(2)
                .with_timestamp(7)
                .with_app_id("app".into()),
            BasicProperties::default()
                .with_headers(headers)
                .with_priority(3)
                .with_expiration("100".into()),
        ];
        for properties in shapes {
            let m = message(properties);
            let fast = m.with_wire_header("x-stream-offset", 42);
            let slow = m.with_header("x-stream-offset", AMQPValue::LongLongInt(42));
            assert_eq!(on_the_wire(&fast), on_the_wire(&slow));
            assert_eq!(fast.properties, m.properties);
        }
    }

    #[test]
    fn a_header_already_there_is_replaced() {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("mine".into()),
        );
        let m = message(BasicProperties::default().with_headers(headers));
        let stamped = m.with_wire_header("x-stream-offset", 5);
        let wire = on_the_wire(&stamped);
        let value = wire
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-stream-offset").cloned());
        assert_eq!(value, Some(AMQPValue::LongLongInt(5)));
    }
}

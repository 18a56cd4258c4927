//! How the broker's things are written into the store: definition keys and
//! values (field tables in AMQP wire form, so declare arguments round-trip
//! exactly) and message records.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use bytes::{Buf, Bytes};
use warren_codec::types::{AMQPValue, FieldTable, LongString, ShortString};
use warren_codec::{ContentHeader, content::BASIC_CLASS_ID, decode_table, encode_table};

use crate::message::Message;
use crate::names::Destination;

/// A message record flag: kept across restarts (persistent, in a durable queue).
pub const KEEP: u8 = 1;
/// A message record flag: delivered before (redelivered=true on its next delivery).
pub const REDELIVERED: u8 = 2;
/// A message record flag: its `CC` keys were among its routing keys.
pub const CC_ROUTED: u8 = 4;
/// A message record flag: the record carries a [`Retry`] (due time and
/// returns) after the expiry (and the arrival time).
pub const RETRY: u8 = 8;
/// A message record flag: the record carries the message's arrival time in
/// its queue (wall-clock ms) after the expiry.
pub const ARRIVED: u8 = 16;
/// A message record flag: the message has no expiry and the record leaves the
/// expiry's 8 bytes out (records written before this flag always carry them).
pub const NO_EXPIRY: u8 = 32;

/// What a queue's record may carry beside the message: when it arrived
/// (for the age of the oldest message), and its retry state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamps {
    /// When it arrived in its queue, wall-clock ms.
    pub arrived_ms: Option<u64>,
    /// Waiting for a retry (or with returns to remember).
    pub retry: Option<Retry>,
}

/// A returned message's retry state, kept with its record so that a waiting
/// retry survives a restart with its due time and its attempt count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// When it is ready again, wall-clock ms (0: ready now).
    pub due_ms: u64,
    /// How often it came back unsettled.
    pub returns: u64,
}

/// The key of a vhost's exchange or queue: the vhost's name, length first, then the name.
pub fn resource_key(vhost: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + vhost.len() + name.len());
    // Vhost names are short strings: at most 255 bytes.
    key.push(u8::try_from(vhost.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(vhost.as_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// Splits a [`resource_key`].
pub fn split_resource_key(key: &[u8]) -> Option<(String, String)> {
    let (&len, rest) = key.split_first()?;
    let vhost = rest.get(..usize::from(len))?;
    let name = rest.get(usize::from(len)..)?;
    Some((
        String::from_utf8(vhost.to_vec()).ok()?,
        String::from_utf8(name.to_vec()).ok()?,
    ))
}

fn string(table: &FieldTable, key: &str) -> Option<String> {
    match table.inner().get(key)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn boolean(table: &FieldTable, key: &str) -> Option<bool> {
    match table.inner().get(key)? {
        AMQPValue::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn table(table: &FieldTable, key: &str) -> Option<FieldTable> {
    match table.inner().get(key)? {
        AMQPValue::FieldTable(t) => Some(t.clone()),
        _ => None,
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// A durable exchange as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeRecord {
    /// Its type name (`direct`, `topic`, ...).
    pub kind: String,
    /// Auto-delete.
    pub auto_delete: bool,
    /// Internal.
    pub internal: bool,
    /// Declare arguments.
    pub arguments: FieldTable,
}

impl ExchangeRecord {
    /// The stored value.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut t = FieldTable::default();
        t.insert("type".into(), long_string(&self.kind));
        t.insert("auto_delete".into(), AMQPValue::Boolean(self.auto_delete));
        t.insert("internal".into(), AMQPValue::Boolean(self.internal));
        t.insert(
            "arguments".into(),
            AMQPValue::FieldTable(self.arguments.clone()),
        );
        encode_table(&t).ok()
    }

    /// Reads a stored value.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let t = decode_table(bytes)?;
        Some(ExchangeRecord {
            kind: string(&t, "type")?,
            auto_delete: boolean(&t, "auto_delete")?,
            internal: boolean(&t, "internal")?,
            arguments: table(&t, "arguments")?,
        })
    }
}

/// A durable queue as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    /// Its id in the message store.
    pub id: u64,
    /// Auto-delete.
    pub auto_delete: bool,
    /// Declare arguments.
    pub arguments: FieldTable,
}

impl QueueRecord {
    /// The stored value.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut t = FieldTable::default();
        t.insert("id".into(), AMQPValue::LongLongInt(self.id as i64));
        t.insert("auto_delete".into(), AMQPValue::Boolean(self.auto_delete));
        t.insert(
            "arguments".into(),
            AMQPValue::FieldTable(self.arguments.clone()),
        );
        encode_table(&t).ok()
    }

    /// Reads a stored value.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let t = decode_table(bytes)?;
        let id = match t.inner().get("id")? {
            AMQPValue::LongLongInt(id) => *id as u64,
            _ => return None,
        };
        Some(QueueRecord {
            id,
            auto_delete: boolean(&t, "auto_delete")?,
            arguments: table(&t, "arguments")?,
        })
    }
}

/// A binding between durable things, as stored (all of it is the key).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    /// Its vhost.
    pub vhost: String,
    /// The source exchange.
    pub source: String,
    /// Where it leads.
    pub destination: Destination,
    /// Its routing key.
    pub routing_key: String,
    /// Its arguments.
    pub arguments: FieldTable,
}

impl BindingRecord {
    /// The stored key (deterministic: a field table's keys are ordered).
    pub fn key(&self) -> Option<Vec<u8>> {
        let (kind, name) = match &self.destination {
            Destination::Queue(q) => ("queue", q.as_str()),
            Destination::Exchange(x) => ("exchange", x.as_str()),
        };
        let mut t = FieldTable::default();
        t.insert("vhost".into(), long_string(&self.vhost));
        t.insert("source".into(), long_string(&self.source));
        t.insert("destination_type".into(), long_string(kind));
        t.insert("destination".into(), long_string(name));
        t.insert("routing_key".into(), long_string(&self.routing_key));
        t.insert(
            "arguments".into(),
            AMQPValue::FieldTable(self.arguments.clone()),
        );
        encode_table(&t).ok()
    }

    /// Reads a stored key.
    pub fn decode(key: &[u8]) -> Option<Self> {
        let t = decode_table(key)?;
        let name = string(&t, "destination")?;
        let destination = match string(&t, "destination_type")?.as_str() {
            "queue" => Destination::Queue(name.into()),
            "exchange" => Destination::Exchange(name.into()),
            _ => return None,
        };
        Some(BindingRecord {
            vhost: string(&t, "vhost")?,
            source: string(&t, "source")?,
            destination,
            routing_key: string(&t, "routing_key")?,
            arguments: table(&t, "arguments")?,
        })
    }
}

/// Wall-clock milliseconds for an expiry (what survives a restart), 0 for none.
pub fn expiry_to_wall(expires_at: Option<Instant>) -> u64 {
    let Some(at) = expires_at else {
        return 0;
    };
    let left = at.saturating_duration_since(Instant::now()).as_millis() as u64;
    (wall_clock_ms() + left).max(1)
}

/// The instant for a stored wall-clock expiry (0: none).
pub fn expiry_from_wall(ms: u64) -> Option<Instant> {
    if ms == 0 {
        return None;
    }
    Some(Instant::now() + std::time::Duration::from_millis(ms.saturating_sub(wall_clock_ms())))
}

/// Milliseconds since the Unix epoch (stored expiries and due times).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Layout: flags (1), expiry in wall-clock ms (8, left out with [`NO_EXPIRY`]), with [`ARRIVED`] the
/// arrival time (8), with [`RETRY`] the due time (8) and the returns (8),
/// exchange (1 + n), routing key (1 + n), properties (4 + n), then the body.
pub fn encode_message(message: &Message, flags: u8, expires_wall_ms: u64) -> Vec<u8> {
    encode_stored(message, flags, expires_wall_ms, Stamps::default())
}

/// A record as [`encode_message`] writes it, with a queue's [`Stamps`].
pub fn encode_stored(
    message: &Message,
    flags: u8,
    expires_wall_ms: u64,
    stamps: Stamps,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(message));
    encode_stored_into(&mut out, message, flags, expires_wall_ms, stamps);
    out
}

/// At most how many bytes [`encode_stored`] writes for `message`.
pub fn encoded_len(message: &Message) -> usize {
    39 + message.exchange.len()
        + message.routing_key.len()
        + message.header.raw_properties.len()
        + message.body.len()
}

/// [`encode_stored`], appended to `out` (many records in one buffer).
pub fn encode_stored_into(
    out: &mut Vec<u8>,
    message: &Message,
    flags: u8,
    expires_wall_ms: u64,
    stamps: Stamps,
) {
    let props = &message.header.raw_properties;
    let exchange = message.exchange.as_bytes();
    let routing_key = message.routing_key.as_bytes();
    // The layout bits follow what the record carries, whatever the caller's flags say.
    let flags = flags & !(CC_ROUTED | ARRIVED | RETRY | NO_EXPIRY)
        | if message.cc_routed { CC_ROUTED } else { 0 }
        | if stamps.arrived_ms.is_some() {
            ARRIVED
        } else {
            0
        }
        | if stamps.retry.is_some() { RETRY } else { 0 }
        | if expires_wall_ms == 0 { NO_EXPIRY } else { 0 };
    out.push(flags);
    if expires_wall_ms != 0 {
        out.extend_from_slice(&expires_wall_ms.to_be_bytes());
    }
    if let Some(arrived) = stamps.arrived_ms {
        out.extend_from_slice(&arrived.to_be_bytes());
    }
    if let Some(retry) = stamps.retry {
        out.extend_from_slice(&retry.due_ms.to_be_bytes());
        out.extend_from_slice(&retry.returns.to_be_bytes());
    }
    // Both are short strings on the wire (at most 255 bytes).
    out.push(u8::try_from(exchange.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&exchange[..exchange.len().min(255)]);
    out.push(u8::try_from(routing_key.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&routing_key[..routing_key.len().min(255)]);
    out.extend_from_slice(&(props.len() as u32).to_be_bytes());
    out.extend_from_slice(props);
    out.extend_from_slice(&message.body);
}

/// The bytes of the expiry a record's flags announce.
fn expiry_len(flags: u8) -> usize {
    if flags & NO_EXPIRY != 0 { 0 } else { 8 }
}

/// The bytes of the stamps a record's flags announce.
fn stamps_len(flags: u8) -> usize {
    (if flags & ARRIVED != 0 { 8 } else { 0 }) + (if flags & RETRY != 0 { 16 } else { 0 })
}

/// The stamps a record carries.
pub fn stamps_of(record: &[u8]) -> Stamps {
    let mut r = record;
    let Some(&flags) = r.first() else {
        return Stamps::default();
    };
    if r.remaining() < 1 + expiry_len(flags) {
        return Stamps::default();
    }
    r.advance(1 + expiry_len(flags));
    if r.remaining() < stamps_len(flags) {
        return Stamps::default();
    }
    let arrived_ms = (flags & ARRIVED != 0).then(|| r.get_u64());
    let retry = (flags & RETRY != 0).then(|| Retry {
        due_ms: r.get_u64(),
        returns: r.get_u64(),
    });
    Stamps { arrived_ms, retry }
}

/// The flags and body size of a record, without decoding it.
pub fn peek_message(record: &[u8]) -> Option<(u8, u64)> {
    let flags = *record.first()?;
    let mut r = record.get(1 + expiry_len(flags) + stamps_len(flags)..)?;
    for _ in 0..2 {
        let len = usize::from(*r.first()?);
        r = r.get(1 + len..)?;
    }
    if r.remaining() < 4 {
        return None;
    }
    let props = r.get_u32() as usize;
    let body = r.get(props..)?;
    Some((flags & !NO_EXPIRY, body.len() as u64))
}

/// A message read back: the message, its flags and its wall-clock expiry.
pub fn decode_message(record: Vec<u8>) -> Option<(Message, u8, u64)> {
    let mut all = Bytes::from(record);
    let flags = *all.first()?;
    if all.remaining() < 1 + expiry_len(flags) {
        return None;
    }
    all.advance(1);
    let expires = if flags & NO_EXPIRY != 0 {
        0
    } else {
        all.get_u64()
    };
    if all.remaining() < stamps_len(flags) {
        return None;
    }
    all.advance(stamps_len(flags));
    let short = |all: &mut Bytes| -> Option<String> {
        let len = usize::from(*all.first()?);
        if all.len() < 1 + len {
            return None;
        }
        let s = String::from_utf8(all[1..1 + len].to_vec()).ok()?;
        all.advance(1 + len);
        Some(s)
    };
    let exchange = short(&mut all)?;
    let routing_key = short(&mut all)?;
    if all.remaining() < 4 {
        return None;
    }
    let props_len = all.get_u32() as usize;
    if all.len() < props_len {
        return None;
    }
    let raw_properties = all.split_to(props_len);
    let header = ContentHeader {
        class_id: BASIC_CLASS_ID,
        weight: 0,
        body_size: all.len() as u64,
        raw_properties,
    };
    let properties = header.parsed()?;
    // Checked on publish; a stored name is always a valid short string.
    ShortString::try_new(exchange.clone()).ok()?;
    Some((
        Message {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            header,
            properties,
            body: all,
            cc_routed: flags & CC_ROUTED != 0,
            frames: Default::default(),
        },
        flags & !NO_EXPIRY,
        expires,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::protocol::BasicProperties;

    #[test]
    fn message_records_round_trip() {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("text/plain".into());
        let body = Bytes::from_static(b"hello");
        let header = ContentHeader::from_properties(5, &properties).expect("header");
        let message = Message {
            exchange: "x".into(),
            routing_key: "rk".into(),
            header: header.clone(),
            properties: properties.into(),
            body,
            cc_routed: true,
            frames: Default::default(),
        };
        let record = encode_message(&message, KEEP, 1234);
        assert_eq!(peek_message(&record), Some((KEEP | CC_ROUTED, 5)));
        let (back, flags, expires) = decode_message(record).expect("decode");
        assert_eq!(flags, KEEP | CC_ROUTED);
        assert_eq!(expires, 1234);
        assert_eq!(back.header, header);
        assert_eq!(&back.body[..], b"hello");
        assert_eq!(
            (back.exchange.as_str(), back.routing_key.as_str()),
            ("x", "rk")
        );
        assert!(back.is_persistent());
        assert_eq!(decode_message(vec![1, 2, 3]).map(|_| ()), None);
        assert_eq!(
            stamps_of(&encode_message(&message, KEEP, 0)),
            Stamps::default()
        );
        let stamps = Stamps {
            arrived_ms: Some(42),
            retry: Some(Retry {
                due_ms: 99,
                returns: 3,
            }),
        };
        let record = encode_stored(&message, KEEP, 7, stamps);
        assert_eq!(stamps_of(&record), stamps);
        assert_eq!(
            peek_message(&record),
            Some((KEEP | CC_ROUTED | ARRIVED | RETRY, 5))
        );
        let (back, _, expires) = decode_message(record).expect("decode");
        assert_eq!((expires, &back.body[..]), (7, &b"hello"[..]));
    }

    #[test]
    fn a_record_without_an_expiry_leaves_it_out_and_old_records_still_read() {
        let properties = BasicProperties::default().with_delivery_mode(2);
        let header = ContentHeader::from_properties(4, &properties).expect("header");
        let message = Message {
            exchange: Default::default(),
            routing_key: "q".into(),
            header,
            properties: properties.into(),
            body: Bytes::from_static(b"body"),
            cc_routed: false,
            frames: Default::default(),
        };
        let stamps = Stamps {
            arrived_ms: Some(42),
            retry: None,
        };
        let with = encode_stored(&message, KEEP, 1234, stamps);
        let without = encode_stored(&message, KEEP, 0, stamps);
        assert_eq!(with.len(), without.len() + 8, "no expiry, no 8 bytes");
        for record in [with, without.clone()] {
            let expected = if record.len() == without.len() {
                0
            } else {
                1234
            };
            assert_eq!(stamps_of(&record), stamps);
            assert_eq!(peek_message(&record), Some((KEEP | ARRIVED, 4)));
            let (back, flags, expires) = decode_message(record).expect("decode");
            assert_eq!((flags, expires), (KEEP | ARRIVED, expected));
            assert_eq!(&back.body[..], b"body");
        }
        // A record written before NO_EXPIRY: the expiry's 8 bytes are there, zero.
        let mut old = vec![without[0] & !NO_EXPIRY];
        old.extend_from_slice(&0u64.to_be_bytes());
        old.extend_from_slice(&without[1..]);
        assert_eq!(stamps_of(&old), stamps);
        assert_eq!(peek_message(&old), Some((KEEP | ARRIVED, 4)));
        let (back, flags, expires) = decode_message(old).expect("decode an old record");
        assert_eq!(
            (flags, expires, &back.body[..]),
            (KEEP | ARRIVED, 0, &b"body"[..])
        );
        // A caller's stale layout bits do not leak into the record.
        let record = encode_stored(&message, KEEP | NO_EXPIRY | RETRY, 99, Stamps::default());
        let (_, flags, expires) = decode_message(record).expect("decode");
        assert_eq!((flags, expires), (KEEP, 99));
    }

    #[test]
    fn definition_records_round_trip() {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::ShortInt(3));
        let q = QueueRecord {
            id: 42,
            auto_delete: true,
            arguments: arguments.clone(),
        };
        assert_eq!(QueueRecord::decode(&q.encode().expect("encode")), Some(q));
        let b = BindingRecord {
            vhost: "/".into(),
            source: "amq.topic".into(),
            destination: Destination::Queue("q".into()),
            routing_key: "a.#".into(),
            arguments,
        };
        assert_eq!(BindingRecord::decode(&b.key().expect("key")), Some(b));
        let key = resource_key("/", "q");
        assert_eq!(split_resource_key(&key), Some(("/".into(), "q".into())));
    }
}

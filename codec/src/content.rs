//! Content headers: `class-id:u16 weight:u16 body-size:u64 property-flags properties`.
//!
//! The properties are kept as the exact bytes the publisher sent, so that consumers
//! receive them byte for byte (field-table order and integer widths included) and the
//! deliver path writes them without re-encoding. They are parsed once, on arrival,
//! for what the broker must read (expiration, headers, delivery mode, ...).

use amq_protocol::protocol::BasicProperties;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};
use bytes::Bytes;
use nom::{Parser, combinator::all_consuming};

use crate::error::CodecError;
use crate::nesting;

/// The class id of `basic`, the only class with content.
pub const BASIC_CLASS_ID: u16 = 60;

/// A decoded content header whose properties stay in wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentHeader {
    /// The class of the method the content belongs to (60 for basic).
    pub class_id: u16,
    /// The spec's unused weight field: 0 from every sane client. Kept so the
    /// broker can refuse other values as RabbitMQ does; always written as 0.
    pub weight: u16,
    /// Total size of the body frames that follow.
    pub body_size: u64,
    /// Property flags and property list, exactly as received.
    pub raw_properties: Bytes,
}

impl ContentHeader {
    /// Decodes a header frame payload; the properties are parsed to check them.
    pub fn decode(channel: u16, payload: Bytes) -> Result<(Self, BasicProperties), CodecError> {
        let malformed = || CodecError::MalformedHeader { channel };
        if payload.len() < 14 {
            return Err(malformed());
        }
        let class_id = u16::from_be_bytes([payload[0], payload[1]]);
        let weight = u16::from_be_bytes([payload[2], payload[3]]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&payload[4..12]);
        let body_size = u64::from_be_bytes(size);
        let raw_properties = payload.slice(12..);
        let properties = parse_raw(&raw_properties).ok_or_else(malformed)?;
        Ok((
            ContentHeader {
                class_id,
                weight,
                body_size,
                raw_properties,
            },
            properties,
        ))
    }

    /// Builds a header from typed properties (for messages the broker writes itself).
    pub fn from_properties(
        body_size: u64,
        properties: &BasicProperties,
    ) -> Result<Self, CodecError> {
        let (raw, _) = cookie_factory::r#gen(gen_properties(properties), Vec::new())
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(ContentHeader {
            class_id: BASIC_CLASS_ID,
            weight: 0,
            body_size,
            raw_properties: Bytes::from(raw),
        })
    }

    /// Parses the properties again.
    pub fn properties(&self) -> Option<BasicProperties> {
        parse_raw(&self.raw_properties)
    }

    /// Length of the header frame's payload.
    pub fn payload_len(&self) -> usize {
        12 + self.raw_properties.len()
    }
}

fn parse_raw(raw: &[u8]) -> Option<BasicProperties> {
    if !nesting::properties_within_limit(raw) {
        return None;
    }
    all_consuming(parse_properties)
        .parse(raw)
        .ok()
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{AMQPValue, FieldTable, ShortString};

    #[test]
    fn header_roundtrip_keeps_raw_bytes() {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from("b"), AMQPValue::ShortInt(-3));
        headers.insert(ShortString::from("a"), AMQPValue::LongString("x".into()));
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let header = ContentHeader::from_properties(42, &props).expect("encode");
        let mut payload = vec![0, 60, 0, 0];
        payload.extend_from_slice(&42u64.to_be_bytes());
        payload.extend_from_slice(&header.raw_properties);
        let (decoded, parsed) = ContentHeader::decode(1, Bytes::from(payload)).expect("decode");
        assert_eq!(decoded, header);
        assert_eq!(parsed, props);
    }

    #[test]
    fn truncated_header_is_refused() {
        assert!(ContentHeader::decode(1, Bytes::from_static(&[0, 60, 0, 0, 0])).is_err());
        // flags announce a content-type that is not there
        let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0];
        assert!(ContentHeader::decode(1, Bytes::from(payload.clone())).is_err());
        payload.truncate(12);
        payload.extend_from_slice(&[0, 0]);
        assert!(ContentHeader::decode(1, Bytes::from(payload)).is_ok());
    }
}

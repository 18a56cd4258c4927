//! Content headers: `class-id:u16 weight:u16 body-size:u64 property-flags properties`.
//!
//! The properties are kept as the exact bytes the publisher sent, so that consumers
//! receive them byte for byte (field-table order and integer widths included) and the
//! deliver path writes them without re-encoding. They are parsed once, on arrival,
//! for what the broker must read (expiration, headers, delivery mode, ...).

use std::ops::Range;

use amq_protocol::protocol::BasicProperties;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};
use amq_protocol_types::ShortString;
use bytes::{Buf, Bytes, BytesMut};
use nom::{Parser, combinator::all_consuming};

use crate::error::CodecError;
use crate::nesting;
use crate::properties::Properties;

/// The class id of `basic`, the only class with content.
pub const BASIC_CLASS_ID: u16 = 60;

/// A decoded content header whose properties stay in wire form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Decodes a header frame payload; the properties are parsed to check them,
    /// into a box they keep up to the message (the struct is ~300 bytes: no
    /// moves), or to a shared value for the shapes [`Properties`] shares.
    pub fn decode(channel: u16, payload: Bytes) -> Result<(Self, Properties), CodecError> {
        Self::decode_within(channel, &payload, 0..payload.len())
    }

    /// [`ContentHeader::decode`] of the payload at `range` of `frame`: the
    /// properties are a slice of `frame` itself, not of a slice of it.
    pub fn decode_within(
        channel: u16,
        frame: &Bytes,
        range: Range<usize>,
    ) -> Result<(Self, Properties), CodecError> {
        let payload = frame
            .get(range.clone())
            .ok_or(CodecError::MalformedHeader { channel })?;
        let (class_id, weight, body_size) = fixed_part(channel, payload)?;
        let properties = frame.slice(range.start + 12..range.end);
        Self::with_properties(channel, class_id, weight, body_size, properties)
    }

    /// [`ContentHeader::decode`] of the frame as the decoder cut it: the
    /// properties are the frame's own tail, not a second reference to it.
    pub(crate) fn decode_frame(
        channel: u16,
        mut payload: BytesMut,
    ) -> Result<(Self, Properties), CodecError> {
        let (class_id, weight, body_size) = fixed_part(channel, &payload)?;
        payload.advance(12);
        Self::with_properties(channel, class_id, weight, body_size, payload.freeze())
    }

    fn with_properties(
        channel: u16,
        class_id: u16,
        weight: u16,
        body_size: u64,
        raw_properties: Bytes,
    ) -> Result<(Self, Properties), CodecError> {
        let properties =
            parse_raw(&raw_properties).ok_or(CodecError::MalformedHeader { channel })?;
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
        parse_raw(&self.raw_properties).map(Properties::into_inner)
    }

    /// Parses the properties again, shared when they are a common shape.
    pub fn parsed(&self) -> Option<Properties> {
        parse_raw(&self.raw_properties)
    }

    /// Length of the header frame's payload.
    pub fn payload_len(&self) -> usize {
        12 + self.raw_properties.len()
    }
}

/// The class id, weight and body size that open a header payload (at least
/// the two octets of property flags must follow).
fn fixed_part(channel: u16, payload: &[u8]) -> Result<(u16, u16, u64), CodecError> {
    let Some((fixed, _flags)) = payload
        .split_first_chunk::<12>()
        .filter(|(_, rest)| rest.len() >= 2)
    else {
        return Err(CodecError::MalformedHeader { channel });
    };
    let [c0, c1, w0, w1, size @ ..] = *fixed;
    Ok((
        u16::from_be_bytes([c0, c1]),
        u16::from_be_bytes([w0, w1]),
        u64::from_be_bytes(size),
    ))
}

fn parse_raw(raw: &[u8]) -> Option<Properties> {
    // No property, or delivery-mode alone: shared, nothing to allocate.
    match *raw {
        [0, 0] => return Some(Properties::none()),
        [0x10, 0, mode] => {
            if let Some(shared) = Properties::delivery_mode_only(mode) {
                return Some(shared);
            }
        }
        _ => {}
    }
    if let Some(properties) = parse_plain(raw) {
        return Some(properties.into());
    }
    if !nesting::properties_within_limit(raw) {
        return None;
    }
    all_consuming(parse_properties)
        .parse(raw)
        .ok()
        .map(|(_, p)| p.into())
}

/// The flags of the properties [`parse_plain`] reads: all but headers and the
/// two low bits (which the general parser ignores).
const PLAIN_FLAGS: u16 = 0xDFFC;

/// Properties without headers, read by hand: the general parser (nom) cost
/// 3% of a delivery's instructions. `None` for anything else (headers, the
/// low flag bits, a bad string or length), which goes the general way, so
/// both give the same answer.
fn parse_plain(raw: &[u8]) -> Option<Box<BasicProperties>> {
    let (flags, mut rest) = raw.split_first_chunk::<2>()?;
    let flags = u16::from_be_bytes(*flags);
    if flags & !PLAIN_FLAGS != 0 {
        return None;
    }
    let mut p = BasicProperties::default();
    let short = |rest: &mut &[u8]| -> Option<ShortString> {
        let (&len, tail) = rest.split_first()?;
        let (text, tail) = tail.split_at_checked(usize::from(len))?;
        let text = std::str::from_utf8(text).ok()?;
        *rest = tail;
        Some(ShortString::from(text.to_owned()))
    };
    let has = |bit: u16| flags & (1 << (15 - bit)) != 0;
    if has(0) {
        p = p.with_content_type(short(&mut rest)?);
    }
    if has(1) {
        p = p.with_content_encoding(short(&mut rest)?);
    }
    if has(3) {
        let (&mode, tail) = rest.split_first()?;
        rest = tail;
        p = p.with_delivery_mode(mode);
    }
    if has(4) {
        let (&priority, tail) = rest.split_first()?;
        rest = tail;
        p = p.with_priority(priority);
    }
    if has(5) {
        p = p.with_correlation_id(short(&mut rest)?);
    }
    if has(6) {
        p = p.with_reply_to(short(&mut rest)?);
    }
    if has(7) {
        p = p.with_expiration(short(&mut rest)?);
    }
    if has(8) {
        p = p.with_message_id(short(&mut rest)?);
    }
    if has(9) {
        let (timestamp, tail) = rest.split_first_chunk::<8>()?;
        rest = tail;
        p = p.with_timestamp(u64::from_be_bytes(*timestamp));
    }
    if has(10) {
        p = p.with_type(short(&mut rest)?);
    }
    if has(11) {
        p = p.with_user_id(short(&mut rest)?);
    }
    if has(12) {
        p = p.with_app_id(short(&mut rest)?);
    }
    if has(13) {
        p = p.with_cluster_id(short(&mut rest)?);
    }
    // Boxed once here; only the pointer moves on to the message.
    rest.is_empty().then(|| Box::new(p))
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
        assert_eq!(*parsed, props);
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

    #[test]
    fn common_shapes_decode_to_their_values() {
        for props in [
            BasicProperties::default(),
            BasicProperties::default().with_delivery_mode(1),
            BasicProperties::default().with_delivery_mode(2),
            BasicProperties::default().with_delivery_mode(7),
        ] {
            let header = ContentHeader::from_properties(1, &props).expect("encode");
            assert_eq!(header.parsed(), Some(Properties::from(props.clone())));
            assert_eq!(header.properties(), Some(props));
        }
    }

    #[test]
    fn plain_properties_read_as_the_general_parser_reads_them() {
        let all = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_content_encoding("gzip".into())
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("60000".into())
            .with_message_id("m".into())
            .with_timestamp(1_700_000_000)
            .with_type("t".into())
            .with_user_id("guest".into())
            .with_app_id("a".into())
            .with_cluster_id("x".into());
        let cases = [
            BasicProperties::default(),
            BasicProperties::default().with_delivery_mode(2),
            all,
        ];
        for props in cases {
            let raw = ContentHeader::from_properties(1, &props)
                .expect("encode")
                .raw_properties;
            let general = all_consuming(parse_properties)
                .parse(&raw[..])
                .ok()
                .map(|(_, p)| p);
            assert_eq!(parse_plain(&raw).map(|p| *p), general);
            assert_eq!(parse_plain(&raw).map(|p| *p), Some(props));
            // Cut short or with a byte too many: left to the general parser.
            assert_eq!(parse_plain(&raw[..raw.len() - 1]), None);
            let mut longer = raw.to_vec();
            longer.push(0);
            assert_eq!(parse_plain(&longer), None);
        }
        // Headers, a low flag bit, bad UTF-8: not read by hand.
        assert_eq!(parse_plain(&[0x20, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse_plain(&[0, 1]), None);
        assert_eq!(parse_plain(&[0x80, 0, 1, 0xFF]), None);
    }
}

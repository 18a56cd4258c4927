//! Frames: the incremental decoder and the encoder.

use amq_protocol::protocol::{AMQPClass, basic};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::content::ContentHeader;
use crate::error::CodecError;
use crate::method;
use crate::properties::Properties;
use crate::publish::{PUBLISH_IDS, Publish};

/// The protocol header a 0-9-1 client opens with, and that a server answers a wrong one with.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// Frame type of a method frame.
pub const FRAME_METHOD: u8 = 1;
/// Frame type of a content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Frame type of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// Frame type of a heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Octets of framing around a payload: type, channel, size and frame end.
pub const FRAME_OVERHEAD: u32 = 8;
/// The smallest frame_max a peer may negotiate.
pub const FRAME_MIN_SIZE: u32 = 4096;

/// The most a decoder reserves ahead for a frame still arriving (RabbitMQ's
/// default frame_max); larger frames grow the buffer as their bytes arrive.
const RESERVE_AHEAD_MAX: usize = 131_072;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A method frame.
    Method(u16, AMQPClass),
    /// basic.publish, its names slices of the frame (see [`Publish`]); one
    /// that does not read so comes as [`Frame::Method`] or an error.
    Publish(u16, Publish),
    /// A content header frame, with its properties parsed once.
    Header(u16, ContentHeader, Properties),
    /// A content body frame: a slice of the read buffer, never copied.
    Body(u16, Bytes),
    /// A heartbeat frame (valid only on channel 0).
    Heartbeat(u16),
}

impl Frame {
    /// The channel the frame belongs to.
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method(c, _)
            | Frame::Publish(c, _)
            | Frame::Header(c, ..)
            | Frame::Body(c, _)
            | Frame::Heartbeat(c) => *c,
        }
    }

    /// basic.publish as [`Frame::Method`], every other frame as it is: for
    /// readers that do not take publishes apart (the handshake, a closing
    /// connection).
    pub fn into_general(self) -> Frame {
        match self {
            Frame::Publish(c, publish) => Frame::Method(
                c,
                AMQPClass::Basic(basic::AMQPMethod::Publish(publish.into_method())),
            ),
            other => other,
        }
    }
}

/// Incremental frame decoder over a `BytesMut` read buffer.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    frame_max: u32,
}

impl FrameDecoder {
    /// A decoder enforcing `frame_max` (0 means no limit, as RabbitMQ treats it).
    pub fn new(frame_max: u32) -> Self {
        FrameDecoder { frame_max }
    }

    /// Changes the limit, e.g. once tune-ok has negotiated frame_max.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// The limit enforced (0: none).
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // type:u8 channel:u16 size:u32
        if src.len() < 7 {
            src.reserve(7);
            return Ok(None);
        }
        let frame_type = src[0];
        let channel = u16::from_be_bytes([src[1], src[2]]);
        let size = u32::from_be_bytes([src[3], src[4], src[5], src[6]]);
        // RabbitMQ refuses a payload over frame_max (not frame_max - 8: it allows
        // 8 octets of fudge for clients that got the overhead wrong) and reports
        // the limit as frame_max - 8.
        if self.frame_max != 0 && size > self.frame_max {
            return Err(CodecError::FrameTooLarge {
                frame_type,
                channel,
                size,
                max: self.frame_max.saturating_sub(FRAME_OVERHEAD),
            });
        }
        let total = 7 + size as usize + 1;
        if src.len() < total {
            // The size is the peer's word: with no frame_max (0) it could announce
            // 4 GiB in 7 octets. Reserve at most one default-sized frame ahead.
            src.reserve((total - src.len()).min(RESERVE_AHEAD_MAX));
            return Ok(None);
        }
        let found = src[total - 1];
        let mut frame = src.split_to(total);
        frame.advance(7);
        frame.truncate(size as usize);
        if found != FRAME_END {
            return Err(CodecError::BadFrameEnd {
                frame_type,
                channel,
                found,
                payload: frame.freeze(),
            });
        }
        // A frame too short for its type's fixed part is an unknown frame to
        // RabbitMQ's reader (rabbit_command_assembler:analyze_frame), as is a
        // heartbeat with a payload.
        match frame_type {
            // basic.publish, once per message: its names are kept as slices.
            FRAME_METHOD if frame.starts_with(&PUBLISH_IDS) => {
                let payload = frame.freeze();
                match Publish::decode(&payload) {
                    Some(publish) => Ok(Some(Frame::Publish(channel, publish))),
                    None => Ok(Some(Frame::Method(
                        channel,
                        method::decode(channel, &payload)?,
                    ))),
                }
            }
            FRAME_METHOD if frame.len() >= 4 => Ok(Some(Frame::Method(
                channel,
                method::decode(channel, &frame)?,
            ))),
            FRAME_HEADER if frame.len() >= 12 => {
                let (header, properties) = ContentHeader::decode_frame(channel, frame)?;
                Ok(Some(Frame::Header(channel, header, properties)))
            }
            FRAME_BODY => Ok(Some(Frame::Body(channel, frame.freeze()))),
            // RabbitMQ reads a heartbeat with a payload as an unknown frame.
            FRAME_HEARTBEAT if frame.is_empty() => Ok(Some(Frame::Heartbeat(channel))),
            _ => Err(CodecError::UnknownFrameType {
                frame_type,
                channel,
                payload: frame.freeze(),
            }),
        }
    }
}

/// Appends frames to a write buffer. Keeps a scratch buffer so that encoding a
/// method allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    scratch: Vec<u8>,
}

impl FrameEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a method frame.
    pub fn method(
        &mut self,
        channel: u16,
        method: &AMQPClass,
        out: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let scratch = method::encode(method, scratch)?;
        put_frame(out, FRAME_METHOD, channel, &scratch);
        self.scratch = scratch;
        Ok(())
    }

    /// Appends basic.deliver, hand-encoded: it is written once per delivered message.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        exchange: &str,
        routing_key: &str,
        out: &mut BytesMut,
    ) {
        let (consumer_tag, exchange, routing_key) = (
            short_str(consumer_tag),
            short_str(exchange),
            short_str(routing_key),
        );
        let size = 4 + 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
        let mut f = Fill::new(out, size + FRAME_OVERHEAD as usize);
        f.put(&[FRAME_METHOD]);
        f.put(&channel.to_be_bytes());
        f.put(&(size as u32).to_be_bytes());
        f.put(&[0, 60, 0, 60]);
        f.short_str(consumer_tag);
        f.put(&delivery_tag.to_be_bytes());
        f.put(&[u8::from(redelivered)]);
        f.short_str(exchange);
        f.short_str(routing_key);
        f.put(&[FRAME_END]);
    }

    /// Appends a content header frame and the body frames, split to fit `frame_max`.
    pub fn content(
        &mut self,
        channel: u16,
        header: &ContentHeader,
        body: &[u8],
        frame_max: u32,
        out: &mut BytesMut,
    ) {
        let payload_len = header.payload_len();
        let chunk = if frame_max == 0 {
            usize::MAX
        } else {
            frame_max.saturating_sub(FRAME_OVERHEAD).max(1) as usize
        };
        // A small body goes in the same fill as the header (one frame); a
        // larger one is copied once by `put_frame`, not zeroed first.
        let small = body.len() <= SMALL_BODY.min(chunk);
        let mut len = payload_len + FRAME_OVERHEAD as usize;
        if small && !body.is_empty() {
            len += body.len() + FRAME_OVERHEAD as usize;
        }
        let mut f = Fill::new(out, len);
        f.header_frame(channel, header, body.len());
        if small {
            if !body.is_empty() {
                f.body_frame(channel, body);
            }
            return;
        }
        out.reserve(body.len() + body.len().div_ceil(chunk) * FRAME_OVERHEAD as usize);
        for piece in body.chunks(chunk) {
            put_frame(out, FRAME_BODY, channel, piece);
        }
    }

    /// Appends a heartbeat frame.
    pub fn heartbeat(&mut self, out: &mut BytesMut) {
        put_frame(out, FRAME_HEARTBEAT, 0, &[]);
    }
}

fn put_frame(out: &mut BytesMut, frame_type: u8, channel: u16, payload: &[u8]) {
    out.reserve(payload.len() + FRAME_OVERHEAD as usize);
    out.put_u8(frame_type);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

/// Bodies up to this size are written with their header in one [`Fill`].
pub(crate) const SMALL_BODY: usize = 4096;

/// A frame's bytes appended to a buffer and filled in place: one length
/// change per frame, where a `put_*` per field checked the capacity each time
/// (the deliver path writes three frames per message).
pub(crate) struct Fill<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Fill<'a> {
    /// Appends `len` bytes to `out` to be filled.
    pub(crate) fn new(out: &'a mut BytesMut, len: usize) -> Self {
        let start = out.len();
        out.resize(start + len, 0);
        Fill {
            buf: &mut out[start..],
            at: 0,
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// A string already cut by [`short_str`].
    pub(crate) fn short_str(&mut self, s: &str) {
        self.put(&[s.len() as u8]);
        self.put(s.as_bytes());
    }

    /// A content header frame for a body of `body_len` octets.
    #[inline]
    pub(crate) fn header_frame(&mut self, channel: u16, header: &ContentHeader, body_len: usize) {
        self.put(&[FRAME_HEADER]);
        self.put(&channel.to_be_bytes());
        self.put(&(header.payload_len() as u32).to_be_bytes());
        self.put(&header.class_id.to_be_bytes());
        self.put(&[0, 0]);
        self.put(&(body_len as u64).to_be_bytes());
        self.put(&header.raw_properties);
        self.put(&[FRAME_END]);
    }

    /// A body frame.
    #[inline]
    pub(crate) fn body_frame(&mut self, channel: u16, body: &[u8]) {
        self.put(&[FRAME_BODY]);
        self.put(&channel.to_be_bytes());
        self.put(&(body.len() as u32).to_be_bytes());
        self.put(body);
        self.put(&[FRAME_END]);
    }
}

/// Cuts a string to fit a short string: at most 255 octets, on a character boundary
/// (callers pass names that were short strings on the way in, so the cut never
/// happens in practice).
pub(crate) fn short_str(s: &str) -> &str {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{BasicProperties, channel};

    fn decode_all(bytes: &[u8], frame_max: u32) -> Result<Vec<Frame>, CodecError> {
        let mut decoder = FrameDecoder::new(frame_max);
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn deliver_fast_path_matches_generated_encoding() {
        let mut enc = FrameEncoder::new();
        let mut fast = BytesMut::new();
        enc.deliver(3, "ctag", 99, true, "ex", "rk", &mut fast);
        let mut slow = BytesMut::new();
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 99,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        }));
        enc.method(3, &method, &mut slow).expect("encode");
        assert_eq!(fast, slow);
        assert_eq!(
            decode_all(&fast, 0).expect("decode"),
            vec![Frame::Method(3, method)]
        );
    }

    #[test]
    fn deliver_cuts_overlong_names_to_a_valid_frame() {
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::new();
        let long = "é".repeat(200); // 400 octets; 255 would split a character
        enc.deliver(1, &long, 1, false, "ex", &long, &mut out);
        let frames = decode_all(&out, 0).expect("a well-formed frame");
        let cut = "é".repeat(127);
        assert_eq!(
            frames,
            vec![Frame::Method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: cut.as_str().into(),
                    delivery_tag: 1,
                    redelivered: false,
                    exchange: "ex".into(),
                    routing_key: cut.as_str().into(),
                }))
            )]
        );
    }

    #[test]
    fn body_is_split_by_frame_max_and_reassembles() {
        let mut enc = FrameEncoder::new();
        let header =
            ContentHeader::from_properties(10_000, &BasicProperties::default()).expect("header");
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        enc.content(1, &header, &body, 4096, &mut out);
        let frames = decode_all(&out, 4096).expect("decode");
        assert_eq!(frames.len(), 1 + 3);
        let mut joined = Vec::new();
        for frame in &frames[1..] {
            match frame {
                Frame::Body(1, b) => {
                    assert!(b.len() <= 4088);
                    joined.extend_from_slice(b);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(joined, body);
    }

    #[test]
    fn publish_comes_with_its_names_as_slices_of_the_frame() {
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::new();
        let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            mandatory: true,
            immediate: false,
        }));
        enc.method(5, &method, &mut out).expect("encode");
        let frames = decode_all(&out, 0).expect("decode");
        let [Frame::Publish(5, publish)] = &frames[..] else {
            panic!("not a publish: {frames:?}");
        };
        assert_eq!(
            (publish.exchange.as_str(), publish.routing_key.as_str()),
            ("ex", "rk")
        );
        assert!(publish.mandatory && !publish.immediate);
        assert_eq!(frames[0].clone().into_general(), Frame::Method(5, method));
        // One that does not read as a publish is the generic parser's error.
        let mut bad = out.to_vec();
        bad[7 + 4 + 2 + 1] = 0xff; // the exchange name's first octet: not UTF-8
        assert!(matches!(
            decode_all(&bad, 0),
            Err(CodecError::MalformedMethod {
                class_id: 60,
                method_id: 40,
                ..
            })
        ));
    }

    #[test]
    fn partial_input_waits_for_more() {
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::new();
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        enc.method(1, &open, &mut out).expect("encode");
        let mut decoder = FrameDecoder::new(131_072);
        let mut buf = BytesMut::new();
        for (i, byte) in out.iter().enumerate() {
            buf.put_u8(*byte);
            let frame = decoder.decode(&mut buf).expect("decode");
            assert_eq!(frame.is_some(), i == out.len() - 1);
        }
    }

    #[test]
    fn announced_size_is_not_reserved_up_front_without_frame_max() {
        let mut decoder = FrameDecoder::new(0);
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xF0][..]);
        assert!(decoder.decode(&mut buf).expect("waits").is_none());
        assert!(buf.capacity() <= RESERVE_AHEAD_MAX + 8);
    }

    #[test]
    fn framing_errors() {
        let err = decode_all(&[9, 0, 0, 0, 0, 0, 0, FRAME_END], 0).expect_err("type");
        assert!(matches!(
            err,
            CodecError::UnknownFrameType { frame_type: 9, .. }
        ));
        let err = decode_all(&[8, 0, 0, 0, 0, 0, 0, 0x00], 0).expect_err("end");
        assert!(matches!(err, CodecError::BadFrameEnd { found: 0, .. }));
        let err = decode_all(&[1, 0, 1, 0, 0, 0x13, 0x88], 4096).expect_err("size");
        assert!(matches!(
            err,
            CodecError::FrameTooLarge {
                size: 5000,
                max: 4088,
                ..
            }
        ));
        // a payload of exactly frame_max is tolerated, one more octet is not
        let mut exact = vec![3, 0, 1, 0, 0, 0x10, 0x00];
        exact.extend_from_slice(&[0; 4096]);
        exact.push(FRAME_END);
        assert_eq!(decode_all(&exact, 4096).expect("4096").len(), 1);
        let err = decode_all(&[3, 0, 1, 0, 0, 0x10, 0x01], 4096).expect_err("4097");
        assert!(matches!(
            err,
            CodecError::FrameTooLarge {
                size: 4097,
                max: 4088,
                ..
            }
        ));
        let err =
            decode_all(&[1, 0, 1, 0, 0, 0, 2, 0, 60, FRAME_END], 0).expect_err("short method");
        assert!(matches!(
            err,
            CodecError::UnknownFrameType { frame_type: 1, .. }
        ));
        let err =
            decode_all(&[2, 0, 1, 0, 0, 0, 2, 0, 60, FRAME_END], 0).expect_err("short header");
        assert!(matches!(
            err,
            CodecError::UnknownFrameType { frame_type: 2, .. }
        ));
        let err =
            decode_all(&[8, 0, 0, 0, 0, 0, 2, b'x', b'x', FRAME_END], 0).expect_err("payload");
        assert!(matches!(
            err,
            CodecError::UnknownFrameType { frame_type: 8, .. }
        ));
        let frames = decode_all(&[8, 0, 1, 0, 0, 0, 0, FRAME_END], 0).expect("heartbeat");
        assert_eq!(frames, vec![Frame::Heartbeat(1)]);
    }
}

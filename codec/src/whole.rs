//! A whole message at the front of the read buffer: basic.publish, its content
//! header and the one body frame that completes it, all on one channel, taken
//! in one cut of the buffer (issue 19: most messages are small and arrive so,
//! and three frames decoded one by one cost three cuts, three frame enums and
//! three turns of the connection's loop).
//!
//! Only the framing is checked before the cut (types, channel, sizes against
//! frame_max, frame ends, the header's body size against the body frame's):
//! anything else leaves the buffer to [`FrameDecoder`]'s `decode`, so every
//! error is still reported by the frame that carries it. A publish or header
//! payload that does not decode after the cut comes back as the frames `decode`
//! would have given, in order.

use bytes::{Buf, Bytes, BytesMut};

use crate::content::ContentHeader;
use crate::error::CodecError;
use crate::frame::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD, Frame, FrameDecoder};
use crate::method;
use crate::properties::Properties;
use crate::publish::{PUBLISH_IDS, Publish};

/// basic.publish with its content, decoded from its three frames at once.
#[derive(Clone, Debug, PartialEq)]
pub struct WholeMessage {
    /// The channel all three frames came on.
    pub channel: u16,
    /// The method.
    pub publish: Publish,
    /// The content header.
    pub header: ContentHeader,
    /// Its properties, parsed.
    pub properties: Properties,
    /// The body: a slice of the read buffer.
    pub body: Bytes,
}

/// What [`FrameDecoder::decode_whole`] took from the buffer.
#[derive(Debug)]
pub enum Whole {
    /// The message.
    Message(WholeMessage),
    /// The three frames were cut, but the publish or the header did not decode
    /// as such: the frames (or the error) in order, as `decode` gives them.
    Frames(Vec<Result<Frame, CodecError>>),
}

impl FrameDecoder {
    /// Takes a whole message from the front of `src` (see the module's text);
    /// `None`, with `src` untouched, when the front is anything else.
    pub fn decode_whole(&self, src: &mut BytesMut) -> Option<Whole> {
        let (channel, method_size) = self.frame_at(src, 0, FRAME_METHOD)?;
        if channel == 0 || !src[7..].starts_with(&PUBLISH_IDS) {
            return None;
        }
        let header_at = 8 + method_size;
        let (header_channel, header_size) = self.frame_at(src, header_at, FRAME_HEADER)?;
        if header_channel != channel || header_size < 14 {
            return None;
        }
        let size_at = header_at + 7 + 4;
        let body_size = u64::from_be_bytes(src[size_at..size_at + 8].try_into().ok()?);
        let body_at = header_at + 8 + header_size;
        let (body_channel, body_frame_size) = self.frame_at(src, body_at, FRAME_BODY)?;
        if body_channel != channel || body_size == 0 || body_size != body_frame_size as u64 {
            return None;
        }
        let mut all = src.split_to(body_at + 8 + body_frame_size).freeze();
        let method_bytes = 7..7 + method_size;
        let header_bytes = header_at + 7..header_at + 7 + header_size;
        let body_bytes = body_at + 7..body_at + 7 + body_frame_size;
        // The names, the properties and the body share `all`: the body is
        // `all` itself, narrowed, the others slices of it.
        match (
            Publish::decode_within(&all, method_bytes.clone()),
            ContentHeader::decode_within(channel, &all, header_bytes),
        ) {
            (Some(publish), Ok((header, properties))) => {
                all.advance(body_bytes.start);
                all.truncate(body_frame_size);
                Some(Whole::Message(WholeMessage {
                    channel,
                    publish,
                    header,
                    properties,
                    body: all,
                }))
            }
            (publish, header) => {
                let first = match publish {
                    Some(publish) => Ok(Frame::Publish(channel, publish)),
                    None => method::decode(channel, &all[method_bytes])
                        .map(|m| Frame::Method(channel, m)),
                };
                let header = header.map(|(h, p)| Frame::Header(channel, h, p));
                Some(Whole::Frames(vec![
                    first,
                    header,
                    Ok(Frame::Body(channel, all.slice(body_bytes))),
                ]))
            }
        }
    }

    /// The channel and payload size of a complete, well-framed frame of type
    /// `frame_type` at `at` in `src`, within frame_max.
    fn frame_at(&self, src: &[u8], at: usize, frame_type: u8) -> Option<(u16, usize)> {
        let head: &[u8; 7] = src.get(at..at + 7)?.try_into().ok()?;
        if head[0] != frame_type {
            return None;
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
        if self.frame_max() != 0 && size > self.frame_max() {
            return None;
        }
        let end = at + 7 + size as usize;
        (src.get(end) == Some(&FRAME_END))
            .then_some((u16::from_be_bytes([head[1], head[2]]), size as usize))
    }
}

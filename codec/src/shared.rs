//! The frames of a delivery that are alike on every channel, encoded once per
//! message and copied into each of its deliveries: a fanout hands one message
//! to many queues, and encoding it again for each (the names and properties
//! copied field by field) was about 350 instructions a delivery.

use bytes::{Bytes, BytesMut};

use crate::content::ContentHeader;
use crate::frame::{
    FRAME_END, FRAME_METHOD, FRAME_OVERHEAD, Fill, FrameEncoder, SMALL_BODY, short_str,
};

/// The end of a basic.deliver frame (exchange and routing key, frame end)
/// and the content header and body frames after it, channel 0 where each
/// frame's channel goes.
#[derive(Debug, Clone)]
pub struct SharedDelivery {
    bytes: Bytes,
    /// Octets of the method frame's end: the two short strings.
    method_tail: u16,
    /// Where the body frame starts in `bytes` (0: an empty body, no frame).
    body_at: u32,
    /// The body's length (whether it fits one frame of a connection).
    body_len: u32,
}

impl SharedDelivery {
    /// The frames of a message with these names, header and body; `None`
    /// for a body larger than one small frame (copied once more, it would
    /// cost more than it saves).
    pub fn encode(
        exchange: &str,
        routing_key: &str,
        header: &ContentHeader,
        body: &[u8],
    ) -> Option<Self> {
        if body.len() > SMALL_BODY {
            return None;
        }
        let (exchange, routing_key) = (short_str(exchange), short_str(routing_key));
        let method_tail = 2 + exchange.len() + routing_key.len();
        let payload_len = header.payload_len();
        let header_at = method_tail + 1;
        let body_at = header_at + payload_len + FRAME_OVERHEAD as usize;
        let mut len = body_at;
        if !body.is_empty() {
            len += body.len() + FRAME_OVERHEAD as usize;
        }
        // Sized up front: growing it from empty was most of this function.
        let mut out = BytesMut::with_capacity(len);
        let mut f = Fill::new(&mut out, len);
        f.short_str(exchange);
        f.short_str(routing_key);
        f.put(&[FRAME_END]);
        // Channel 0 in both frames: each delivery patches its own.
        f.header_frame(0, header, body.len());
        if !body.is_empty() {
            f.body_frame(0, body);
        }
        Some(SharedDelivery {
            bytes: out.freeze(),
            method_tail: method_tail as u16,
            body_at: if body.is_empty() { 0 } else { body_at as u32 },
            body_len: body.len() as u32,
        })
    }

    /// Whether its body goes in one frame under `frame_max` (as
    /// [`FrameEncoder::content`] would send it).
    pub fn fits(&self, frame_max: u32) -> bool {
        frame_max == 0 || self.body_len.saturating_add(FRAME_OVERHEAD) <= frame_max
    }
}

impl FrameEncoder {
    /// Appends basic.deliver and its content from their shared frames: the
    /// same octets as [`FrameEncoder::deliver`] then [`FrameEncoder::content`]
    /// when `shared` [fits](SharedDelivery::fits) the connection's frame_max.
    pub fn deliver_shared(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        shared: &SharedDelivery,
        out: &mut BytesMut,
    ) {
        let consumer_tag = short_str(consumer_tag);
        let method_tail = usize::from(shared.method_tail);
        let size = 4 + 1 + consumer_tag.len() + 8 + 1 + method_tail;
        // Octets before the shared ones: the frame's start, the method's.
        let head = 7 + size - method_tail;
        // Appended piece by piece after one reserve, not zero-filled and
        // overwritten as `Fill` does: four copies, no memset.
        out.reserve(head + shared.bytes.len());
        let start = out.len();
        // The fixed fields in two stack arrays: fewer, fixed-size copies.
        let [c0, c1] = channel.to_be_bytes();
        let [s0, s1, s2, s3] = (size as u32).to_be_bytes();
        let tag_len = consumer_tag.len() as u8;
        out.extend_from_slice(&[FRAME_METHOD, c0, c1, s0, s1, s2, s3, 0, 60, 0, 60, tag_len]);
        out.extend_from_slice(consumer_tag.as_bytes());
        let mut fields = [0; 9];
        fields[..8].copy_from_slice(&delivery_tag.to_be_bytes());
        fields[8] = u8::from(redelivered);
        out.extend_from_slice(&fields);
        out.extend_from_slice(&shared.bytes);
        let frames = &mut out[start..];
        set_channel(frames, head + method_tail + 1, channel);
        if shared.body_at > 0 {
            set_channel(frames, head + shared.body_at as usize, channel);
        }
    }
}

/// Writes `channel` into the frame that starts at `at`.
fn set_channel(frames: &mut [u8], at: usize, channel: u16) {
    frames[at + 1..at + 3].copy_from_slice(&channel.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::BasicProperties;

    #[test]
    fn shared_frames_are_the_encoded_ones() {
        let plain = BasicProperties::default();
        let rich = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_priority(3);
        let bodies: [&[u8]; 3] = [b"", b"0123456789abcdef", &[7; 4000]];
        for properties in [plain, rich] {
            for body in bodies {
                let header =
                    ContentHeader::from_properties(body.len() as u64, &properties).expect("header");
                let shared =
                    SharedDelivery::encode("amq.fanout", "key", &header, body).expect("small");
                for (channel, tag, redelivered) in [(1, "ctag", false), (513, "", true)] {
                    let mut encoder = FrameEncoder::new();
                    let mut want = BytesMut::new();
                    encoder.deliver(
                        channel,
                        tag,
                        77,
                        redelivered,
                        "amq.fanout",
                        "key",
                        &mut want,
                    );
                    encoder.content(channel, &header, body, 131_072, &mut want);
                    let mut got = BytesMut::from(&b"prefix"[..]);
                    encoder.deliver_shared(channel, tag, 77, redelivered, &shared, &mut got);
                    assert_eq!(&got[6..], &want[..]);
                }
            }
        }
    }

    #[test]
    fn a_large_body_is_not_shared_and_a_small_frame_max_is_refused() {
        let header =
            ContentHeader::from_properties(5000, &BasicProperties::default()).expect("header");
        assert!(SharedDelivery::encode("", "q", &header, &[0; 5000]).is_none());
        let header =
            ContentHeader::from_properties(4090, &BasicProperties::default()).expect("header");
        let shared = SharedDelivery::encode("", "q", &header, &[0; 4090]).expect("small");
        assert!(!shared.fits(4096) && shared.fits(4098) && shared.fits(0));
    }
}

//! Feeds arbitrary bytes to `FrameDecoder`, whole and in chunks, and checks that:
//! - nothing panics (or overflows the stack, or allocates what the input announces);
//! - decoding in chunks yields the same frames and the same error as decoding at once;
//! - every decoded method re-encodes to a frame that decodes to the same method;
//! - every decoded content header's properties re-encode and decode stably.
//!
//! The first input octet picks frame_max and the chunk size, the rest is the stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warren_codec::{ContentHeader, Frame, FrameDecoder, FrameEncoder};

/// Frames decoded until the decoder wanted more input or failed (with the error's text).
fn decode(frame_max: u32, chunk: usize, data: &[u8]) -> (Vec<Frame>, Option<String>) {
    let mut decoder = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

fn encode_method(channel: u16, method: &warren_codec::protocol::AMQPClass) -> BytesMut {
    let mut out = BytesMut::new();
    FrameEncoder::new()
        .method(channel, method, &mut out)
        .expect("a decoded method re-encodes");
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let frame_max = match mode & 3 {
        0 => 4096,
        1 => 131_072,
        2 => 0, // no limit: announced sizes must not be trusted
        _ => 65_536,
    };
    let chunk = usize::from(mode >> 2) + 1;

    let whole = decode(frame_max, data.len(), data);
    let chunked = decode(frame_max, chunk, data);
    assert_eq!(whole.1, chunked.1, "error differs when chunked");
    assert_eq!(
        whole.0.len(),
        chunked.0.len(),
        "frame count differs when chunked"
    );
    // Frames can hold NaN floats (NaN != NaN): unequal frames are compared as text.
    for (a, b) in whole.0.iter().zip(&chunked.0) {
        if a != b {
            assert_eq!(
                format!("{a:?}"),
                format!("{b:?}"),
                "frames differ when chunked"
            );
        }
    }

    for frame in &whole.0 {
        match frame {
            Frame::Method(channel, method) => {
                let first = encode_method(*channel, method);
                let (again, err) = decode(0, first.len(), &first);
                assert_eq!(err, None, "re-encoded method does not decode");
                let [Frame::Method(c, m)] = &again[..] else {
                    panic!("re-encoded method decodes to {again:?}");
                };
                assert_eq!(c, channel);
                assert_eq!(
                    encode_method(*c, m),
                    first,
                    "method changed on a round trip"
                );
            }
            Frame::Header(_, header, properties) => {
                let reparsed = header
                    .properties()
                    .expect("kept raw properties parse again");
                if &reparsed != properties.as_ref() {
                    assert_eq!(format!("{reparsed:?}"), format!("{properties:?}"));
                }
                let first = ContentHeader::from_properties(header.body_size, properties)
                    .expect("decoded properties re-encode");
                let parsed = first.properties().expect("re-encoded properties parse");
                let second = ContentHeader::from_properties(header.body_size, &parsed)
                    .expect("properties re-encode twice");
                assert_eq!(first, second, "properties changed on a round trip");
            }
            Frame::Body(..) | Frame::Heartbeat(_) => {}
        }
    }
});

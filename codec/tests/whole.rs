//! `FrameDecoder::decode_whole` against frame-by-frame `decode`: over messages
//! cut into frames at every frame_max, then damaged (a byte changed, the end cut
//! off), taking whole messages first must give the same frames, the same error
//! and leave the same bytes as taking every frame alone.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use warren_codec::protocol::{AMQPClass, BasicProperties, basic};
use warren_codec::types::{AMQPValue, FieldTable, ShortString};
use warren_codec::{ContentHeader, Frame, FrameDecoder, FrameEncoder, Whole};

/// One publish, its header and its body, framed for `frame_max`.
fn message(
    channel: u16,
    exchange: &str,
    key: &str,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: u32,
    out: &mut BytesMut,
) {
    let mut encoder = FrameEncoder::new();
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: ShortString::from(exchange),
        routing_key: ShortString::from(key),
        mandatory: key.len().is_multiple_of(2),
        immediate: false,
    }));
    encoder
        .method(channel, &publish, out)
        .expect("a publish encodes");
    let header =
        ContentHeader::from_properties(body.len() as u64, properties).expect("a header encodes");
    encoder.content(channel, &header, body, frame_max, out);
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    prop_oneof![
        Just(BasicProperties::default()),
        Just(BasicProperties::default().with_delivery_mode(2)),
        "[a-z]{0,12}".prop_map(|t| BasicProperties::default()
            .with_content_type(ShortString::from(t.as_str()))
            .with_priority(3)),
        "[a-z]{1,8}".prop_map(|k| {
            let mut headers = FieldTable::default();
            headers.insert(ShortString::from(k.as_str()), AMQPValue::LongInt(7));
            BasicProperties::default().with_headers(headers)
        }),
    ]
}

/// What a reader gets from `buf`, as text: frames in order, ending at the first
/// error or when the buffer holds no whole frame; then the bytes left.
fn frame_by_frame(decoder: &mut FrameDecoder, mut buf: BytesMut) -> (Vec<String>, Vec<u8>) {
    let mut seen = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => seen.push(format!("{frame:?}")),
            Ok(None) => return (seen, buf.to_vec()),
            Err(e) => {
                seen.push(format!("error {e:?}"));
                return (seen, Vec::new());
            }
        }
    }
}

fn whole_first(decoder: &mut FrameDecoder, mut buf: BytesMut) -> (Vec<String>, Vec<u8>, usize) {
    let (mut seen, mut wholes) = (Vec::new(), 0);
    loop {
        match decoder.decode_whole(&mut buf) {
            Some(Whole::Message(m)) => {
                wholes += 1;
                let c = m.channel;
                seen.push(format!("{:?}", Frame::Publish(c, m.publish)));
                seen.push(format!("{:?}", Frame::Header(c, m.header, m.properties)));
                seen.push(format!("{:?}", Frame::Body(c, m.body)));
                continue;
            }
            Some(Whole::Frames(frames)) => {
                for frame in frames {
                    match frame {
                        Ok(frame) => seen.push(format!("{frame:?}")),
                        Err(e) => {
                            seen.push(format!("error {e:?}"));
                            return (seen, Vec::new(), wholes);
                        }
                    }
                }
                continue;
            }
            None => {}
        }
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => seen.push(format!("{frame:?}")),
            Ok(None) => return (seen, buf.to_vec(), wholes),
            Err(e) => {
                seen.push(format!("error {e:?}"));
                return (seen, Vec::new(), wholes);
            }
        }
    }
}

/// How the bytes are damaged before decoding.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// The byte at this share of the length set to this value.
    Byte(f64, u8),
    /// Cut to this share of the length.
    Cut(f64),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        3 => (0.0..1.0f64, any::<u8>()).prop_map(|(at, v)| Damage::Byte(at, v)),
        1 => (0.0..1.0f64).prop_map(Damage::Cut),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn whole_messages_decode_as_their_frames(
        messages in proptest::collection::vec(
            (prop_oneof![Just(1u16), Just(2), Just(0), Just(65535)],
             "[a-z.]{0,10}|é{1,3}",
             "[a-z.#*]{0,20}",
             properties(),
             proptest::collection::vec(any::<u8>(), 0..300)),
            1..4),
        frame_max in prop_oneof![Just(0u32), Just(4096), Just(131_072), 24u32..200],
        encode_max in prop_oneof![Just(131_072u32), 24u32..200],
        damage in damage(),
    ) {
        let mut buf = BytesMut::new();
        for (channel, exchange, key, properties, body) in &messages {
            message(*channel, exchange, key, properties, body, encode_max, &mut buf);
        }
        match damage {
            Damage::None => {}
            Damage::Byte(at, v) => {
                let i = ((buf.len() as f64 * at) as usize).min(buf.len() - 1);
                buf[i] = v;
            }
            Damage::Cut(at) => buf.truncate((buf.len() as f64 * at) as usize),
        }
        let (expected, expected_left) = frame_by_frame(&mut FrameDecoder::new(frame_max), buf.clone());
        let (got, got_left, _) = whole_first(&mut FrameDecoder::new(frame_max), buf);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(got_left, expected_left);
    }
}

/// A small message in one read is taken whole; one whose body spans two frames,
/// or a header alone (empty body), is not.
#[test]
fn only_single_body_messages_are_whole() {
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut buf = BytesMut::new();
    message(1, "amq.direct", "k", &props, b"hello", 131_072, &mut buf);
    message(1, "", "q", &props, &[7u8; 100], 60, &mut buf);
    message(3, "", "q", &props, b"", 131_072, &mut buf);
    buf.put_u8(8); // and half a heartbeat
    let (frames, left, wholes) = whole_first(&mut FrameDecoder::new(131_072), buf);
    assert_eq!(wholes, 1, "{frames:?}");
    assert_eq!(frames.len(), 3 + 4 + 2, "{frames:?}");
    assert!(frames[0].starts_with("Publish(1"), "{frames:?}");
    assert_eq!(left, vec![8]);
}

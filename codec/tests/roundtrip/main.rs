//! Property tests for warren-codec: field tables, methods, content headers and bodies
//! survive encode -> decode unchanged, decoding is incremental, and no input panics.

use bytes::{BufMut, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use warren_codec::frame::{FRAME_END, FRAME_OVERHEAD};
use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::parsing::parse_field_table;
use warren_codec::types::{AMQPValue, DecimalValue, FieldTable, ShortString};
use warren_codec::{
    CodecError, ContentHeader, Frame, FrameDecoder, FrameEncoder, MAX_NESTING_DEPTH, method,
};

const CASES: u32 = 256;

mod methods;
mod strategies;

use methods::any_method;
use strategies::*;

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Field tables over every wire type, nested, survive gen_field_table ->
    /// parse_field_table; no strict prefix of the encoding decodes to the end.
    #[test]
    fn field_tables_roundtrip(table in field_table()) {
        let bytes = encode_table(&table);
        let (rest, decoded) = parse_field_table(&bytes[..]).expect("decodes");
        prop_assert!(rest.is_empty());
        prop_assert_eq!(&decoded, &table);
        for cut in 0..bytes.len() {
            if let Ok((rest, _)) = parse_field_table(&bytes[..cut]) {
                prop_assert!(!rest.is_empty(), "prefix of {} octets decoded whole", cut);
            }
        }
    }

    /// Every method of every class: FrameEncoder::method -> FrameDecoder gives the same
    /// Frame::Method back, also when several frames arrive in arbitrary chunks.
    #[test]
    fn methods_roundtrip_in_any_chunking(
        methods in vec((any::<u16>(), any_method()), 1..4),
        chunks in vec(1usize..=97, 1..16),
    ) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        let mut encoder = FrameEncoder::new();
        for (channel, m) in &methods {
            prop_assert!(
                method::is_known(m.get_amqp_class_id(), m.get_amqp_method_id()),
                "is_known disagrees with amq-protocol for {:?}", m
            );
            encoder.method(*channel, m, &mut wire).expect("encodes");
            expected.push(Frame::Method(*channel, m.clone()));
        }

        // all at once
        let mut decoder = FrameDecoder::new(0);
        let mut whole = wire.clone();
        prop_assert_eq!(&decode_all(&mut decoder, &mut whole).expect("decodes"), &expected);
        prop_assert!(whole.is_empty());

        // in chunks: nothing comes out early, everything comes out in order
        let mut decoder = FrameDecoder::new(0);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        for size in chunks.iter().cycle() {
            if fed == wire.len() {
                break;
            }
            let end = (fed + size).min(wire.len());
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
            got.extend(decode_all(&mut decoder, &mut buf).expect("decodes"));
            prop_assert!(got.len() <= expected.len());
            prop_assert_eq!(&got[..], &expected[..got.len()]);
        }
        prop_assert_eq!(got, expected);
        prop_assert!(buf.is_empty());
    }

    /// The hand-written basic.deliver encoder writes what the generated one writes.
    #[test]
    fn deliver_fast_path_matches_generated(
        channel in any::<u16>(),
        consumer_tag in short_str(),
        delivery_tag in any::<u64>(),
        redelivered in any::<bool>(),
        exchange in short_str(),
        routing_key in short_str(),
    ) {
        let mut fast = BytesMut::new();
        FrameEncoder::new().deliver(
            channel, &consumer_tag, delivery_tag, redelivered, &exchange, &routing_key, &mut fast,
        );
        let generated = encode_method(
            channel,
            &AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: consumer_tag.into(),
                delivery_tag,
                redelivered,
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            })),
        );
        prop_assert_eq!(fast, generated);
    }

    /// Random properties and body: header + body frames decode back to the same
    /// properties and body; every body frame fits frame_max.
    #[test]
    fn content_roundtrips_within_frame_max(
        properties in properties(),
        body in vec(any::<u8>(), 0..40_000),
        frame_max in frame_max(),
        channel in any::<u16>(),
    ) {
        let header = ContentHeader::from_properties(body.len() as u64, &properties)
            .expect("properties encode");
        let max_payload = (frame_max - FRAME_OVERHEAD) as usize;
        // A header larger than frame_max cannot be sent at all (the encoder does not
        // split headers); such cases are not what this property is about.
        prop_assume!(header.payload_len() <= max_payload);

        let mut wire = BytesMut::new();
        FrameEncoder::new().content(channel, &header, &body, frame_max, &mut wire);
        let frames = decode_all(&mut FrameDecoder::new(frame_max), &mut wire).expect("decodes");
        prop_assert!(wire.is_empty());

        let (first, bodies) = frames.split_first().expect("a header frame");
        match first {
            Frame::Header(ch, decoded, props) => {
                prop_assert_eq!(*ch, channel);
                prop_assert_eq!(decoded, &header);
                prop_assert_eq!(&**props, &properties);
                prop_assert_eq!(decoded.properties(), Some(properties.clone()));
            }
            other => prop_assert!(false, "expected a header frame, got {:?}", other),
        }
        prop_assert_eq!(bodies.len(), body.len().div_ceil(max_payload));
        let mut joined = Vec::with_capacity(body.len());
        for frame in bodies {
            match frame {
                Frame::Body(ch, piece) => {
                    prop_assert_eq!(*ch, channel);
                    prop_assert!(!piece.is_empty());
                    prop_assert!(piece.len() <= max_payload);
                    joined.extend_from_slice(piece);
                }
                other => prop_assert!(false, "expected a body frame, got {:?}", other),
            }
        }
        prop_assert_eq!(joined, body);
    }

    /// Arbitrary bytes never panic the decoder: it answers Ok(None), Ok(Some) or Err.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..2048),
        frame_max in prop_oneof![Just(0u32), Just(4096u32), Just(131_072u32)],
    ) {
        drain(frame_max, &bytes);
    }

    /// Well-framed garbage reaches the method and header parsers, which must not panic
    /// either; a method that does decode re-encodes to a frame that decodes to it.
    #[test]
    fn framed_garbage_never_panics(
        frame_type in prop_oneof![Just(1u8), Just(2u8), Just(3u8), Just(8u8), any::<u8>()],
        ids in prop::sample::select(known_ids()),
        payload in vec(any::<u8>(), 0..512),
    ) {
        let mut framed = BytesMut::new();
        let mut body = payload;
        if frame_type == 1 {
            let mut with_ids = ids.0.to_be_bytes().to_vec();
            with_ids.extend_from_slice(&ids.1.to_be_bytes());
            with_ids.extend_from_slice(&body);
            body = with_ids;
        }
        framed.put_u8(frame_type);
        framed.put_u16(1);
        framed.put_u32(body.len() as u32);
        framed.put_slice(&body);
        framed.put_u8(FRAME_END);
        drain(131_072, &framed);
    }

    /// A valid method frame with one octet changed or the frame cut short never panics;
    /// if it still decodes, the result re-encodes and decodes to itself.
    #[test]
    fn mutated_methods_never_panic(
        m in any_method(),
        at in any::<prop::sample::Index>(),
        octet in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut wire = encode_method(1, &m);
        let i = at.index(wire.len());
        if cut {
            wire.truncate(i);
        } else {
            wire[i] = octet;
        }
        drain(0, &wire);
    }
}

/// (class, method) ids of every known method, for framed garbage.
fn known_ids() -> Vec<(u16, u16)> {
    let mut ids = Vec::new();
    for class_id in [10, 20, 30, 40, 50, 60, 85, 90] {
        for method_id in 0..=200 {
            if method::is_known(class_id, method_id) {
                ids.push((class_id, method_id));
            }
        }
    }
    ids
}

/// Decodes until the decoder wants more or fails; checks what it decoded.
fn drain(frame_max: u32, bytes: &[u8]) {
    let mut decoder = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(None) | Err(_) => return,
            Ok(Some(frame)) => {
                assert!(
                    buf.len() + FRAME_OVERHEAD as usize <= before,
                    "a frame consumed nothing"
                );
                if let Frame::Method(channel, m) = frame {
                    // Compared by encoding: garbage can hold NaN floats (NaN != NaN).
                    let again = encode_method(channel, &m);
                    let back = decode_all(&mut FrameDecoder::new(0), &mut again.clone())
                        .expect("a decoded method re-encodes to a decodable frame");
                    let [Frame::Method(c, m2)] = &back[..] else {
                        panic!("re-encoded method decodes to {back:?}");
                    };
                    assert_eq!(*c, channel);
                    assert_eq!(encode_method(*c, m2), again);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------------

/// Each wire type gets the type octet RabbitMQ uses and comes back as itself.
#[test]
fn every_wire_type_has_its_octet() {
    let cases = [
        (b't', AMQPValue::Boolean(true)),
        (b'b', AMQPValue::ShortShortInt(-1)),
        (b'B', AMQPValue::ShortShortUInt(255)),
        (b's', AMQPValue::ShortInt(-2)),
        (b'u', AMQPValue::ShortUInt(2)),
        (b'I', AMQPValue::LongInt(-3)),
        (b'i', AMQPValue::LongUInt(3)),
        (b'l', AMQPValue::LongLongInt(-4)),
        (b'f', AMQPValue::Float(1.5)),
        (b'd', AMQPValue::Double(-2.5)),
        (
            b'D',
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 314,
            }),
        ),
        (b'S', AMQPValue::LongString("s".into())),
        (b'A', AMQPValue::FieldArray(vec![AMQPValue::Void].into())),
        (b'T', AMQPValue::Timestamp(1_700_000_000)),
        (b'F', AMQPValue::FieldTable(FieldTable::default())),
        (b'x', AMQPValue::ByteArray(vec![0, 1].into())),
        (b'V', AMQPValue::Void),
    ];
    for (octet, value) in cases {
        let mut table = FieldTable::default();
        table.insert(ShortString::from(""), value.clone());
        let bytes = encode_table(&table);
        // length:u32, key length 0, then the type octet
        assert_eq!(bytes[5], octet, "{value:?}");
        let (rest, decoded) = parse_field_table(&bytes[..]).expect("decodes");
        assert!(rest.is_empty());
        assert_eq!(decoded, table);
    }
}

/// `{"k": A[A[...]]}` with `levels` levels in all (the table is level 1).
fn nested_table(levels: usize) -> Vec<u8> {
    let mut value = vec![b'A', 0, 0, 0, 0];
    for _ in 2..levels {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        outer.extend_from_slice(&value);
        value = outer;
    }
    let mut table = ((value.len() + 2) as u32).to_be_bytes().to_vec();
    table.extend_from_slice(&[1, b'k']);
    table.extend_from_slice(&value);
    table
}

fn frame(frame_type: u8, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u8(frame_type);
    out.put_u16(1);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
    out
}

/// Tables nested past MAX_NESTING_DEPTH are a frame error, not a stack overflow (a
/// 128 KiB frame of nested arrays used to abort the process).
#[test]
fn deeply_nested_tables_are_refused_not_overflowed() {
    // queue.declare: ids, reserved, queue "", bits, arguments
    let declare = |levels| {
        let mut payload = vec![0, 50, 0, 10, 0, 0, 0, 0];
        payload.extend_from_slice(&nested_table(levels));
        frame(1, &payload)
    };
    // header: class, weight, size, flags (headers only), headers
    let header = |levels| {
        let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0];
        payload.extend_from_slice(&nested_table(levels));
        frame(2, &payload)
    };
    let mut decoder = FrameDecoder::new(131_072);

    assert!(matches!(
        decoder.decode(&mut declare(MAX_NESTING_DEPTH)),
        Ok(Some(Frame::Method(1, _)))
    ));
    assert!(matches!(
        decoder.decode(&mut header(MAX_NESTING_DEPTH)),
        Ok(Some(Frame::Header(1, ..)))
    ));
    assert!(matches!(
        decoder.decode(&mut declare(MAX_NESTING_DEPTH + 1)),
        Err(CodecError::MalformedMethod { .. })
    ));
    assert!(matches!(
        decoder.decode(&mut header(MAX_NESTING_DEPTH + 1)),
        Err(CodecError::MalformedHeader { .. })
    ));
    let deepest = (131_072 - 8 - 32) / 5;
    assert!(matches!(
        decoder.decode(&mut declare(deepest)),
        Err(CodecError::MalformedMethod { .. })
    ));
    assert!(matches!(
        decoder.decode(&mut header(deepest)),
        Err(CodecError::MalformedHeader { .. })
    ));
}

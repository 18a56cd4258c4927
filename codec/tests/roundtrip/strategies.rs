//! The generators of the round-trip tests: strings, field values and tables, every
//! method of every class, properties, and the helpers that encode and decode them.

use bytes::BytesMut;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use warren_codec::protocol::{AMQPClass, BasicProperties};
use warren_codec::types::generation::gen_field_table;
use warren_codec::types::{
    AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use warren_codec::{CodecError, Frame, FrameDecoder, FrameEncoder};

/// Keeps whole characters while the string fits a short string (255 octets).
pub(crate) fn cut_to_short(chars: Vec<char>) -> String {
    let mut s = String::new();
    for c in chars {
        if s.len() + c.len_utf8() > 255 {
            break;
        }
        s.push(c);
    }
    s
}

/// Valid UTF-8 of at most 255 octets: mostly short, sometimes any Unicode, sometimes
/// exactly at the limit.
pub(crate) fn short_str() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-z0-9._-]{0,12}",
        3 => vec(any::<char>(), 0..40).prop_map(cut_to_short),
        1 => vec(any::<char>(), 60..256).prop_map(cut_to_short),
        1 => "[a-zA-Z]{255}",
    ]
    .boxed()
}

pub(crate) fn short() -> BoxedStrategy<ShortString> {
    short_str().prop_map(ShortString::from).boxed()
}

/// Table keys: short strings, kept short so that tables stay small.
pub(crate) fn key() -> BoxedStrategy<ShortString> {
    prop_oneof![
        4 => "[a-z-]{0,10}",
        1 => vec(any::<char>(), 0..12).prop_map(cut_to_short),
    ]
    .prop_map(ShortString::from)
    .boxed()
}

pub(crate) fn long_string(max: usize) -> BoxedStrategy<LongString> {
    vec(any::<u8>(), 0..max).prop_map(LongString::from).boxed()
}

/// Floats of every class except NaN (NaN != NaN would fail equality, not the codec).
pub(crate) fn float() -> impl Strategy<Value = f32> {
    use proptest::num::f32;
    f32::POSITIVE | f32::NEGATIVE | f32::NORMAL | f32::SUBNORMAL | f32::ZERO | f32::INFINITE
}

pub(crate) fn double() -> impl Strategy<Value = f64> {
    use proptest::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO | f64::INFINITE
}

/// Every non-container wire type RabbitMQ accepts: t b B s u I i l f d D S T x V.
/// (ShortString and LongLongUInt have no wire id of their own and are left out.)
pub(crate) fn leaf_value() -> BoxedStrategy<AMQPValue> {
    prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        float().prop_map(AMQPValue::Float),
        double().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        long_string(48).prop_map(AMQPValue::LongString),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        vec(any::<u8>(), 0..48).prop_map(|b| AMQPValue::ByteArray(b.into())),
        Just(AMQPValue::Void),
    ]
    .boxed()
}

/// Any value, with arrays (A) and tables (F) nested up to 3 levels.
pub(crate) fn value() -> BoxedStrategy<AMQPValue> {
    leaf_value()
        .prop_recursive(3, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
                btree_map(key(), inner, 0..6).prop_map(|m| AMQPValue::FieldTable(m.into())),
            ]
        })
        .boxed()
}

pub(crate) fn field_table() -> BoxedStrategy<FieldTable> {
    btree_map(key(), value(), 0..8)
        .prop_map(FieldTable::from)
        .boxed()
}

pub(crate) fn encode_table(table: &FieldTable) -> Vec<u8> {
    let (bytes, _) =
        cookie_factory::r#gen(gen_field_table(table), Vec::new()).expect("a table encodes");
    bytes
}

/// All 14 basic properties, each present or absent; headers is a random table.
pub(crate) fn properties() -> BoxedStrategy<BasicProperties> {
    (
        vec(option::of(short()), 10),
        option::of(field_table()),
        option::of(any::<u8>()),
        option::of(any::<u8>()),
        option::of(any::<u64>()),
    )
        .prop_map(|(strings, headers, delivery_mode, priority, timestamp)| {
            let mut s = strings.into_iter();
            let mut next = || s.next().flatten();
            let mut p = BasicProperties::default();
            macro_rules! set {
                ($with:ident, $value:expr) => {
                    if let Some(v) = $value {
                        p = p.$with(v);
                    }
                };
            }
            set!(with_content_type, next());
            set!(with_content_encoding, next());
            set!(with_headers, headers);
            set!(with_delivery_mode, delivery_mode);
            set!(with_priority, priority);
            set!(with_correlation_id, next());
            set!(with_reply_to, next());
            set!(with_expiration, next());
            set!(with_message_id, next());
            set!(with_timestamp, timestamp);
            set!(with_type, next());
            set!(with_user_id, next());
            set!(with_app_id, next());
            set!(with_cluster_id, next());
            p
        })
        .boxed()
}

pub(crate) fn frame_max() -> BoxedStrategy<u32> {
    prop_oneof![Just(4096u32), 4096u32..=20_000, Just(131_072u32)].boxed()
}

/// Decodes everything in `buf`, stopping at the first error.
pub(crate) fn decode_all(
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
) -> Result<Vec<Frame>, CodecError> {
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(buf)? {
        // basic.publish comes as Frame::Publish; compared as the method it is.
        frames.push(frame.into_general());
    }
    Ok(frames)
}

pub(crate) fn encode_method(channel: u16, method: &AMQPClass) -> BytesMut {
    let mut out = BytesMut::new();
    FrameEncoder::new()
        .method(channel, method, &mut out)
        .expect("a method encodes");
    out
}

//! Property tests for warren-codec: field tables, methods, content headers and bodies
//! survive encode -> decode unchanged, decoding is incremental, and no input panics.

use bytes::{BufMut, BytesMut};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::Union;
use tokio_util::codec::Decoder;
use warren_codec::frame::{FRAME_END, FRAME_OVERHEAD};
use warren_codec::protocol::{
    AMQPClass, BasicProperties, access, basic, channel, confirm, connection, exchange, queue, tx,
};
use warren_codec::types::generation::gen_field_table;
use warren_codec::types::parsing::parse_field_table;
use warren_codec::types::{
    AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use warren_codec::{
    CodecError, ContentHeader, Frame, FrameDecoder, FrameEncoder, MAX_NESTING_DEPTH, method,
};

const CASES: u32 = 256;

// ---------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------

/// Keeps whole characters while the string fits a short string (255 octets).
fn cut_to_short(chars: Vec<char>) -> String {
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
fn short_str() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-z0-9._-]{0,12}",
        3 => vec(any::<char>(), 0..40).prop_map(cut_to_short),
        1 => vec(any::<char>(), 60..256).prop_map(cut_to_short),
        1 => "[a-zA-Z]{255}",
    ]
    .boxed()
}

fn short() -> BoxedStrategy<ShortString> {
    short_str().prop_map(ShortString::from).boxed()
}

/// Table keys: short strings, kept short so that tables stay small.
fn key() -> BoxedStrategy<ShortString> {
    prop_oneof![
        4 => "[a-z-]{0,10}",
        1 => vec(any::<char>(), 0..12).prop_map(cut_to_short),
    ]
    .prop_map(ShortString::from)
    .boxed()
}

fn long_string(max: usize) -> BoxedStrategy<LongString> {
    vec(any::<u8>(), 0..max).prop_map(LongString::from).boxed()
}

/// Floats of every class except NaN (NaN != NaN would fail equality, not the codec).
fn float() -> impl Strategy<Value = f32> {
    use proptest::num::f32;
    f32::POSITIVE | f32::NEGATIVE | f32::NORMAL | f32::SUBNORMAL | f32::ZERO | f32::INFINITE
}

fn double() -> impl Strategy<Value = f64> {
    use proptest::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO | f64::INFINITE
}

/// Every non-container wire type RabbitMQ accepts: t b B s u I i l f d D S T x V.
/// (ShortString and LongLongUInt have no wire id of their own and are left out.)
fn leaf_value() -> BoxedStrategy<AMQPValue> {
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
fn value() -> BoxedStrategy<AMQPValue> {
    leaf_value()
        .prop_recursive(3, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
                btree_map(key(), inner, 0..6).prop_map(|m| AMQPValue::FieldTable(m.into())),
            ]
        })
        .boxed()
}

fn field_table() -> BoxedStrategy<FieldTable> {
    btree_map(key(), value(), 0..8)
        .prop_map(FieldTable::from)
        .boxed()
}

fn encode_table(table: &FieldTable) -> Vec<u8> {
    let (bytes, _) =
        cookie_factory::r#gen(gen_field_table(table), Vec::new()).expect("a table encodes");
    bytes
}

/// Every method of every class, with random arguments.
fn any_method() -> BoxedStrategy<AMQPClass> {
    use AMQPClass as C;
    let b = any::<bool>;
    let conn = |m| C::Connection(m);
    let methods: Vec<BoxedStrategy<AMQPClass>> = vec![
        // connection
        (
            any::<u8>(),
            any::<u8>(),
            field_table(),
            long_string(64),
            long_string(64),
        )
            .prop_map(
                move |(version_major, version_minor, server_properties, mechanisms, locales)| {
                    conn(connection::AMQPMethod::Start(connection::Start {
                        version_major,
                        version_minor,
                        server_properties,
                        mechanisms,
                        locales,
                    }))
                },
            )
            .boxed(),
        (field_table(), short(), long_string(64), short())
            .prop_map(move |(client_properties, mechanism, response, locale)| {
                conn(connection::AMQPMethod::StartOk(connection::StartOk {
                    client_properties,
                    mechanism,
                    response,
                    locale,
                }))
            })
            .boxed(),
        long_string(64)
            .prop_map(move |challenge| {
                conn(connection::AMQPMethod::Secure(connection::Secure {
                    challenge,
                }))
            })
            .boxed(),
        long_string(64)
            .prop_map(move |response| {
                conn(connection::AMQPMethod::SecureOk(connection::SecureOk {
                    response,
                }))
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                conn(connection::AMQPMethod::Tune(connection::Tune {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        short()
            .prop_map(move |virtual_host| {
                conn(connection::AMQPMethod::Open(connection::Open {
                    virtual_host,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::OpenOk(connection::OpenOk {}))).boxed(),
        (any::<u16>(), short(), any::<u16>(), any::<u16>())
            .prop_map(move |(reply_code, reply_text, class_id, method_id)| {
                conn(connection::AMQPMethod::Close(connection::Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::CloseOk(
            connection::CloseOk {},
        )))
        .boxed(),
        short()
            .prop_map(move |reason| {
                conn(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason,
                }))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::Unblocked(
            connection::Unblocked {},
        )))
        .boxed(),
        (long_string(64), short())
            .prop_map(move |(new_secret, reason)| {
                conn(connection::AMQPMethod::UpdateSecret(
                    connection::UpdateSecret { new_secret, reason },
                ))
            })
            .boxed(),
        Just(conn(connection::AMQPMethod::UpdateSecretOk(
            connection::UpdateSecretOk {},
        )))
        .boxed(),
        // channel
        Just(C::Channel(channel::AMQPMethod::Open(channel::Open {}))).boxed(),
        Just(C::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))).boxed(),
        b().prop_map(|active| C::Channel(channel::AMQPMethod::Flow(channel::Flow { active })))
            .boxed(),
        b().prop_map(|active| C::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })))
            .boxed(),
        (any::<u16>(), short(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                C::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(C::Channel(channel::AMQPMethod::CloseOk(
            channel::CloseOk {},
        )))
        .boxed(),
        // access (deprecated, still parsed)
        (short(), b(), b(), b(), b(), b())
            .prop_map(|(realm, exclusive, passive, active, write, read)| {
                C::Access(access::AMQPMethod::Request(access::Request {
                    realm,
                    exclusive,
                    passive,
                    active,
                    write,
                    read,
                }))
            })
            .boxed(),
        Just(C::Access(access::AMQPMethod::RequestOk(
            access::RequestOk {},
        )))
        .boxed(),
        // exchange
        (short(), short(), b(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(exchange, kind, passive, durable, auto_delete, internal, nowait, arguments)| {
                    C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                        exchange,
                        kind,
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::DeclareOk(
            exchange::DeclareOk {},
        )))
        .boxed(),
        (short(), b(), b())
            .prop_map(|(exchange, if_unused, nowait)| {
                C::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                    exchange,
                    if_unused,
                    nowait,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::DeleteOk(
            exchange::DeleteOk {},
        )))
        .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(destination, source, routing_key, nowait, arguments)| {
                C::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::BindOk(
            exchange::BindOk {},
        )))
        .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(destination, source, routing_key, nowait, arguments)| {
                C::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                    destination,
                    source,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Exchange(exchange::AMQPMethod::UnbindOk(
            exchange::UnbindOk {},
        )))
        .boxed(),
        // queue
        (short(), b(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(queue, passive, durable, exclusive, auto_delete, nowait, arguments)| {
                    C::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        (short(), any::<u32>(), any::<u32>())
            .prop_map(|(queue, message_count, consumer_count)| {
                C::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue,
                    message_count,
                    consumer_count,
                }))
            })
            .boxed(),
        (short(), short(), short(), b(), field_table())
            .prop_map(|(queue, exchange, routing_key, nowait, arguments)| {
                C::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue,
                    exchange,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}))).boxed(),
        (short(), b())
            .prop_map(|(queue, nowait)| {
                C::Queue(queue::AMQPMethod::Purge(queue::Purge { queue, nowait }))
            })
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| {
                C::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count }))
            })
            .boxed(),
        (short(), b(), b(), b())
            .prop_map(|(queue, if_unused, if_empty, nowait)| {
                C::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue,
                    if_unused,
                    if_empty,
                    nowait,
                }))
            })
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| {
                C::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count,
                }))
            })
            .boxed(),
        (short(), short(), short(), field_table())
            .prop_map(|(queue, exchange, routing_key, arguments)| {
                C::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                    queue,
                    exchange,
                    routing_key,
                    arguments,
                }))
            })
            .boxed(),
        Just(C::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}))).boxed(),
        // basic
        (any::<u16>(), b())
            .prop_map(|(prefetch_count, global)| {
                C::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count,
                    global,
                }))
            })
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}))).boxed(),
        (short(), short(), b(), b(), b(), b(), field_table())
            .prop_map(
                |(queue, consumer_tag, no_local, no_ack, exclusive, nowait, arguments)| {
                    C::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue,
                        consumer_tag,
                        no_local,
                        no_ack,
                        exclusive,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        short()
            .prop_map(|consumer_tag| {
                C::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag,
                }))
            })
            .boxed(),
        (short(), b())
            .prop_map(|(consumer_tag, nowait)| {
                C::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag,
                    nowait,
                }))
            })
            .boxed(),
        short()
            .prop_map(|consumer_tag| {
                C::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag,
                }))
            })
            .boxed(),
        (short(), short(), b(), b())
            .prop_map(|(exchange, routing_key, mandatory, immediate)| {
                C::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange,
                    routing_key,
                    mandatory,
                    immediate,
                }))
            })
            .boxed(),
        (any::<u16>(), short(), short(), short())
            .prop_map(|(reply_code, reply_text, exchange, routing_key)| {
                C::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                }))
            })
            .boxed(),
        (short(), any::<u64>(), b(), short(), short())
            .prop_map(
                |(consumer_tag, delivery_tag, redelivered, exchange, routing_key)| {
                    C::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                        consumer_tag,
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                    }))
                },
            )
            .boxed(),
        (short(), b())
            .prop_map(|(queue, no_ack)| {
                C::Basic(basic::AMQPMethod::Get(basic::Get { queue, no_ack }))
            })
            .boxed(),
        (any::<u64>(), b(), short(), short(), any::<u32>())
            .prop_map(
                |(delivery_tag, redelivered, exchange, routing_key, message_count)| {
                    C::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                        message_count,
                    }))
                },
            )
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {}))).boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, multiple)| {
                C::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag,
                    multiple,
                }))
            })
            .boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, requeue)| {
                C::Basic(basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag,
                    requeue,
                }))
            })
            .boxed(),
        b().prop_map(|requeue| {
            C::Basic(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync {
                requeue,
            }))
        })
        .boxed(),
        b().prop_map(|requeue| C::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue })))
            .boxed(),
        Just(C::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {}))).boxed(),
        (any::<u64>(), b(), b())
            .prop_map(|(delivery_tag, multiple, requeue)| {
                C::Basic(basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag,
                    multiple,
                    requeue,
                }))
            })
            .boxed(),
        // tx
        Just(C::Tx(tx::AMQPMethod::Select(tx::Select {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::Commit(tx::Commit {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {}))).boxed(),
        Just(C::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {}))).boxed(),
        // confirm
        b().prop_map(|nowait| C::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait })))
            .boxed(),
        Just(C::Confirm(confirm::AMQPMethod::SelectOk(
            confirm::SelectOk {},
        )))
        .boxed(),
    ];
    Union::new(methods).boxed()
}

/// All 14 basic properties, each present or absent; headers is a random table.
fn properties() -> BoxedStrategy<BasicProperties> {
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

fn frame_max() -> BoxedStrategy<u32> {
    prop_oneof![Just(4096u32), 4096u32..=20_000, Just(131_072u32)].boxed()
}

/// Decodes everything in `buf`, stopping at the first error.
fn decode_all(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Vec<Frame>, CodecError> {
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(buf)? {
        // basic.publish comes as Frame::Publish; compared as the method it is.
        frames.push(frame.into_general());
    }
    Ok(frames)
}

fn encode_method(channel: u16, method: &AMQPClass) -> BytesMut {
    let mut out = BytesMut::new();
    FrameEncoder::new()
        .method(channel, method, &mut out)
        .expect("a method encodes");
    out
}

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

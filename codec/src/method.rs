//! Method frame payloads: `class-id:u16 method-id:u16 arguments`.
//!
//! Decoding and encoding of the arguments is `amq-protocol`'s generated code, which
//! covers every class of 0-9-1 and RabbitMQ's extensions (confirm, basic.nack,
//! exchange.bind/unbind, connection.blocked/unblocked, update-secret). This module
//! adds what a server needs on top: unknown ids are told apart from bad arguments.
//! basic.publish, once per message, is read by the frame decoder on its own
//! (`publish.rs`); what it refuses comes here for the error.

use amq_protocol::protocol::{AMQPClass, parse_class};
use nom::{Parser, combinator::all_consuming};

use crate::error::CodecError;
use crate::nesting;

/// Whether `class_id.method_id` is a method of AMQP 0-9-1 (with RabbitMQ's extensions).
pub fn is_known(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => return false,
    };
    methods.contains(&method_id)
}

/// The method's name as RabbitMQ writes it, e.g. `queue.declare`.
pub fn name(class_id: u16, method_id: u16) -> &'static str {
    match (class_id, method_id) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start_ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure_ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune_ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open_ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close_ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update_secret",
        (10, 71) => "connection.update_secret_ok",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open_ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow_ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close_ok",
        (30, 10) => "access.request",
        (30, 11) => "access.request_ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare_ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete_ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind_ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind_ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare_ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind_ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge_ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete_ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind_ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos_ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume_ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel_ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get_ok",
        (60, 72) => "basic.get_empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover_async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover_ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select_ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select_ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit_ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback_ok",
        _ => "unknown",
    }
}

/// The class and method ids at the start of a method payload, if it is long enough.
pub fn ids(payload: &[u8]) -> Option<(u16, u16)> {
    match payload {
        [c0, c1, m0, m1, ..] => Some((
            u16::from_be_bytes([*c0, *c1]),
            u16::from_be_bytes([*m0, *m1]),
        )),
        _ => None,
    }
}

/// Decodes a method payload that arrived on `channel`.
pub fn decode(channel: u16, payload: &[u8]) -> Result<AMQPClass, CodecError> {
    let Some((class_id, method_id)) = ids(payload) else {
        return Err(CodecError::MalformedMethod {
            channel,
            class_id: 0,
            method_id: 0,
            arguments: bytes::Bytes::copy_from_slice(payload),
        });
    };
    if !is_known(class_id, method_id) {
        return Err(CodecError::UnknownMethod {
            class_id,
            method_id,
        });
    }
    if !nesting::method_within_limit(class_id, method_id, &payload[4..]) {
        return Err(CodecError::MalformedMethod {
            channel,
            class_id,
            method_id,
            arguments: bytes::Bytes::copy_from_slice(&payload[4..]),
        });
    }
    let method = all_consuming(parse_class)
        .parse(payload)
        .map(|(_, method)| method)
        .map_err(|_| CodecError::MalformedMethod {
            channel,
            class_id,
            method_id,
            arguments: bytes::Bytes::copy_from_slice(&payload[4..]),
        })?;
    // basic.qos: prefetch-size is the first argument (u32).
    if (class_id, method_id) == (60, 10)
        && let [a, b, c, d, ..] = payload[4..]
    {
        let prefetch_size = u32::from_be_bytes([a, b, c, d]);
        if prefetch_size != 0 {
            return Err(CodecError::PrefetchSize {
                channel,
                prefetch_size,
            });
        }
    }
    Ok(method)
}

/// Appends the payload of `method` (ids and arguments) to `out`.
pub fn encode(method: &AMQPClass, out: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    cookie_factory::r#gen(amq_protocol::protocol::gen_class(method), out)
        .map(|(buf, _)| buf)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, channel, queue};

    fn roundtrip(method: AMQPClass) {
        let bytes = encode(&method, Vec::new()).expect("encode");
        assert_eq!(decode(1, &bytes).expect("decode"), method);
    }

    #[test]
    fn known_methods_roundtrip() {
        roundtrip(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )));
        roundtrip(AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 7,
            multiple: true,
            requeue: false,
        })));
        roundtrip(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: "q".into(),
                passive: false,
                durable: true,
                exclusive: false,
                auto_delete: true,
                nowait: false,
                arguments: Default::default(),
            },
        )));
    }

    #[test]
    fn every_known_method_has_a_name() {
        for class_id in 0..100 {
            for method_id in 0..130 {
                assert_eq!(
                    is_known(class_id, method_id),
                    name(class_id, method_id) != "unknown",
                    "{class_id}.{method_id}"
                );
            }
        }
    }

    #[test]
    fn unknown_ids_are_not_implemented() {
        let err = decode(1, &[0, 99, 0, 10]).expect_err("unknown class");
        assert!(matches!(
            err,
            CodecError::UnknownMethod {
                class_id: 99,
                method_id: 10
            }
        ));
        let err = decode(1, &[0, 50, 0, 99]).expect_err("unknown method");
        assert!(matches!(err, CodecError::UnknownMethod { .. }));
    }

    #[test]
    fn truncated_arguments_are_frame_errors() {
        let method = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "some-queue".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        }));
        let bytes = encode(&method, Vec::new()).expect("encode");
        for cut in 0..bytes.len() {
            let err = decode(3, &bytes[..cut]).expect_err("truncated");
            assert!(
                matches!(err, CodecError::MalformedMethod { .. }),
                "cut {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(3, &longer).is_err(), "trailing bytes are refused");
    }
}

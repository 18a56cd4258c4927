//! Protocol errors as a client sees them: for each way of misbehaving on the wire,
//! the exact frame Warren answers with (reply code, RabbitMQ's reply text, class and
//! method ids) or a TCP close without a frame. The expectations are RabbitMQ
//! 3.10.8's, measured; where Warren deliberately differs, the test says so.
//!
//! Every test ends by showing that a second, well-behaved connection still works.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{RawClient, Seen, WAIT, assert_broker_healthy, open_vhost, start, start_with};
use tokio::io::AsyncReadExt;
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use warren_codec::types::{AMQPValue, FieldTable};
use warren_codec::{Frame, FrameEncoder};

// ---------------------------------------------------------------------------
// Building frames

/// A frame with any type, channel and payload.
fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// A method frame, encoded by the codec.
fn method(channel: u16, method: &AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameEncoder::new()
        .method(channel, method, &mut out)
        .expect("encode");
    out.to_vec()
}

/// Property flags 0: no properties.
const NO_PROPERTIES: &[u8] = &[0, 0];

/// A content header frame with a chosen class, announced body size and raw properties.
fn header(channel: u16, class_id: u16, body_size: u64, properties: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&class_id.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(properties);
    frame(2, channel, &payload)
}

fn body(channel: u16, bytes: &[u8]) -> Vec<u8> {
    frame(3, channel, bytes)
}

fn heartbeat(channel: u16) -> Vec<u8> {
    frame(8, channel, &[])
}

fn publish(routing_key: &str, mandatory: bool, immediate: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: routing_key.into(),
        mandatory,
        immediate,
    }))
}

fn qos() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 10,
        global: false,
    }))
}

fn queue_declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

fn channel_close() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

fn channel_close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

fn channel_flow(active: bool) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active }))
}

fn connection_close() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

fn connection_close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

fn confirm_select() -> AMQPClass {
    AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
        nowait: false,
    }))
}

// ---------------------------------------------------------------------------
// Getting a connection into a state

/// Protocol header sent, connection.start received.
async fn starting(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    c.send_raw(&PROTOCOL_HEADER).await;
    expect_start(&mut c).await;
    c
}

async fn expect_start(c: &mut RawClient) -> connection::Start {
    match c.next().await {
        Seen::Frame(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(s)))) => s,
        other => panic!("expected connection.start, got {other:?}"),
    }
}

/// connection.start-ok with any mechanism and response.
async fn send_start_ok(c: &mut RawClient, mechanism: &str, response: &[u8], failure_close: bool) {
    let mut caps = FieldTable::default();
    caps.insert(
        "authentication_failure_close".into(),
        AMQPValue::Boolean(failure_close),
    );
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    c.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: mechanism.into(),
            response: response.to_vec().into(),
            locale: "en_US".into(),
        })),
    )
    .await;
}

/// Logged in, connection.tune received, tune-ok not sent.
async fn tuning(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    assert!(
        c.start_ok(b"\0guest\0guest", false).await.is_some(),
        "connection.tune"
    );
    c
}

/// tune-ok sent (heartbeats off), connection.open not sent.
async fn opening(addr: std::net::SocketAddr) -> RawClient {
    let mut c = tuning(addr).await;
    c.send_method(0, tune_ok(2047, 131_072, 0)).await;
    c
}

/// An open connection with channel 1 open.
async fn with_channel(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::open(addr).await;
    c.open_channel(1).await;
    c
}

// ---------------------------------------------------------------------------
// What the client sees

/// The server closes TCP without sending a frame.
async fn expect_silent_close(c: &mut RawClient, case: &str) {
    assert_eq!(
        c.next().await,
        Seen::Closed,
        "{case}: expected a silent close"
    );
}

/// connection.close with exactly this code, text and method; then close-ok, then
/// the server drops TCP.
async fn expect_close(c: &mut RawClient, code: u16, text: &str, class_id: u16, method_id: u16) {
    let (got_text, got_class, got_method) = c.expect_connection_close(code).await;
    assert_eq!(got_text, text);
    assert_eq!((got_class, got_method), (class_id, method_id), "{text}");
    c.close_ok_and_expect_eof().await;
}

/// The next frame is this method on this channel.
async fn expect_method(c: &mut RawClient, channel: u16, expected: AMQPClass) {
    match c.next_non_heartbeat().await {
        Seen::Frame(Frame::Method(ch, m)) if ch == channel && m == expected => {}
        other => panic!("expected {expected:?} on channel {channel}, got {other:?}"),
    }
}

/// Everything the server sends until it closes TCP.
async fn read_to_eof(c: &mut RawClient) -> Vec<u8> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(WAIT, c.stream.read_to_end(&mut bytes)).await;
    // A reset after the server's last bytes is a close too.
    assert!(read.is_ok(), "the server kept the connection open");
    bytes
}

// ---------------------------------------------------------------------------
// Before connection.open

#[tokio::test]
async fn wrong_protocol_header_gets_the_supported_header_and_a_close() {
    let broker = start().await;
    for bad in [
        &b"AMQP\x00\x00\x09\x02"[..],
        b"HTTP/1.1",
        b"AMQP\x01\x01\x00\x0a",
    ] {
        let mut c = RawClient::connect(broker.addr).await;
        c.send_raw(bad).await;
        assert_eq!(read_to_eof(&mut c).await, PROTOCOL_HEADER, "{bad:?}");
    }
    assert_broker_healthy(broker.addr).await;
}

/// RabbitMQ takes the AMQP 0-9 header and speaks 0-9-1 on it (rabbit_reader's
/// `handshake({1, 1, 0, 9}, ...)`).
#[tokio::test]
async fn amqp_0_9_header_is_served_as_0_9_1() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.addr).await;
    c.send_raw(b"AMQP\x01\x01\x00\x09").await;
    let start = expect_start(&mut c).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    send_start_ok(&mut c, "PLAIN", b"\0guest\0guest", true).await;
    match c.next().await {
        Seen::Frame(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
        other => panic!("expected connection.tune, got {other:?}"),
    }
    c.send_method(0, tune_ok(2047, 131_072, 0)).await;
    c.send_method(0, open_vhost("/")).await;
    expect_method(
        &mut c,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await;
    c.open_channel(1).await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn bad_frames_before_tune_ok_close_silently() {
    let broker = start().await;
    let cases: [(&str, Vec<u8>); 4] = [
        ("a method on channel 1", method(1, &channel_open())),
        ("a frame of type 9", frame(9, 0, b"abc")),
        ("a body frame", body(1, b"hello")),
        ("a heartbeat with a payload", frame(8, 0, b"x")),
    ];
    for (case, bytes) in &cases {
        let mut c = starting(broker.addr).await;
        c.send_raw(bytes).await;
        expect_silent_close(&mut c, &format!("{case} instead of start-ok")).await;

        let mut c = tuning(broker.addr).await;
        c.send_raw(bytes).await;
        expect_silent_close(&mut c, &format!("{case} instead of tune-ok")).await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn wrong_password_without_the_capability_closes_silently() {
    let broker = start().await;
    let mut c = starting(broker.addr).await;
    send_start_ok(&mut c, "PLAIN", b"\0guest\0nope", false).await;
    expect_silent_close(&mut c, "wrong password").await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn wrong_password_with_the_capability_is_403() {
    let broker = start().await;
    let mut c = starting(broker.addr).await;
    send_start_ok(&mut c, "PLAIN", b"\0guest\0nope", true).await;
    expect_close(
        &mut c,
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn malformed_plain_response_and_unknown_mechanism_close_silently() {
    let broker = start().await;
    // Silent even for a client that asks to be told about refused logins: these
    // are not refusals but protocol errors during the handshake.
    for failure_close in [false, true] {
        let mut c = starting(broker.addr).await;
        send_start_ok(&mut c, "PLAIN", b"guestguest", failure_close).await;
        expect_silent_close(&mut c, "PLAIN response without NULs").await;

        let mut c = starting(broker.addr).await;
        send_start_ok(&mut c, "FOO", b"\0guest\0guest", failure_close).await;
        expect_silent_close(&mut c, "unknown mechanism").await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn refused_tune_ok_values_close_silently() {
    let broker = start().await;
    for (channel_max, frame_max) in [
        (2047, 1000),
        (2047, 0),
        (2047, 131_073),
        (0, 131_072),
        (2048, 131_072),
    ] {
        let mut c = tuning(broker.addr).await;
        c.send_method(0, tune_ok(channel_max, frame_max, 0)).await;
        expect_silent_close(
            &mut c,
            &format!("tune-ok channel_max={channel_max} frame_max={frame_max}"),
        )
        .await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn heartbeat_zero_is_accepted() {
    let broker = start().await;
    let mut c = tuning(broker.addr).await;
    c.send_method(0, tune_ok(2047, 131_072, 0)).await;
    c.send_method(0, open_vhost("/")).await;
    expect_method(
        &mut c,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await;
    c.open_channel(1).await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn unknown_vhost_is_530() {
    let broker = start().await;
    let mut c = opening(broker.addr).await;
    c.send_method(0, open_vhost("nosuch")).await;
    expect_close(&mut c, 530, "NOT_ALLOWED - vhost nosuch not found", 10, 40).await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn frames_after_tune_ok_before_open_close_the_connection() {
    let broker = start().await;
    let cases: [(Vec<u8>, u16, &str, u16, u16); 4] = [
        (
            method(1, &channel_open()),
            505,
            "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>",
            0,
            0,
        ),
        (
            heartbeat(1),
            505,
            "UNEXPECTED_FRAME - type 8, all octets = <<>>",
            0,
            0,
        ),
        (
            method(0, &channel_open()),
            504,
            "CHANNEL_ERROR - unexpected method in connection state opening",
            20,
            10,
        ),
        (
            body(1, b"hello"),
            505,
            "UNEXPECTED_FRAME - type 3, all octets = <<\"hello\">>",
            0,
            0,
        ),
    ];
    for (bytes, code, text, class_id, method_id) in &cases {
        let mut c = opening(broker.addr).await;
        c.send_raw(bytes).await;
        expect_close(&mut c, *code, text, *class_id, *method_id).await;
    }
    assert_broker_healthy(broker.addr).await;
}

/// Before connection.open RabbitMQ's reader does not analyse frames on channels
/// other than 0: anything there is UNEXPECTED_FRAME with its raw octets. On channel
/// 0 an unrecognised frame is a FRAME_ERROR, as on a running connection.
#[tokio::test]
async fn unrecognised_frames_before_open_follow_rabbitmqs_reader() {
    let broker = start().await;
    let cases: [(Vec<u8>, u16, &str); 4] = [
        (
            frame(9, 1, b"abc"),
            505,
            "UNEXPECTED_FRAME - type 9, all octets = <<\"abc\">>",
        ),
        (
            frame(1, 1, &[0, 60, 0, 10]),
            505,
            "UNEXPECTED_FRAME - type 1, all octets = <<0,60,0,10>>",
        ),
        (
            frame(9, 0, b"abc"),
            501,
            "FRAME_ERROR - type 9, all octets = <<\"abc\">>: unknown_frame",
        ),
        (
            frame(8, 0, b"abc"),
            501,
            "FRAME_ERROR - type 8, all octets = <<\"abc\">>: unknown_frame",
        ),
    ];
    for (bytes, code, text) in &cases {
        let mut c = opening(broker.addr).await;
        c.send_raw(bytes).await;
        expect_close(&mut c, *code, text, 0, 0).await;
    }
    assert_broker_healthy(broker.addr).await;
}

// ---------------------------------------------------------------------------
// Framing errors on an open connection

#[tokio::test]
async fn unknown_frame_type_is_501() {
    let broker = start().await;
    let mut c = RawClient::open(broker.addr).await;
    c.send_raw(&frame(9, 0, b"abc")).await;
    expect_close(
        &mut c,
        501,
        "FRAME_ERROR - type 9, all octets = <<\"abc\">>: unknown_frame",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

/// RabbitMQ recognises a method frame by its 4 octets of ids, a content header by
/// its 12 fixed octets and a heartbeat by its empty payload; a frame that falls
/// short is an unknown frame whatever its type octet.
#[tokio::test]
async fn frames_too_short_for_their_type_are_unknown_frames() {
    let broker = start().await;
    let cases: [(Vec<u8>, &str); 4] = [
        (
            frame(8, 0, b"abc"),
            "FRAME_ERROR - type 8, all octets = <<\"abc\">>: unknown_frame",
        ),
        (
            frame(8, 1, &[1, 2]),
            "FRAME_ERROR - type 8, all octets = <<1,2>>: unknown_frame",
        ),
        (
            frame(1, 1, &[0, 60]),
            "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame",
        ),
        (
            frame(2, 1, &[0, 60, 0, 0]),
            "FRAME_ERROR - type 2, all octets = <<0,60,0,0>>: unknown_frame",
        ),
    ];
    for (bytes, text) in &cases {
        let mut c = with_channel(broker.addr).await;
        c.send_raw(bytes).await;
        expect_close(&mut c, 501, text, 0, 0).await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn bad_frame_end_is_501() {
    let broker = start().await;
    let mut c = RawClient::open(broker.addr).await;
    c.send_raw(&[8, 0, 0, 0, 0, 0, 0, 0x00]).await;
    expect_close(
        &mut c,
        501,
        "FRAME_ERROR - type 8, all octets = <<>>: {invalid_frame_end_marker,0}",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn frame_max_is_enforced_with_rabbitmqs_eight_octets_of_fudge() {
    let broker = start().await;
    let mut c = RawClient::open_tuned(broker.addr, 4096, 2047).await;
    c.open_channel(1).await;
    c.send_method(1, confirm_select()).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
    )
    .await;
    // A 4096-octet payload on a 4096 frame_max connection is accepted: the message
    // goes through and is confirmed.
    c.send_raw(&method(1, &publish("q", false, false))).await;
    c.send_raw(&header(1, 60, 4096, NO_PROPERTIES)).await;
    c.send_raw(&body(1, &[7; 4096])).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: false,
        })),
    )
    .await;
    // One octet more is a frame error, found from the frame header alone.
    c.send_raw(&[3, 0, 1, 0, 0, 0x10, 0x01]).await;
    expect_close(
        &mut c,
        501,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn undecodable_arguments_are_501() {
    let broker = start().await;
    // basic.qos without its arguments
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&frame(1, 1, &[0, 60, 0, 10])).await;
    expect_close(&mut c, 501, "FRAME_ERROR - cannot decode <<>>", 60, 10).await;
    // basic.qos with two octets too many
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&frame(1, 1, &[0, 60, 0, 10, 0, 0, 0, 0, 0, 10, 0, 1, 2]))
        .await;
    expect_close(
        &mut c,
        501,
        "FRAME_ERROR - cannot decode <<0,0,0,0,0,10,0,1,2>>",
        60,
        10,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

/// RabbitMQ drops TCP without a word on an unknown class or method id (its reader
/// crashes); Warren answers 540 and closes, which the issue allows.
#[tokio::test]
async fn unknown_methods_are_540() {
    let broker = start().await;
    for (channel, class_id, method_id) in [(1, 99, 10), (0, 99, 10), (1, 50, 99)] {
        let mut c = with_channel(broker.addr).await;
        let [c0, c1] = u16::to_be_bytes(class_id);
        let [m0, m1] = u16::to_be_bytes(method_id);
        c.send_raw(&frame(1, channel, &[c0, c1, m0, m1])).await;
        expect_close(
            &mut c,
            540,
            &format!("NOT_IMPLEMENTED - unknown method: class {class_id}, method {method_id}"),
            class_id,
            method_id,
        )
        .await;
    }
    assert_broker_healthy(broker.addr).await;
}

// ---------------------------------------------------------------------------
// Channels and content assembly

#[tokio::test]
async fn methods_on_unopened_channels_are_504() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(2, queue_declare("q")).await;
    expect_close(
        &mut c,
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        50,
        10,
    )
    .await;

    let mut c = with_channel(broker.addr).await;
    c.send_method(2, channel_close()).await;
    expect_close(
        &mut c,
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        20,
        40,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn content_without_a_publish_is_505() {
    let broker = start().await;
    for bytes in [
        header(1, 60, 5, NO_PROPERTIES),
        header(2, 60, 5, NO_PROPERTIES),
        body(1, b"hello"),
        body(2, b"hello"),
    ] {
        let mut c = with_channel(broker.addr).await;
        c.send_raw(&bytes).await;
        expect_close(
            &mut c,
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
            0,
            0,
        )
        .await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn publish_must_be_followed_by_its_content_header() {
    let broker = start().await;
    for next in [body(1, b"hello"), method(1, &qos())] {
        let mut c = with_channel(broker.addr).await;
        c.send_raw(&method(1, &publish("q", false, false))).await;
        c.send_raw(&next).await;
        expect_close(
            &mut c,
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
            60,
            40,
        )
        .await;
    }
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&method(1, &publish("q", false, false))).await;
    c.send_raw(&header(1, 50, 5, NO_PROPERTIES)).await;
    expect_close(
        &mut c,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
        60,
        40,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

/// Header size 10, then a method; and header size 10, then a 20-octet body.
/// RabbitMQ takes the over-long body and fails at the next frame with this same
/// 505; Warren fails at once.
#[tokio::test]
async fn content_header_must_be_followed_by_its_body() {
    let broker = start().await;
    for next in [method(1, &qos()), body(1, &[1; 20])] {
        let mut c = with_channel(broker.addr).await;
        c.send_raw(&method(1, &publish("q", false, false))).await;
        c.send_raw(&header(1, 60, 10, NO_PROPERTIES)).await;
        c.send_raw(&next).await;
        expect_close(
            &mut c,
            505,
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
            60,
            40,
        )
        .await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_505() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&heartbeat(1)).await;
    expect_close(
        &mut c,
        505,
        "UNEXPECTED_FRAME - type 8, all octets = <<>>",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn channel_zero_takes_only_connection_methods() {
    let broker = start().await;
    let running = "CHANNEL_ERROR - unexpected method in connection state running";
    let cases: [(Vec<u8>, u16, &str, u16, u16); 6] = [
        (method(0, &queue_declare("q")), 504, running, 50, 10),
        (method(0, &qos()), 504, running, 60, 10),
        (
            header(0, 60, 5, NO_PROPERTIES),
            505,
            "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,5,0,0>>",
            0,
            0,
        ),
        (
            body(0, b"hello"),
            505,
            "UNEXPECTED_FRAME - type 3, all octets = <<\"hello\">>",
            0,
            0,
        ),
        (method(0, &open_vhost("/")), 504, running, 10, 40),
        (method(0, &connection_close_ok()), 504, running, 10, 51),
    ];
    for (bytes, code, text, class_id, method_id) in &cases {
        let mut c = RawClient::open(broker.addr).await;
        c.send_raw(bytes).await;
        expect_close(&mut c, *code, text, *class_id, *method_id).await;
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn second_channel_open_and_stray_channel_close_ok() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(1, channel_open()).await;
    expect_close(
        &mut c,
        504,
        "CHANNEL_ERROR - second 'channel.open' seen",
        20,
        10,
    )
    .await;

    let mut c = with_channel(broker.addr).await;
    c.send_method(1, channel_close_ok()).await;
    expect_close(
        &mut c,
        503,
        "COMMAND_INVALID - unimplemented method",
        20,
        41,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn channel_flow_off_and_immediate_publish_are_540() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(1, channel_flow(true)).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: true,
        })),
    )
    .await;
    c.send_method(1, channel_flow(false)).await;
    expect_close(&mut c, 540, "NOT_IMPLEMENTED - active=false", 20, 20).await;

    // The whole message is sent: RabbitMQ looks at `immediate` once the content
    // is complete.
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&method(1, &publish("q", false, true))).await;
    c.send_raw(&header(1, 60, 5, NO_PROPERTIES)).await;
    c.send_raw(&body(1, b"hello")).await;
    expect_close(&mut c, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40).await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn oversized_message_closes_only_its_channel() {
    let broker = start_with(|c| c.max_message_size = 100).await;
    let mut c = with_channel(broker.addr).await;
    c.open_channel(2).await;
    c.send_raw(&method(1, &publish("q", false, false))).await;
    c.send_raw(&header(1, 60, 200, NO_PROPERTIES)).await;
    c.send_raw(&body(1, &[1; 100])).await;
    c.send_raw(&body(1, &[2; 100])).await;
    let (text, class_id, method_id) = c.expect_channel_close(1, 406).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - message size 200 is larger than configured max size 100"
    );
    assert_eq!((class_id, method_id), (60, 40));

    // While channel 1 is closing, its methods, headers and bodies are dropped.
    c.send_method(1, qos()).await;
    c.send_method(1, channel_flow(true)).await;
    c.send_raw(&header(1, 60, 5, NO_PROPERTIES)).await;
    c.send_raw(&body(1, b"hello")).await;
    c.send_method(1, publish("q", false, false)).await;
    // Other channels keep working meanwhile.
    c.send_method(2, channel_flow(true)).await;
    expect_method(
        &mut c,
        2,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: true,
        })),
    )
    .await;
    // A channel.close from the client crossing the server's gets close-ok, and it
    // is the next frame: nothing was sent for the dropped frames.
    c.send_method(1, channel_close()).await;
    expect_method(&mut c, 1, channel_close_ok()).await;
    // After the client's close-ok the channel id is free again.
    c.send_method(1, channel_close_ok()).await;
    c.open_channel(1).await;
    c.send_method(1, channel_flow(true)).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: true,
        })),
    )
    .await;
    c.send_method(2, channel_flow(true)).await;
    expect_method(
        &mut c,
        2,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: true,
        })),
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

// ---------------------------------------------------------------------------
// Closing

#[tokio::test]
async fn client_close_gets_close_ok_and_nothing_else() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(0, connection_close()).await;
    expect_method(&mut c, 0, connection_close_ok()).await;
    // The client has not hung up yet: a repeated close gets another close-ok;
    // anything else is ignored.
    c.send_method(2, channel_open()).await;
    c.send_method(1, qos()).await;
    c.send_method(0, connection_close()).await;
    expect_method(&mut c, 0, connection_close_ok()).await;
    assert_eq!(
        c.next_within(Duration::from_millis(300)).await,
        Seen::Nothing,
        "nothing more after close-ok"
    );
    drop(c);
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn after_a_server_close_only_close_ok_counts() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(0, queue_declare("q")).await;
    let (text, _, _) = c.expect_connection_close(504).await;
    assert_eq!(
        text,
        "CHANNEL_ERROR - unexpected method in connection state running"
    );
    c.send_method(2, channel_open()).await;
    c.send_method(1, qos()).await;
    c.send_raw(&heartbeat(0)).await;
    c.send_raw(&body(1, b"hello")).await;
    c.send_method(0, open_vhost("/")).await;
    c.send_method(0, connection_close_ok()).await;
    assert_eq!(
        c.next().await,
        Seen::Closed,
        "no answer to ignored frames, TCP closed after close-ok"
    );
    assert_broker_healthy(broker.addr).await;
}

// ---------------------------------------------------------------------------
// Unroutable mandatory messages

/// Properties in wire form, written by hand so that nothing re-encodes them:
/// content-type, a headers table whose keys are not sorted and whose integers use
/// several widths, and delivery-mode.
fn handmade_properties() -> Vec<u8> {
    let mut table = Vec::new();
    table.extend_from_slice(&[1, b'z', b'S', 0, 0, 0, 1, b'x']);
    table.extend_from_slice(&[1, b'a', b'b', 0xFD]);
    table.extend_from_slice(&[1, b'm', b'I', 0, 0, 0, 7]);
    table.extend_from_slice(&[1, b'k', b'l', 0, 0, 0, 0, 0, 0, 0, 42]);
    let mut props = vec![0xB0, 0x00];
    props.push(10);
    props.extend_from_slice(b"text/plain");
    props.extend_from_slice(&(table.len() as u32).to_be_bytes());
    props.extend_from_slice(&table);
    props.push(2);
    props
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_byte_identical_then_confirmed() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(1, confirm_select()).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
    )
    .await;
    let props = handmade_properties();
    c.send_raw(&method(1, &publish("nowhere", true, false)))
        .await;
    c.send_raw(&header(1, 60, 11, &props)).await;
    c.send_raw(&body(1, b"hello")).await;
    c.send_raw(&body(1, b" world")).await;
    expect_method(
        &mut c,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "".into(),
            routing_key: "nowhere".into(),
        })),
    )
    .await;
    match c.next_non_heartbeat().await {
        Seen::Frame(Frame::Header(1, header, _)) => {
            assert_eq!(header.class_id, 60);
            assert_eq!(header.body_size, 11);
            assert_eq!(&header.raw_properties[..], &props[..], "properties as sent");
        }
        other => panic!("expected the content header, got {other:?}"),
    }
    let mut returned = Vec::new();
    while returned.len() < 11 {
        match c.next_non_heartbeat().await {
            Seen::Frame(Frame::Body(1, bytes)) => returned.extend_from_slice(&bytes),
            other => panic!("expected the body, got {other:?}"),
        }
    }
    assert_eq!(returned, b"hello world");
    expect_method(
        &mut c,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: false,
        })),
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

// ---------------------------------------------------------------------------
// Deviations that need changes outside this file's reach (see each reason)

/// RabbitMQ's `handle_method0(#'connection.close'{}, State) when ?IS_STOPPING`:
/// a connection.close that crosses the server's close gets close-ok, and the
/// server still waits for the client's close-ok.
#[tokio::test]
async fn close_crossing_the_servers_close_gets_close_ok() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(0, queue_declare("q")).await;
    c.expect_connection_close(504).await;
    c.send_method(0, connection_close()).await;
    expect_method(&mut c, 0, connection_close_ok()).await;
    c.send_method(0, connection_close_ok()).await;
    assert_eq!(c.next().await, Seen::Closed);
    assert_broker_healthy(broker.addr).await;
}

/// Sends connection.close-ok after the broker's 501 and expects TCP to close because
/// of it: the broker is configured with a silent-close delay far longer than the wait,
/// so a close can only come from the close-ok.
async fn close_ok_ends_the_connection_after(broker: &common::TestBroker, bytes: &[u8]) {
    let mut c = with_channel(broker.addr).await;
    c.send_raw(bytes).await;
    c.expect_connection_close(501).await;
    c.send_method(0, connection_close_ok()).await;
    assert_eq!(
        c.next().await,
        Seen::Closed,
        "close-ok after {bytes:?} ends the connection"
    );
}

/// An undecodable method does not break the framing: RabbitMQ sends
/// connection.close, then waits for close-ok, which ends the connection at once.
#[tokio::test]
async fn close_ok_after_an_undecodable_method_ends_the_connection() {
    let broker = start_with(|c| c.silent_close_delay_ms = 60_000).await;
    close_ok_ends_the_connection_after(&broker, &frame(1, 1, &[0, 60, 0, 10])).await;
    assert_broker_healthy(broker.addr).await;
}

/// An unknown frame (unknown type, or a payload that does not fit its type) is a
/// non-fatal frame_error in RabbitMQ: the frame was delimited, so the reader stays
/// in sync and waits for close-ok. Only a bad frame end and an oversized frame are
/// fatal_frame_error (close, silent-close delay, drop).
#[tokio::test]
async fn close_ok_after_an_unknown_frame_ends_the_connection() {
    let broker = start_with(|c| c.silent_close_delay_ms = 60_000).await;
    for bytes in [
        frame(9, 0, b"abc"),
        frame(8, 0, b"abc"),
        frame(1, 1, &[0, 60]),
    ] {
        close_ok_ends_the_connection_after(&broker, &bytes).await;
    }
    assert_broker_healthy(broker.addr).await;
}

/// rabbit_reader:create_channel raises not_allowed with method `none`: the
/// connection.close names no method (0/0).
#[tokio::test]
async fn channel_max_exceeded_is_530_without_a_method() {
    let broker = start().await;
    let mut c = RawClient::open_tuned(broker.addr, 131_072, 2).await;
    c.open_channel(1).await;
    c.open_channel(2).await;
    c.send_method(3, channel_open()).await;
    expect_close(
        &mut c,
        530,
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)",
        0,
        0,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

/// rabbit_channel:check_msg_size says "max size" (not "configured max size") when
/// the limit is the default 128 MiB. Warren checks the announced size at the
/// header, so no body needs to be sent.
#[tokio::test]
async fn oversized_message_at_the_default_limit_says_max_size() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&method(1, &publish("q", false, false))).await;
    c.send_raw(&header(1, 60, 134_217_729, NO_PROPERTIES)).await;
    let (text, class_id, method_id) = c.expect_channel_close(1, 406).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - message size 134217729 is larger than max size 134217728"
    );
    assert_eq!((class_id, method_id), (60, 40));
    assert_broker_healthy(broker.addr).await;
}

/// rabbit_command_assembler only takes a content header whose weight is 0; any
/// other is "not a content header".
#[tokio::test]
async fn content_header_with_a_weight_is_505() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&method(1, &publish("q", false, false))).await;
    let mut weighted = header(1, 60, 5, NO_PROPERTIES);
    weighted[10] = 1;
    c.send_raw(&weighted).await;
    expect_close(
        &mut c,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
        60,
        40,
    )
    .await;
    assert_broker_healthy(broker.addr).await;
}

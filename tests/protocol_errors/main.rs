//! Protocol errors as a client sees them: for each way of misbehaving on the wire,
//! the exact frame Warren answers with (reply code, RabbitMQ's reply text, class and
//! method ids) or a TCP close without a frame. The expectations are RabbitMQ
//! 3.10.8's, measured; where Warren deliberately differs, the test says so.
//!
//! Every test ends by showing that a second, well-behaved connection still works.

#[path = "../common/mod.rs"]
mod common;

mod before_open;
mod channels;
mod closing;
mod deviations;
mod framing;
mod returns;
mod whole;

use common::WAIT;
use common::raw::{RawClient, Seen, frame, tune_ok};
use tokio::io::AsyncReadExt;
use warren_codec::Frame;
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, basic, channel, confirm, connection};

// ---------------------------------------------------------------------------
// Building frames

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

/// A body frame.
fn body(channel: u16, bytes: &[u8]) -> Vec<u8> {
    frame(3, channel, bytes)
}

/// basic.qos for 10 messages per consumer.
fn qos() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 10,
        global: false,
    }))
}

/// channel.close 200 "bye".
fn channel_close() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// channel.flow.
fn channel_flow(active: bool) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active }))
}

/// channel.flow-ok.
fn flow_ok(active: bool) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active }))
}

/// connection.open-ok.
fn open_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {}))
}

/// confirm.select-ok.
fn select_ok() -> AMQPClass {
    AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}))
}

/// basic.ack of one delivery tag.
fn ack(delivery_tag: u64) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag,
        multiple: false,
    }))
}

// ---------------------------------------------------------------------------
// Getting a connection into a state

/// Protocol header sent, connection.start received.
async fn starting(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    c.send_raw(&PROTOCOL_HEADER).await;
    c.expect_start().await;
    c
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

//! Before connection.open: the protocol header, login, tuning and the vhost.

use warren_codec::Frame;
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, connection};

use crate::common::raw::{
    RawClient, Seen, assert_broker_healthy, channel_open, frame, heartbeat, method, open_vhost,
    tune_ok,
};
use crate::common::start;
use crate::{
    body, expect_close, expect_method, expect_silent_close, open_ok, opening, read_to_eof,
    starting, tuning,
};

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
    let start = c.expect_start().await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    c.send_start_ok("PLAIN", b"\0guest\0guest", true).await;
    match c.next().await {
        Seen::Frame(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
        other => panic!("expected connection.tune, got {other:?}"),
    }
    c.send_method(0, tune_ok(2047, 131_072, 0)).await;
    c.send_method(0, open_vhost("/")).await;
    expect_method(&mut c, 0, open_ok()).await;
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
    c.send_start_ok("PLAIN", b"\0guest\0nope", false).await;
    expect_silent_close(&mut c, "wrong password").await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn wrong_password_with_the_capability_is_403() {
    let broker = start().await;
    let mut c = starting(broker.addr).await;
    c.send_start_ok("PLAIN", b"\0guest\0nope", true).await;
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
        c.send_start_ok("PLAIN", b"guestguest", failure_close).await;
        expect_silent_close(&mut c, "PLAIN response without NULs").await;

        let mut c = starting(broker.addr).await;
        c.send_start_ok("FOO", b"\0guest\0guest", failure_close)
            .await;
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
    expect_method(&mut c, 0, open_ok()).await;
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

//! Deviations that need changes outside this file's reach (see each reason).

use crate::common::raw::{
    RawClient, Seen, assert_broker_healthy, channel_open, connection_close, connection_close_ok,
    frame, method, publish_method, queue_declare,
};
use crate::common::{TestBroker, start, start_with};
use crate::{NO_PROPERTIES, expect_close, expect_method, header, with_channel};

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
async fn close_ok_ends_the_connection_after(broker: &TestBroker, bytes: &[u8]) {
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
    c.send_raw(&method(1, &publish_method("", "q", false, false)))
        .await;
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
    c.send_raw(&method(1, &publish_method("", "q", false, false)))
        .await;
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

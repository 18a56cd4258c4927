//! Channels and content assembly.

use crate::common::raw::{
    RawClient, assert_broker_healthy, channel_close_ok, channel_open, connection_close_ok,
    heartbeat, method, open_vhost, publish_method, queue_declare,
};
use crate::common::{start, start_with};
use crate::{
    NO_PROPERTIES, body, channel_close, channel_flow, expect_close, expect_method, flow_ok, header,
    qos, with_channel,
};

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
        c.send_raw(&method(1, &publish_method("", "q", false, false)))
            .await;
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
    c.send_raw(&method(1, &publish_method("", "q", false, false)))
        .await;
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
        c.send_raw(&method(1, &publish_method("", "q", false, false)))
            .await;
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
    expect_method(&mut c, 1, flow_ok(true)).await;
    c.send_method(1, channel_flow(false)).await;
    expect_close(&mut c, 540, "NOT_IMPLEMENTED - active=false", 20, 20).await;

    // The whole message is sent: RabbitMQ looks at `immediate` once the content
    // is complete.
    let mut c = with_channel(broker.addr).await;
    c.send_raw(&method(1, &publish_method("", "q", false, true)))
        .await;
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
    c.send_raw(&method(1, &publish_method("", "q", false, false)))
        .await;
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
    c.send_method(1, publish_method("", "q", false, false))
        .await;
    // Other channels keep working meanwhile.
    c.send_method(2, channel_flow(true)).await;
    expect_method(&mut c, 2, flow_ok(true)).await;
    // A channel.close from the client crossing the server's gets close-ok, and it
    // is the next frame: nothing was sent for the dropped frames.
    c.send_method(1, channel_close()).await;
    expect_method(&mut c, 1, channel_close_ok()).await;
    // After the client's close-ok the channel id is free again.
    c.send_method(1, channel_close_ok()).await;
    c.open_channel(1).await;
    c.send_method(1, channel_flow(true)).await;
    expect_method(&mut c, 1, flow_ok(true)).await;
    c.send_method(2, channel_flow(true)).await;
    expect_method(&mut c, 2, flow_ok(true)).await;
    assert_broker_healthy(broker.addr).await;
}

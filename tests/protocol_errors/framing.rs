//! Framing errors on an open connection.

use crate::common::raw::{
    RawClient, assert_broker_healthy, confirm_select, frame, method, publish_method,
};
use crate::common::start;
use crate::{
    NO_PROPERTIES, ack, body, expect_close, expect_method, header, select_ok, with_channel,
};

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
    expect_method(&mut c, 1, select_ok()).await;
    // A 4096-octet payload on a 4096 frame_max connection is accepted: the message
    // goes through and is confirmed.
    c.send_raw(&method(1, &publish_method("", "q", false, false)))
        .await;
    c.send_raw(&header(1, 60, 4096, NO_PROPERTIES)).await;
    c.send_raw(&body(1, &[7; 4096])).await;
    expect_method(&mut c, 1, ack(1)).await;
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

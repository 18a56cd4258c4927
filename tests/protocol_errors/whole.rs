//! A message whose publish, header and body arrive in one read is taken whole
//! (`FrameDecoder::decode_whole`, `Connection::on_message`); one that cannot be
//! taken so goes frame by frame. Either way a client gets the same answer: each
//! misbehaving message is sent in one write and again one frame at a time (with
//! a pause, so that the broker reads the frames apart), and both answers must be
//! RabbitMQ's.

use std::time::Duration;

use crate::common::raw::{RawClient, Seen, assert_broker_healthy, frame, method, publish_method};
use crate::common::{start, start_with};
use crate::{NO_PROPERTIES, body, header, with_channel};

/// How the three frames are written.
#[derive(Clone, Copy, Debug)]
enum Writes {
    One,
    Apart,
}

async fn send(c: &mut RawClient, frames: &[Vec<u8>], writes: Writes) {
    match writes {
        Writes::One => c.send_raw(&frames.concat()).await,
        Writes::Apart => {
            for f in frames {
                c.send_raw(f).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
}

/// The broker's first answer to `frames` on a fresh connection with channel 1 open.
async fn answer(addr: std::net::SocketAddr, frames: &[Vec<u8>], writes: Writes) -> String {
    let mut c = with_channel(addr).await;
    send(&mut c, frames, writes).await;
    match c.next_non_heartbeat().await {
        Seen::Frame(f) => format!("{f:?}"),
        other => format!("{other:?}"),
    }
}

/// A case: its name, its frames, and the reply code and text RabbitMQ answers
/// (None: only that both ways agree).
type Case = (
    &'static str,
    Vec<Vec<u8>>,
    Option<(&'static str, &'static str)>,
);

fn publish(channel: u16, immediate: bool) -> Vec<u8> {
    method(channel, &publish_method("", "q", false, immediate))
}

#[tokio::test]
async fn whole_messages_get_the_answers_their_frames_get() {
    let broker = start().await;
    let mut weighted = header(1, 60, 5, NO_PROPERTIES);
    weighted[10] = 1;
    // basic.publish whose routing key is not UTF-8 (0xff 0xfe).
    let bad_key = frame(1, 1, &[0, 60, 0, 40, 0, 0, 0, 2, 0xff, 0xfe, 0]);
    let cases: Vec<Case> = vec![
        (
            "immediate",
            vec![
                publish(1, true),
                header(1, 60, 5, NO_PROPERTIES),
                body(1, b"hello"),
            ],
            Some(("540", "NOT_IMPLEMENTED - immediate=true")),
        ),
        (
            "a header of another class",
            vec![
                publish(1, false),
                header(1, 50, 5, NO_PROPERTIES),
                body(1, b"hello"),
            ],
            Some((
                "505",
                "expected content header for class 60, got one for class 50 instead",
            )),
        ),
        (
            "a header with a weight",
            vec![publish(1, false), weighted, body(1, b"hello")],
            Some(("505", "got non content header frame instead")),
        ),
        (
            "a channel never opened",
            vec![
                publish(2, false),
                header(2, 60, 5, NO_PROPERTIES),
                body(2, b"hello"),
            ],
            Some(("504", "CHANNEL_ERROR - expected 'channel.open'")),
        ),
        (
            "a routing key that is not UTF-8",
            vec![bad_key, header(1, 60, 5, NO_PROPERTIES), body(1, b"hello")],
            None,
        ),
    ];
    for (case, frames, expected) in &cases {
        let one = answer(broker.addr, frames, Writes::One).await;
        let apart = answer(broker.addr, frames, Writes::Apart).await;
        assert_eq!(one, apart, "{case}: one write against frame by frame");
        if let Some((code, text)) = expected {
            assert!(
                one.contains(&format!("reply_code: {code}")) && one.contains(text),
                "{case}: {one}"
            );
        }
    }
    assert_broker_healthy(broker.addr).await;
}

/// A body over max_message_size in one frame closes only its channel, whole or
/// not; the connection's other channel still publishes.
#[tokio::test]
async fn an_oversized_whole_message_closes_its_channel() {
    let broker = start_with(|c| c.max_message_size = 100).await;
    for writes in [Writes::One, Writes::Apart] {
        let mut c = with_channel(broker.addr).await;
        c.open_channel(2).await;
        let frames = [
            publish(1, false),
            header(1, 60, 200, NO_PROPERTIES),
            body(1, &[1; 200]),
        ];
        send(&mut c, &frames, writes).await;
        let (text, class_id, method_id) = c.expect_channel_close(1, 406).await;
        assert_eq!(
            text, "PRECONDITION_FAILED - message size 200 is larger than configured max size 100",
            "{writes:?}"
        );
        assert_eq!((class_id, method_id), (60, 40));
        let fits = [
            publish(2, false),
            header(2, 60, 5, NO_PROPERTIES),
            body(2, b"hello"),
        ];
        send(&mut c, &fits, writes).await;
        c.send_raw(&method(2, &crate::qos())).await;
        match c.next_non_heartbeat().await {
            Seen::Frame(f) => assert!(format!("{f:?}").contains("QosOk"), "{writes:?}: {f:?}"),
            other => panic!("{writes:?}: expected qos-ok on channel 2, got {other:?}"),
        }
    }
    assert_broker_healthy(broker.addr).await;
}

//! Unroutable mandatory messages.

use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, basic};

use crate::common::raw::{Seen, assert_broker_healthy, confirm_select, method, publish_method};
use crate::common::start;
use crate::{ack, body, expect_method, header, select_ok, with_channel};

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
    expect_method(&mut c, 1, select_ok()).await;
    let props = handmade_properties();
    c.send_raw(&method(1, &publish_method("", "nowhere", true, false)))
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
    expect_method(&mut c, 1, ack(1)).await;
    assert_broker_healthy(broker.addr).await;
}

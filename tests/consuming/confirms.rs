//! Publisher confirms: their sequence, returns before acks, and that confirm
//! and tx modes exclude each other.

use std::collections::BTreeSet;

use bytes::BytesMut;
use lapin::Confirmation;
use lapin::options::*;
use lapin::types::ShortString;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, basic, confirm, queue};

use crate::common::lapin::{Client, amqp_error, try_publish};
use crate::common::raw::{RawClient, Seen, confirm_select, publish_frames, queue_declare};
use crate::common::start;
use crate::props;

/// Reads until every tag in 1..=n is confirmed on `channel`; checks each is acked
/// exactly once, and that each mandatory unroutable publish (by tag) was returned
/// before its ack.
async fn read_confirms(raw: &mut RawClient, channel: u16, n: u64, returned: &[u64]) {
    let mut acked = BTreeSet::new();
    let mut returns_seen = 0usize;
    while acked.len() < n as usize {
        match raw.next().await {
            Seen::Frame(Frame::Method(c, AMQPClass::Basic(basic::AMQPMethod::Ack(a))))
                if c == channel =>
            {
                let tags: Vec<u64> = if a.multiple {
                    (1..=a.delivery_tag)
                        .filter(|t| !acked.contains(t))
                        .collect()
                } else {
                    vec![a.delivery_tag]
                };
                assert!(!tags.is_empty(), "an ack that confirms nothing: {a:?}");
                for tag in tags {
                    assert!((1..=n).contains(&tag), "tag {tag} out of range");
                    assert!(acked.insert(tag), "tag {tag} acked twice");
                    if returned.contains(&tag) {
                        assert!(
                            returns_seen > returned.iter().position(|t| *t == tag).unwrap_or(0),
                            "tag {tag} acked before its basic.return"
                        );
                    }
                }
            }
            Seen::Frame(Frame::Method(c, AMQPClass::Basic(basic::AMQPMethod::Return(r))))
                if c == channel =>
            {
                assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
                returns_seen += 1;
            }
            Seen::Frame(Frame::Header(c, ..) | Frame::Body(c, _)) if c == channel => {}
            other => panic!("expected confirms on {channel}, got {other:?}"),
        }
    }
    assert_eq!(returns_seen, returned.len());
}

#[tokio::test]
async fn confirms_count_from_one_per_channel_and_ack_every_publish_once() {
    let broker = start().await;
    let mut raw = RawClient::open(broker.addr).await;
    for channel in [1, 2] {
        raw.open_channel(channel).await;
        raw.send_method(channel, confirm_select()).await;
        assert!(matches!(
            raw.next().await,
            Seen::Frame(Frame::Method(
                _,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
            ))
        ));
    }
    raw.send_method(1, queue_declare("q")).await;
    assert!(matches!(
        raw.next().await,
        Seen::Frame(Frame::Method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))
        ))
    ));
    // Routed, unroutable, mandatory unroutable, routed, mandatory unroutable, routed.
    let mut out = BytesMut::new();
    for (key, mandatory) in [
        ("q", false),
        ("nowhere", false),
        ("nowhere", true),
        ("q", true),
        ("nowhere", true),
        ("q", false),
    ] {
        out.extend_from_slice(&publish_frames(1, "", key, mandatory, b"m"));
    }
    raw.send_raw(&out).await;
    read_confirms(&mut raw, 1, 6, &[3, 5]).await;
    // Channel 2 has its own sequence.
    raw.send_raw(&publish_frames(2, "", "q", false, b"a")).await;
    raw.send_raw(&publish_frames(2, "", "nowhere", false, b"b"))
        .await;
    read_confirms(&mut raw, 2, 2, &[]).await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_then_acked() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let properties = props().with_message_id("m-1".into());
    let confirm = try_publish(&ch, "", "nowhere", true, b"lost", properties)
        .await
        .expect("confirm");
    // lapin attaches a return to the ack that follows it.
    let Confirmation::Ack(Some(returned)) = confirm else {
        panic!("expected an ack carrying the returned message, got {confirm:?}");
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.routing_key.as_str(), "nowhere");
    assert_eq!(returned.data, b"lost");
    assert_eq!(
        returned
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str),
        Some("m-1")
    );
    // Without mandatory, unroutable is simply acked.
    let plain = try_publish(&ch, "", "nowhere", false, b"dropped", props())
        .await
        .expect("confirm");
    assert!(matches!(plain, Confirmation::Ack(None)), "{plain:?}");
    client.close().await;
}

#[tokio::test]
async fn confirm_and_tx_modes_exclude_each_other() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    let err = ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect_err("refused");
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode".to_owned()
        )
    );
    let ch = client.confirming().await;
    // confirm.select twice is fine.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("again");
    let err = ch.tx_select().await.expect_err("refused");
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode".to_owned()
        )
    );
    client.close().await;
}

/// Publishes that arrive together are confirmed together: one basic.ack with
/// multiple=true covers them (clients such as amqplib rely on seeing it).
#[tokio::test]
async fn confirms_of_one_batch_are_coalesced_into_multiple_acks() {
    let broker = start().await;
    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.send_method(1, confirm_select()).await;
    assert!(matches!(
        raw.next().await,
        Seen::Frame(Frame::Method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
        ))
    ));
    let n = 50u64;
    let mut out = BytesMut::new();
    for _ in 0..n {
        out.extend_from_slice(&publish_frames(1, "", "nowhere", false, b"m"));
    }
    raw.send_raw(&out).await;
    let mut acked = BTreeSet::new();
    let mut ack_frames = 0;
    let mut saw_multiple = false;
    while (acked.len() as u64) < n {
        match raw.next().await {
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                ack_frames += 1;
                saw_multiple |= a.multiple;
                let first = if a.multiple { 1 } else { a.delivery_tag };
                for tag in first..=a.delivery_tag {
                    if a.multiple && acked.contains(&tag) {
                        continue;
                    }
                    assert!(acked.insert(tag), "tag {tag} acked twice");
                }
            }
            other => panic!("expected acks, got {other:?}"),
        }
    }
    assert_eq!(acked, (1..=n).collect::<BTreeSet<_>>());
    assert!(saw_multiple, "no multiple=true ack among {ack_frames}");
    assert!(
        ack_frames < n,
        "{ack_frames} acks for {n} publishes sent at once"
    );
}

//! Length limits: `x-max-length`, `x-max-length-bytes` (ready messages only)
//! and `x-overflow` (drop-head, reject-publish, reject-publish-dlx), with the
//! publisher confirms a refused message gets.

use std::collections::BTreeMap;

use bytes::BytesMut;
use lapin::options::*;
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, basic, confirm};

use crate::common::lapin::{text, try_publish};
use crate::common::raw::{RawClient, Seen, confirm_select, publish_frames};
use crate::{
    bind, deaths, declare, drain, eventually_get, exchange, get_some, int, nack, publish, ready,
    send, setup,
};

fn refuse(overflow: &str, max_length: i64) -> Vec<(&'static str, lapin::types::AMQPValue)> {
    vec![
        ("x-max-length", int(max_length)),
        ("x-overflow", text(overflow)),
    ]
}

#[tokio::test]
async fn max_length_drops_the_oldest_messages() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-length", int(2))]).await;
    for body in [b"1", b"2", b"3", b"4"] {
        publish(&ch, "q", body).await;
    }
    assert_eq!(drain(&ch, "q").await, [b"3".to_vec(), b"4".to_vec()]);
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-length-bytes", int(10))]).await;
    for body in [b"aaaa", b"bbbb", b"cccc"] {
        publish(&ch, "q", body).await;
    }
    assert_eq!(drain(&ch, "q").await, [b"bbbb".to_vec(), b"cccc".to_vec()]);
    // A message larger than the limit does not stay either.
    publish(&ch, "q", b"0123456789x").await;
    assert!(drain(&ch, "q").await.is_empty());
}

/// Delivered, unacked messages are not counted.
#[tokio::test]
async fn only_ready_messages_count_against_the_limit() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-length", int(1))]).await;
    publish(&ch, "q", b"a").await;
    let a = get_some(&ch, "q").await;
    publish(&ch, "q", b"b").await;
    assert_eq!(ready(&client, "q").await, 1);
    a.delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    assert_eq!(drain(&ch, "q").await, [b"b".to_vec()]);
}

/// A requeued message goes back to its place at the head; a full queue then
/// drops its head, as RabbitMQ does.
#[tokio::test]
async fn a_requeue_into_a_full_queue_drops_the_head() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-length", int(1))]).await;
    publish(&ch, "q", b"a").await;
    let a = get_some(&ch, "q").await;
    publish(&ch, "q", b"b").await;
    a.delivery.nack(nack(true)).await.expect("requeue");
    assert_eq!(drain(&ch, "q").await, [b"b".to_vec()]);
}

#[tokio::test]
async fn drop_head_dead_letters_with_reason_maxlen() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "dlq", &[]).await;
    declare(
        &ch,
        "q",
        &[
            ("x-max-length", int(1)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dlq")),
        ],
    )
    .await;
    publish(&ch, "q", b"old").await;
    publish(&ch, "q", b"new").await;
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(dead.data, b"old");
    assert_eq!(deaths(&dead), [("q".to_owned(), "maxlen".to_owned(), 1)]);
    assert_eq!(drain(&ch, "q").await, [b"new".to_vec()]);
}

/// reject-publish: the publisher gets a nack (never a basic.return, even
/// when mandatory) and the queue keeps what it had.
#[tokio::test]
async fn reject_publish_nacks_the_publisher() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &refuse("reject-publish", 1)).await;
    publish(&ch, "q", b"kept").await;
    let confirm = try_publish(&ch, "", "q", true, b"refused", BasicProperties::default())
        .await
        .expect("publish");
    assert!(
        matches!(confirm, Confirmation::Nack(None)),
        "expected a plain nack, got {confirm:?}"
    );
    assert_eq!(drain(&ch, "q").await, [b"kept".to_vec()]);
    // Room again: accepted again.
    publish(&ch, "q", b"again").await;
}

/// The other queues a message reaches still get it; its confirm is a nack.
#[tokio::test]
async fn reject_publish_on_one_queue_of_a_fanout() {
    let (_broker, _client, ch) = setup().await;
    exchange(&ch, "fan", ExchangeKind::Fanout).await;
    declare(&ch, "full", &refuse("reject-publish", 0)).await;
    declare(&ch, "open", &[]).await;
    bind(&ch, "full", "fan", "").await;
    bind(&ch, "open", "fan", "").await;
    let confirm = send(&ch, "fan", "", b"m", BasicProperties::default()).await;
    assert!(matches!(confirm, Confirmation::Nack(_)), "{confirm:?}");
    assert_eq!(drain(&ch, "open").await, [b"m".to_vec()]);
    assert!(drain(&ch, "full").await.is_empty());
}

#[tokio::test]
async fn reject_publish_dlx_refuses_and_dead_letters() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "dlq", &[]).await;
    let mut args = refuse("reject-publish-dlx", 1);
    args.push(("x-dead-letter-exchange", text("")));
    args.push(("x-dead-letter-routing-key", text("dlq")));
    declare(&ch, "q", &args).await;
    publish(&ch, "q", b"kept").await;
    let confirm = send(&ch, "", "q", b"refused", BasicProperties::default()).await;
    assert!(matches!(confirm, Confirmation::Nack(_)), "{confirm:?}");
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(dead.data, b"refused");
    assert_eq!(deaths(&dead), [("q".to_owned(), "maxlen".to_owned(), 1)]);
    assert_eq!(drain(&ch, "q").await, [b"kept".to_vec()]);
}

/// Confirms of publishes read in one batch are coalesced into multiple acks,
/// but a nack is never folded into one: the acks before it go out first, then
/// the nack, in tag order.
#[tokio::test]
async fn a_nack_is_never_folded_into_a_multiple_ack() {
    let (broker, client, ch) = setup().await;
    declare(&ch, "full", &refuse("reject-publish", 0)).await;
    declare(&ch, "open", &[]).await;
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
    let targets = ["open", "open", "full", "open", "open", "full", "open"];
    let mut out = BytesMut::new();
    for q in targets {
        out.extend_from_slice(&publish_frames(1, "", q, false, b"m"));
    }
    raw.send_raw(&out).await;
    let mut outcome: BTreeMap<u64, bool> = BTreeMap::new();
    let mut last = 0;
    while outcome.len() < targets.len() {
        let (tag, multiple, acked) = match raw.next().await {
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                (a.delivery_tag, a.multiple, true)
            }
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Nack(n)))) => {
                (n.delivery_tag, n.multiple, false)
            }
            other => panic!("expected confirms, got {other:?}"),
        };
        assert!(tag > last, "confirm of {tag} after {last}");
        last = tag;
        let first = if multiple { 1 } else { tag };
        for t in first..=tag {
            outcome.entry(t).or_insert(acked);
        }
    }
    let expected: BTreeMap<u64, bool> = targets
        .iter()
        .enumerate()
        .map(|(i, q)| (i as u64 + 1, *q == "open"))
        .collect();
    assert_eq!(outcome, expected, "tag -> acked");
    assert_eq!(ready(&client, "open").await, 5);
    assert_eq!(ready(&client, "full").await, 0);
    client.close().await;
}

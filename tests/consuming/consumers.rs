//! Consumers and their tags, exclusive and no-ack consumers, cancel, basic.get,
//! delivery tags, and how consumers share a queue.

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;

use crate::common::lapin::{
    Client, amqp_error, consume, consume_with, declare_queue, next_delivery,
};
use crate::common::{WAIT, eventually, start};
use crate::{
    ack, ack_multiple, eventually_ready, get, get_some, publish, publish_n, ready, with_messages,
};

#[tokio::test]
async fn server_generated_consumer_tags_are_amq_ctag() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    let a = consume(&ch, "q").await;
    let b = consume(&ch, "q").await;
    for tag in [a.tag(), b.tag()] {
        let suffix = tag
            .as_str()
            .strip_prefix("amq.ctag-")
            .expect("amq.ctag- prefix");
        assert_eq!(suffix.len(), 22, "{tag}");
    }
    assert_ne!(a.tag(), b.tag());
    // A chosen tag is kept as given.
    let c = consume_with(&ch, "q", "my-tag", BasicConsumeOptions::default()).await;
    assert_eq!(c.tag().as_str(), "my-tag");
    client.close().await;
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_530() {
    let broker = start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    declare_queue(&ch, "q2").await;
    let _x = consume_with(&ch, "q", "x", BasicConsumeOptions::default()).await;
    // The same tag on another channel is another consumer.
    let other = client.channel().await;
    let _y = consume_with(&other, "q", "x", BasicConsumeOptions::default()).await;
    let again = ch
        .basic_consume(
            "q2".into(),
            "x".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(again.is_err());
    assert_eq!(
        client.exception().await,
        (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'x'".to_owned()
        )
    );
    assert!(
        eventually(true, async || !client.status().connected()).await,
        "a connection exception closes the connection"
    );
}

#[tokio::test]
async fn an_exclusive_consumer_keeps_others_out() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    let exclusive = BasicConsumeOptions {
        exclusive: true,
        ..Default::default()
    };
    let sole = consume_with(&ch, "q", "sole", exclusive).await;
    let in_use = (
        403,
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use".to_owned(),
    );
    for options in [BasicConsumeOptions::default(), exclusive] {
        let other = client.channel().await;
        let err = other
            .basic_consume("q".into(), "".into(), options, FieldTable::default())
            .await
            .expect_err("refused");
        assert_eq!(amqp_error(&err), in_use);
    }
    ch.basic_cancel(sole.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    // Without it, consumers share; an exclusive one cannot join them.
    let _shared = consume(&ch, "q").await;
    let other = client.channel().await;
    let err = other
        .basic_consume("q".into(), "".into(), exclusive, FieldTable::default())
        .await
        .expect_err("refused");
    assert_eq!(amqp_error(&err), in_use);
    client.close().await;
}

#[tokio::test]
async fn no_ack_consumers_take_messages_for_good() {
    let (_broker, mut client, ch) = with_messages(&[("q", 3)]).await;
    let mut consumer = consume_with(
        &ch,
        "q",
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((d.data[0], d.delivery_tag), (i, u64::from(i) + 1));
    }
    eventually_ready(&client, "q", 0).await;
    // Nothing is outstanding: an ack of a no-ack delivery is an unknown tag.
    ch.basic_ack(1, ack()).await.expect("ack sent");
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn cancel_leaves_unacked_deliveries_to_be_acked() {
    let (_broker, client, ch) = with_messages(&[("q", 2)]).await;
    let mut consumer = consume(&ch, "q").await;
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    assert!(
        tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("stream ends")
            .is_none()
    );
    // Cancelling a tag that is not (or no longer) there is answered all the same.
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel again");
    publish(&ch, "q", b"later").await;
    // The cancelled consumer gets nothing more; its deliveries stay unacked.
    assert_eq!(ready(&client, "q").await, 1);
    first.ack(ack()).await.expect("ack after cancel");
    // The channel still works after acking (an unknown tag would have closed it).
    let got = get_some(&ch, "q").await;
    assert_eq!(got.delivery.data, b"later");
    assert_eq!(got.delivery.delivery_tag, 3);
    got.delivery.ack(ack()).await.expect("ack");
    // `second` was never acked: closing the channel puts it back.
    drop(second);
    ch.close(200, "done".into()).await.expect("close");
    eventually_ready(&client, "q", 1).await;
    let ch = client.channel().await;
    let back = get_some(&ch, "q").await;
    assert_eq!(
        (back.delivery.data[0], back.delivery.redelivered),
        (1, true)
    );
    client.close().await;
}

#[tokio::test]
async fn basic_get_counts_down_then_is_empty() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    assert!(get(&ch, "q").await.is_none(), "get-empty on an empty queue");
    publish_n(&ch, "q", 3).await;
    for i in 0..3u8 {
        let got = get_some(&ch, "q").await;
        assert_eq!(got.delivery.data, [i]);
        assert_eq!(got.delivery.delivery_tag, u64::from(i) + 1);
        assert_eq!(got.message_count, 2 - u32::from(i));
        assert!(!got.delivery.redelivered);
        assert_eq!(got.delivery.routing_key.as_str(), "q");
    }
    assert!(get(&ch, "q").await.is_none());
    // Gets are unacked until acked: ack them all at once.
    ch.basic_ack(3, ack_multiple()).await.expect("ack");
    ch.close(200, "done".into()).await.expect("close");
    assert_eq!(ready(&client, "q").await, 0);
    let ch = client.channel().await;
    let err = ch
        .basic_get("nosuch-q".into(), BasicGetOptions::default())
        .await
        .expect_err("missing queue");
    assert_eq!(
        amqp_error(&err),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn delivery_tags_count_per_channel_from_one() {
    let (_broker, client, pub_ch) = with_messages(&[("a", 3), ("b", 2)]).await;
    let ch1 = client.channel().await;
    let ch2 = client.channel().await;
    let mut c1 = consume(&ch1, "a").await;
    let mut c2 = consume(&ch2, "b").await;
    let tags1: Vec<u64> = [
        next_delivery(&mut c1).await,
        next_delivery(&mut c1).await,
        next_delivery(&mut c1).await,
    ]
    .iter()
    .map(|d| d.delivery_tag)
    .collect();
    let tags2: Vec<u64> = [next_delivery(&mut c2).await, next_delivery(&mut c2).await]
        .iter()
        .map(|d| d.delivery_tag)
        .collect();
    assert_eq!(tags1, [1, 2, 3]);
    assert_eq!(tags2, [1, 2]);
    // basic.get shares the channel's sequence.
    ch2.basic_cancel(c2.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    publish(&pub_ch, "b", b"x").await;
    assert_eq!(get_some(&ch2, "b").await.delivery.delivery_tag, 3);
    client.close().await;
}

#[tokio::test]
async fn consumers_take_turns() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare_queue(&pub_ch, "q").await;
    let ch1 = client.channel().await;
    let ch2 = client.channel().await;
    let mut c1 = consume(&ch1, "q").await;
    let mut c2 = consume(&ch2, "q").await;
    publish_n(&pub_ch, "q", 6).await;
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    for _ in 0..3 {
        got1.push(next_delivery(&mut c1).await.data[0]);
        got2.push(next_delivery(&mut c2).await.data[0]);
    }
    assert!(
        (got1 == [0, 2, 4] && got2 == [1, 3, 5]) || (got1 == [1, 3, 5] && got2 == [0, 2, 4]),
        "{got1:?} {got2:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_consumer_without_credit_is_skipped() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare_queue(&pub_ch, "q").await;
    let slow_ch = client.channel().await;
    slow_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let fast_ch = client.channel().await;
    let mut slow = consume(&slow_ch, "q").await;
    let mut fast = consume(&fast_ch, "q").await;
    publish_n(&pub_ch, "q", 5).await;
    let held = next_delivery(&mut slow).await;
    let mut fast_got = Vec::new();
    for _ in 0..4 {
        fast_got.push(next_delivery(&mut fast).await.data[0]);
    }
    // 1 + 4 = 5: nothing else is waiting for the slow consumer.
    assert_eq!(ready(&client, "q").await, 0);
    let mut all: Vec<u8> = fast_got.clone();
    all.push(held.data[0]);
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4]);
    client.close().await;
}

//! basic.qos: per-consumer and global prefetch counts.

use lapin::options::*;

use crate::common::lapin::{consume, next_delivery};
use crate::common::raw::{RawClient, frame};
use crate::common::start;
use crate::{ack, get_some, ready, with_messages};

#[tokio::test]
async fn prefetch_one_gets_the_next_message_only_after_an_ack() {
    let (_broker, client, _pub_ch) = with_messages(&[("q", 3)]).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, [i]);
        // Held back until this one is acked.
        assert_eq!(ready(&client, "q").await, 2 - u32::from(i));
        d.ack(ack()).await.expect("ack");
    }
    client.close().await;
}

#[tokio::test]
async fn prefetch_applies_to_consumers_created_after_it() {
    let (_broker, client, _pub_ch) = with_messages(&[("before", 5), ("after", 5)]).await;
    let ch = client.channel().await;
    let mut early = consume(&ch, "before").await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut late = consume(&ch, "after").await;
    for _ in 0..5 {
        next_delivery(&mut early).await;
    }
    next_delivery(&mut late).await;
    next_delivery(&mut late).await;
    assert_eq!(ready(&client, "before").await, 0);
    assert_eq!(ready(&client, "after").await, 3);
    client.close().await;
}

#[tokio::test]
async fn prefetch_zero_means_unlimited() {
    let (_broker, client, _pub_ch) = with_messages(&[("q", 5)]).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos 1");
    ch.basic_qos(0, BasicQosOptions::default())
        .await
        .expect("qos 0");
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..5 {
        next_delivery(&mut consumer).await;
    }
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn global_prefetch_limits_the_whole_channel() {
    let (_broker, client, _pub_ch) = with_messages(&[("a", 5), ("b", 5)]).await;
    let ch = client.channel().await;
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("qos");
    let ca = consume(&ch, "a").await;
    let cb = consume(&ch, "b").await;
    let mut both = futures_util::stream::select(ca, cb);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next_delivery(&mut both).await);
    }
    assert_eq!(ready(&client, "a").await + ready(&client, "b").await, 7);
    // One ack makes room for one more.
    held.remove(0).ack(ack()).await.expect("ack");
    held.push(next_delivery(&mut both).await);
    assert_eq!(ready(&client, "a").await + ready(&client, "b").await, 6);
    client.close().await;
}

#[tokio::test]
async fn global_prefetch_counts_consumer_deliveries_not_gets() {
    let (_broker, client, _pub_ch) = with_messages(&[("a", 2), ("b", 2)]).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .expect("qos");
    // An unacked basic.get does not use up the channel's prefetch...
    let _held = get_some(&ch, "a").await;
    let mut consumer = consume(&ch, "b").await;
    next_delivery(&mut consumer).await;
    // ...but the consumer's own unacked delivery does.
    assert_eq!(ready(&client, "b").await, 1);
    client.close().await;
}

#[tokio::test]
async fn consumer_and_global_prefetch_both_apply() {
    let (_broker, client, _pub_ch) = with_messages(&[("a", 5), ("b", 5)]).await;
    let ch = client.channel().await;
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .expect("per-consumer qos");
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("global qos");
    let ca = consume(&ch, "a").await;
    let cb = consume(&ch, "b").await;
    let mut both = futures_util::stream::select(ca, cb);
    for _ in 0..3 {
        next_delivery(&mut both).await;
    }
    let (a, b) = (ready(&client, "a").await, ready(&client, "b").await);
    // Three out in all, at most two from either queue.
    assert_eq!(a + b, 7, "{a} {b}");
    assert!(a >= 3 && b >= 3, "{a} {b}");
    client.close().await;
}

#[tokio::test]
async fn prefetch_size_is_not_implemented() {
    let broker = start().await;
    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    // basic.qos with prefetch_size=1, prefetch_count=0, global=false.
    let payload = [0, 60, 0, 10, 0, 0, 0, 1, 0, 0, 0];
    raw.send_raw(&frame(1, 1, &payload)).await;
    let (text, class, method) = raw.expect_connection_close(540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (1)");
    assert_eq!((class, method), (60, 10));
    raw.close_ok_and_expect_eof().await;
}

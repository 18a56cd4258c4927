//! `x-delivery-limit`, as RabbitMQ 4 quorum queues have it: a message that came
//! back unsettled more often than the limit is dropped, or dead-lettered with
//! reason delivery_limit. Every return counts: nack/reject with requeue,
//! basic.recover, and a channel closed with the message unacked.

use lapin::options::*;

use crate::common::lapin::text;
use crate::{
    deaths, declare, eventually_get, eventually_ready, get, get_some, int, nack, publish, ready,
    setup,
};

#[tokio::test]
async fn after_the_limit_the_message_is_dead_lettered_with_reason_delivery_limit() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "dlq", &[]).await;
    declare(
        &ch,
        "q",
        &[
            ("x-delivery-limit", int(2)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dlq")),
        ],
    )
    .await;
    publish(&ch, "q", b"poison").await;
    // Delivered once, then redelivered twice (the limit): each time returned.
    for redelivered in [false, true, true] {
        let got = get_some(&ch, "q").await.delivery;
        assert_eq!(got.redelivered, redelivered);
        got.nack(nack(true)).await.expect("return");
    }
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(dead.data, b"poison");
    assert_eq!(
        deaths(&dead),
        [("q".to_owned(), "delivery_limit".to_owned(), 1)]
    );
    assert_eq!(ready(&client, "q").await, 0);
}

#[tokio::test]
async fn without_a_dead_letter_exchange_the_message_is_dropped() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-delivery-limit", int(0))]).await;
    publish(&ch, "q", b"once").await;
    get_some(&ch, "q")
        .await
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("return");
    eventually_ready(&client, "q", 0).await;
    assert!(get(&ch, "q").await.is_none());
}

/// The count is per message: others in the queue are not affected, and a
/// channel closed with the message unacked counts as a return.
#[tokio::test]
async fn returns_are_counted_per_message_including_channel_close() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-delivery-limit", int(1))]).await;
    publish(&ch, "q", b"a").await;
    publish(&ch, "q", b"b").await;
    // a: returned by a channel close, then by a nack: over the limit.
    let other = client.channel().await;
    let a = get_some(&other, "q").await.delivery;
    assert_eq!(a.data, b"a");
    other.close(200, "bye".into()).await.expect("close");
    eventually_ready(&client, "q", 2).await;
    let a = get_some(&ch, "q").await.delivery;
    assert_eq!((a.data.as_slice(), a.redelivered), (&b"a"[..], true));
    a.nack(nack(true)).await.expect("return");
    // b was never returned: still there, and can be returned once.
    let b = get_some(&ch, "q").await.delivery;
    assert_eq!((b.data.as_slice(), b.redelivered), (&b"b"[..], false));
    b.nack(nack(true)).await.expect("return");
    let b = get_some(&ch, "q").await.delivery;
    assert_eq!((b.data.as_slice(), b.redelivered), (&b"b"[..], true));
    b.ack(BasicAckOptions::default()).await.expect("ack");
    assert!(get(&ch, "q").await.is_none());
}

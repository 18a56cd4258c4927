//! Message TTL (`x-message-ttl`, the `expiration` property) and queue expiry
//! (`x-expires`).

use std::time::Duration;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};

use crate::common::lapin::{consume, next_delivery, text, try_publish};
use crate::common::{WAIT, eventually};
use crate::{
    deaths, declare, drain, eventually_get, eventually_ready, expiring, get, get_some, int, nack,
    publish, publish_with, ready, setup,
};

#[tokio::test]
async fn queue_ttl_expires_ready_messages() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-message-ttl", int(100))]).await;
    publish(&ch, "q", b"a").await;
    publish(&ch, "q", b"b").await;
    eventually_ready(&client, "q", 0).await;
    assert!(get(&ch, "q").await.is_none());
}

#[tokio::test]
async fn per_message_expiration_expires_only_that_message() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    publish(&ch, "q", b"keep").await;
    publish_with(&ch, "q", b"gone", expiring("50")).await;
    eventually_ready(&client, "q", 1).await;
    assert_eq!(drain(&ch, "q").await, [b"keep".to_vec()]);
}

#[tokio::test]
async fn the_lower_of_queue_and_message_ttl_wins() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "long-queue-ttl", &[("x-message-ttl", int(60_000))]).await;
    declare(&ch, "short-queue-ttl", &[("x-message-ttl", int(50))]).await;
    publish_with(&ch, "long-queue-ttl", b"short message ttl", expiring("50")).await;
    publish(&ch, "long-queue-ttl", b"no message ttl").await;
    publish_with(
        &ch,
        "short-queue-ttl",
        b"long message ttl",
        expiring("60000"),
    )
    .await;
    eventually_ready(&client, "short-queue-ttl", 0).await;
    eventually_ready(&client, "long-queue-ttl", 1).await;
    assert_eq!(
        drain(&ch, "long-queue-ttl").await,
        [b"no message ttl".to_vec()]
    );
}

/// Not only the head: a message that expires behind one that does not is
/// removed without anything being consumed.
#[tokio::test]
async fn expired_messages_behind_a_live_one_are_removed() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    publish(&ch, "q", b"head").await;
    publish_with(&ch, "q", b"x1", expiring("50")).await;
    publish_with(&ch, "q", b"x2", expiring("100")).await;
    publish(&ch, "q", b"tail").await;
    eventually_ready(&client, "q", 2).await;
    assert_eq!(drain(&ch, "q").await, [b"head".to_vec(), b"tail".to_vec()]);
}

#[tokio::test]
async fn ttl_zero_reaches_a_consumer_that_can_take_it_now() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-message-ttl", int(0))]).await;
    let consumer_ch = client.channel().await;
    let mut consumer = consume(&consumer_ch, "q").await;
    publish(&ch, "q", b"now").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"now");
    d.ack(BasicAckOptions::default()).await.expect("ack");
    publish_with(&ch, "q", b"zero property", expiring("0")).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"zero property");
}

/// With TTL 0 a message no consumer can take right away expires at once: by
/// the time the publish is confirmed it is gone.
#[tokio::test]
async fn ttl_zero_expires_at_once_when_no_consumer_can_take_it() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-message-ttl", int(0))]).await;
    publish(&ch, "q", b"nobody").await;
    assert_eq!(ready(&client, "q").await, 0);
    // A consumer at its prefetch limit cannot take it either.
    let consumer_ch = client.channel().await;
    consumer_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume(&consumer_ch, "q").await;
    publish(&ch, "q", b"first").await;
    let first = next_delivery(&mut consumer).await;
    publish(&ch, "q", b"busy").await;
    assert_eq!(ready(&client, "q").await, 0);
    first.ack(BasicAckOptions::default()).await.expect("ack");
    publish(&ch, "q", b"free again").await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"free again");
    // Per-message expiration 0 on a queue without TTL: the same.
    declare(&ch, "plain", &[]).await;
    publish_with(&ch, "plain", b"zero", expiring("0")).await;
    assert_eq!(ready(&client, "plain").await, 0);
}

/// A delivered message keeps its expiry: if it passed while the message was
/// unacked, the message expires (and is dead-lettered) when it is requeued.
#[tokio::test]
async fn an_unacked_message_whose_ttl_passed_expires_when_requeued() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "dead", &[]).await;
    declare(
        &ch,
        "q",
        &[
            ("x-message-ttl", int(100)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dead")),
        ],
    )
    .await;
    publish(&ch, "q", b"late").await;
    let got = get_some(&ch, "q").await;
    // Let the TTL pass while the message is unacked.
    tokio::time::sleep(Duration::from_millis(250)).await;
    got.delivery.nack(nack(true)).await.expect("nack");
    let dead = eventually_get(&ch, "dead").await;
    assert_eq!(dead.delivery.data, b"late");
    assert_eq!(
        deaths(&dead.delivery),
        [("q".to_owned(), "expired".to_owned(), 1)]
    );
    assert_eq!(ready(&client, "q").await, 0);
}

/// Whether a queue exists, asked without touching its `x-expires` lease (a
/// passive declare would renew it): a mandatory publish comes back if not.
async fn exists(ch: &Channel, queue: &str) -> bool {
    let confirm = try_publish(ch, "", queue, true, b"probe", BasicProperties::default())
        .await
        .expect("publish");
    matches!(confirm, Confirmation::Ack(None))
}

async fn eventually_gone(ch: &Channel, queue: &str) {
    let gone = eventually(false, async || exists(ch, queue).await).await;
    assert!(!gone, "queue '{queue}' still exists after {WAIT:?}");
}

#[tokio::test]
async fn x_expires_deletes_an_unused_queue() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-expires", int(100))]).await;
    publish(&ch, "q", b"messages do not keep it").await;
    eventually_gone(&ch, "q").await;
    let err = ch
        .queue_declare(
            "q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("deleted");
    assert_eq!(
        crate::common::lapin::amqp_error(&err).0,
        404,
        "the queue is gone"
    );
}

#[tokio::test]
async fn x_expires_waits_while_a_consumer_is_attached() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-expires", int(100))]).await;
    let consumer_ch = client.channel().await;
    let consumer = consume(&consumer_ch, "q").await;
    // Several leases pass with the consumer attached.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(exists(&ch, "q").await);
    consumer_ch
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    eventually_gone(&ch, "q").await;
}

/// queue.declare and basic.get use the queue: each starts the lease again.
#[tokio::test]
async fn x_expires_lease_is_renewed_by_declare_and_get() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-expires", int(500))]).await;
    for i in 0..16 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if i % 2 == 0 {
            declare(&ch, "q", &[("x-expires", int(500))]).await;
        } else {
            let _ = get(&ch, "q").await;
        }
    }
    // 800 ms have passed, more than the lease: it was renewed.
    assert!(exists(&ch, "q").await);
    eventually_gone(&ch, "q").await;
}

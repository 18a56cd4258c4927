//! queue.bind / unbind / purge / delete, and the empty name that stands for the
//! channel's last declared queue.

use futures_util::StreamExt;
use lapin::ExchangeKind;
use lapin::options::*;
use lapin::types::FieldTable;

use crate::common::lapin::{
    Client, consume_with, counts, declare_queue, next_delivery, refused, table, text,
};
use crate::common::{WAIT, start};
use crate::{PASSIVE, bind, declare_with, eventually_counts, exists, publish, publish_to};

#[tokio::test]
async fn bind_and_unbind_route_and_stop_routing() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    bind(&ch, "q", "x", "k").await.expect("bind");
    // Binding twice is idempotent: still one copy per message.
    bind(&ch, "q", "x", "k").await.expect("bind again");
    publish_to(&ch, "x", "k", b"1", FieldTable::default()).await;
    publish_to(&ch, "x", "other", b"2", FieldTable::default()).await;
    assert_eq!(counts(&client, "q").await, (1, 0));
    ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())
        .await
        .expect("unbind");
    publish_to(&ch, "x", "k", b"3", FieldTable::default()).await;
    assert_eq!(counts(&client, "q").await, (1, 0));
    // Unbinding what is not bound is fine.
    ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())
        .await
        .expect("unbind again");

    let c = client.channel().await;
    assert_eq!(
        refused(bind(&c, "q", "nosuch-x", "k").await),
        (
            404,
            "NOT_FOUND - no exchange 'nosuch-x' in vhost '/'".to_owned()
        )
    );
    let c = client.channel().await;
    assert_eq!(
        refused(bind(&c, "nosuch-q", "x", "k").await),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn headers_bindings_use_their_arguments() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "all").await;
    declare_queue(&ch, "any").await;
    let bind_args = |mode: &str| {
        table(&[
            ("x-match", text(mode)),
            ("format", text("pdf")),
            ("type", text("report")),
        ])
    };
    for (queue, mode) in [("all", "all"), ("any", "any")] {
        ch.queue_bind(
            queue.into(),
            "amq.headers".into(),
            "".into(),
            QueueBindOptions::default(),
            bind_args(mode),
        )
        .await
        .expect("bind");
    }
    let both = table(&[("format", text("pdf")), ("type", text("report"))]);
    let one = table(&[("format", text("pdf")), ("type", text("log"))]);
    publish_to(&ch, "amq.headers", "", b"both", both.clone()).await;
    publish_to(&ch, "amq.headers", "", b"one", one).await;
    publish_to(&ch, "amq.headers", "", b"none", FieldTable::default()).await;
    assert_eq!(counts(&client, "all").await, (1, 0));
    assert_eq!(counts(&client, "any").await, (2, 0));
    // Unbinding names the binding by its arguments too.
    ch.queue_unbind(
        "all".into(),
        "amq.headers".into(),
        "".into(),
        bind_args("all"),
    )
    .await
    .expect("unbind");
    publish_to(&ch, "amq.headers", "", b"both", both).await;
    assert_eq!(counts(&client, "all").await, (1, 0));
    assert_eq!(counts(&client, "any").await, (3, 0));
    client.close().await;
}

#[tokio::test]
async fn purge_drops_ready_messages_and_counts_them() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    for i in 0..4u8 {
        publish(&ch, "q", &[i]).await;
    }
    // One delivered and unacked: purge leaves it alone.
    let held = ch
        .basic_get("q".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .expect("message");
    assert_eq!(
        ch.queue_purge("q".into(), QueuePurgeOptions::default())
            .await
            .expect("purge"),
        3
    );
    assert_eq!(counts(&client, "q").await, (0, 0));
    assert_eq!(
        ch.queue_purge("q".into(), QueuePurgeOptions::default())
            .await
            .expect("purge empty"),
        0
    );
    held.delivery
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .expect("nack");
    assert_eq!(counts(&client, "q").await, (1, 0));
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_purge("nosuch-q".into(), QueuePurgeOptions::default())
                .await
        ),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn delete_checks_if_unused_and_if_empty_and_counts() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    for i in 0..3u8 {
        publish(&ch, "q", &[i]).await;
    }
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_delete(
                "q".into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                }
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty".to_owned()
        )
    );
    let cons_ch = client.channel().await;
    cons_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume_with(&cons_ch, "q", "c", BasicConsumeOptions::default()).await;
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_delete(
                "q".into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                }
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' in use".to_owned()
        )
    );
    // The consumer holds one unacked message; 2 are ready.
    let first = next_delivery(&mut consumer).await;
    assert_eq!(first.data, [0]);
    eventually_counts(&client, "q", (2, 1)).await;
    assert_eq!(
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete"),
        2
    );
    assert!(!exists(&client, "q").await);
    // Its consumer is told (basic.cancel): lapin ends the stream.
    let end = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("stream ends in time");
    assert!(end.is_none(), "{end:?}");
    // Deleting a missing queue is fine and deletes nothing.
    assert_eq!(
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete missing"),
        0
    );
    // An empty unused queue passes both checks.
    declare_queue(&ch, "e").await;
    assert_eq!(
        ch.queue_delete(
            "e".into(),
            QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                nowait: false
            }
        )
        .await
        .expect("delete"),
        0
    );
    client.close().await;
}

#[tokio::test]
async fn empty_name_means_the_last_declared_queue() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "other").await;
    let q = declare_queue(&ch, "last").await;
    let name = q.name().to_string();
    // bind "" with key "": the queue, bound with its own name as the key.
    bind(&ch, "", "amq.direct", "").await.expect("bind");
    publish_to(&ch, "amq.direct", &name, b"1", FieldTable::default()).await;
    publish_to(&ch, "amq.direct", &name, b"2", FieldTable::default()).await;
    publish_to(&ch, "amq.direct", &name, b"3", FieldTable::default()).await;
    assert_eq!(counts(&client, &name).await, (3, 0));
    let got = ch
        .basic_get("".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("message");
    assert_eq!(got.delivery.data, b"1");
    assert_eq!(got.message_count, 2);
    assert_eq!(
        ch.queue_purge("".into(), QueuePurgeOptions::default())
            .await
            .expect("purge"),
        2
    );
    publish_to(&ch, "amq.direct", &name, b"4", FieldTable::default()).await;
    let mut consumer = ch
        .basic_consume(
            "".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"4");
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    ch.queue_delete("".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert!(!exists(&client, &name).await);

    // A passive declare takes "" literally, even after a declare.
    let ch = client.channel().await;
    declare_queue(&ch, "last").await;
    assert_eq!(
        refused(declare_with(&ch, "", PASSIVE, FieldTable::default()).await),
        (404, "NOT_FOUND - no queue '' in vhost '/'".to_owned())
    );
    // A channel that declared nothing has no last queue.
    let fresh = client.channel().await;
    assert_eq!(
        refused(
            fresh
                .queue_purge("".into(), QueuePurgeOptions::default())
                .await
        ),
        (404, "NOT_FOUND - no previously declared queue".to_owned())
    );
    client.close().await;
}

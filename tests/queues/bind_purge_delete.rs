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

/// Deleting a queue cancels its consumers with basic.cancel; on the channel that
/// deleted it, delete-ok comes first (clients waiting for delete-ok, like
/// py-amqp, fail on a cancel that overtakes it), as RabbitMQ orders them.
#[tokio::test]
async fn delete_ok_precedes_the_deleting_channels_consumer_cancel() {
    use crate::common::raw::{RawClient, Seen, queue_declare};
    use warren_codec::Frame;
    use warren_codec::protocol::{AMQPClass, basic, queue};

    let broker = start().await;
    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send_method(1, queue_declare("doomed")).await;
    assert!(matches!(
        raw.next().await,
        Seen::Frame(Frame::Method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))
        ))
    ));
    for (channel, tag) in [(1, "ctag1"), (2, "ctag2")] {
        raw.send_method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "doomed".into(),
                consumer_tag: tag.into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
        assert!(matches!(
            raw.next().await,
            Seen::Frame(Frame::Method(
                _,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))
            ))
        ));
    }
    raw.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "doomed".into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    )
    .await;
    let mut on_channel_1 = Vec::new();
    let mut cancelled_2 = false;
    while on_channel_1.len() < 2 || !cancelled_2 {
        match raw.next().await {
            Seen::Frame(Frame::Method(1, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)))) => {
                on_channel_1.push("delete-ok");
            }
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Cancel(c)))) => {
                assert_eq!(c.consumer_tag.as_str(), "ctag1");
                on_channel_1.push("cancel");
            }
            Seen::Frame(Frame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Cancel(c)))) => {
                assert_eq!(c.consumer_tag.as_str(), "ctag2");
                cancelled_2 = true;
            }
            other => panic!("expected delete-ok and cancels, got {other:?}"),
        }
    }
    assert_eq!(on_channel_1, ["delete-ok", "cancel"]);
}

//! Publishing and consuming as a RabbitMQ client sees them: properties and bodies
//! passed through, consumers and their tags, basic.get, acks / nacks / rejects
//! and their delivery tags, requeueing at the original position, recover, QoS,
//! publisher confirms and transactions. Reply codes and texts are RabbitMQ's.

mod common;

use std::collections::BTreeSet;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use common::{RawClient, Seen, TestBroker, WAIT};
use futures_util::{Stream, StreamExt};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event};
use warren_codec::protocol::{AMQPClass, basic, confirm, queue};
use warren_codec::{ContentHeader, Frame, FrameEncoder};

/// A lapin connection that also hears the exceptions the broker closes with.
struct Client {
    conn: Connection,
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl Client {
    async fn connect(broker: &TestBroker) -> Self {
        Self::connect_with(broker, "").await
    }

    async fn connect_with(broker: &TestBroker, query: &str) -> Self {
        let conn = tokio::time::timeout(
            WAIT,
            Connection::connect(&broker.uri(query), ConnectionProperties::default()),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        let events = Box::pin(conn.events_listener());
        Client { conn, events }
    }

    async fn channel(&self) -> Channel {
        self.conn.create_channel().await.expect("channel")
    }

    /// A channel in confirm mode: publishes through it are in their queues once
    /// `publish` returns.
    async fn confirming(&self) -> Channel {
        let ch = self.channel().await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        ch
    }

    /// The reply code and text of the next channel or connection exception.
    async fn exception(&mut self) -> (u16, String) {
        loop {
            let event = tokio::time::timeout(WAIT, self.events.next())
                .await
                .expect("an exception in time")
                .expect("events stream open");
            if let Event::Error(e) = event
                && let lapin::ErrorKind::ProtocolError(e) = e.kind()
            {
                return (e.get_id(), e.get_message().to_string());
            }
        }
    }

    async fn close(self) {
        self.conn.close(200, "bye".into()).await.expect("close");
    }
}

fn props() -> BasicProperties {
    BasicProperties::default()
}

async fn declare(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
}

/// Publishes to a queue through the default exchange (and waits for the confirm
/// when the channel is in confirm mode).
async fn publish_with(ch: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(!matches!(confirm, Confirmation::Nack(_)), "{confirm:?}");
}

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_with(ch, queue, body, props()).await;
}

/// Publishes bodies `[0]`, `[1]`, ... `[n-1]`.
async fn publish_n(ch: &Channel, queue: &str, n: u8) {
    for i in 0..n {
        publish(ch, queue, &[i]).await;
    }
}

async fn consume_with(
    ch: &Channel,
    queue: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> lapin::Consumer {
    ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
        .expect("consume")
}

async fn consume(ch: &Channel, queue: &str) -> lapin::Consumer {
    consume_with(ch, queue, "", BasicConsumeOptions::default()).await
}

/// The next delivery of a consumer (or of merged consumers).
async fn next<S>(consumer: &mut S) -> Delivery
where
    S: Stream<Item = lapin::Result<Delivery>> + Unpin,
{
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery")
}

async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
}

async fn get_some(ch: &Channel, queue: &str) -> BasicGetMessage {
    get(ch, queue).await.expect("a message")
}

/// Ready messages of a queue, from a passive declare on a fresh channel.
async fn ready(client: &Client, queue: &str) -> u32 {
    let ch = client.channel().await;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue exists");
    let _ = ch.close(200, "done".into()).await;
    q.message_count()
}

/// Polls until the queue has `n` ready messages.
async fn eventually_ready(client: &Client, queue: &str, n: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = ready(client, queue).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue '{queue}' has {now} ready, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ack() -> BasicAckOptions {
    BasicAckOptions::default()
}

fn ack_multiple() -> BasicAckOptions {
    BasicAckOptions { multiple: true }
}

// ---------------------------------------------------------------- publishing

fn every_property() -> BasicProperties {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    let mut headers = FieldTable::default();
    for (key, value) in [
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60_000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-6_400_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345,
            }),
        ),
        ("text", AMQPValue::LongString("héllo wörld".into())),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString("two".into()),
                AMQPValue::Boolean(false),
            ])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("void", AMQPValue::Void),
    ] {
        headers.insert(key.into(), value);
    }
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("tests".into())
        .with_cluster_id("cluster-a".into())
}

#[tokio::test]
async fn every_property_and_header_type_reaches_the_consumer_unchanged() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    let sent = every_property();
    publish_with(&ch, "q", b"{}", sent.clone()).await;
    publish_with(&ch, "q", b"{}", sent.clone()).await;
    let mut consumer = consume(&ch, "q").await;
    let d = next(&mut consumer).await;
    assert_eq!(d.properties, sent);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), &d.data[..]),
        ("", "q", &b"{}"[..])
    );
    d.ack(ack()).await.expect("ack");
    // basic.get carries them the same way.
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let d2 = next(&mut consumer).await;
    d2.nack(BasicNackOptions {
        requeue: true,
        multiple: false,
    })
    .await
    .expect("nack");
    let got = get_some(&ch, "q").await;
    assert_eq!(got.delivery.properties, sent);
    client.close().await;
}

#[tokio::test]
async fn empty_binary_and_large_bodies_arrive_intact() {
    let broker = common::start().await;
    // A small frame_max makes every body here span many frames both ways.
    for query in ["", "frame_max=4096"] {
        let client = Client::connect_with(&broker, query).await;
        let ch = client.confirming().await;
        declare(&ch, "q").await;
        let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let large: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for body in [&[][..], &binary, &large, &large[..131_072 - 8]] {
            publish(&ch, "q", body).await;
        }
        let mut consumer = consume(&ch, "q").await;
        for body in [&[][..], &binary, &large] {
            let d = next(&mut consumer).await;
            assert_eq!(d.data.len(), body.len(), "{query}");
            assert!(d.data == body, "body differs ({query})");
            d.ack(ack()).await.expect("ack");
        }
        ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        // The last one (the largest single frame at the default frame_max) via get.
        let mut last = None;
        while let Some(d) = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("ends")
        {
            last = Some(d.expect("delivery"));
        }
        if let Some(d) = last {
            d.nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .expect("nack");
        }
        let got = get_some(&ch, "q").await;
        assert!(got.delivery.data == large[..131_072 - 8], "{query}");
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
        client.close().await;
    }
}

#[tokio::test]
async fn user_id_must_be_the_connection_user() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_with(&ch, "q", b"ok", props().with_user_id("guest".into())).await;
    let bad = client.channel().await;
    let _ = bad
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"bad",
            props().with_user_id("bob".into()),
        )
        .await;
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"
                .to_owned()
        )
    );
    // The refused message went nowhere; the connection is fine.
    assert_eq!(ready(&client, "q").await, 1);
    client.close().await;
}

#[tokio::test]
async fn invalid_expiration_is_406() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_with(&ch, "q", b"ok", props().with_expiration("0".into())).await;
    for (expiration, why) in [
        ("soon", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("10s", "{leftover_string,\"s\"}"),
        ("315360000001", "{value_too_large,315360000001}"),
    ] {
        let bad = client.channel().await;
        let _ = bad
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"bad",
                props().with_expiration(expiration.into()),
            )
            .await;
        assert_eq!(
            client.exception().await,
            (
                406,
                format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {why}")
            )
        );
    }
    client.close().await;
}

// ----------------------------------------------------------------- consumers

#[tokio::test]
async fn server_generated_consumer_tags_are_amq_ctag() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q").await;
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
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q").await;
    declare(&ch, "q2").await;
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
        tokio::time::timeout(WAIT, async {
            while client.conn.status().connected() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok(),
        "a connection exception closes the connection"
    );
}

#[tokio::test]
async fn an_exclusive_consumer_keeps_others_out() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q").await;
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
        assert_eq!(amqp(&err), in_use);
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
    assert_eq!(amqp(&err), in_use);
    client.close().await;
}

fn amqp(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP exception, got {other:?}"),
    }
}

#[tokio::test]
async fn no_ack_consumers_take_messages_for_good() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 3).await;
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
        let d = next(&mut consumer).await;
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
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 2).await;
    let mut consumer = consume(&ch, "q").await;
    let first = next(&mut consumer).await;
    let second = next(&mut consumer).await;
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
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
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
        amqp(&err),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn delivery_tags_count_per_channel_from_one() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "a").await;
    declare(&pub_ch, "b").await;
    publish_n(&pub_ch, "a", 3).await;
    publish_n(&pub_ch, "b", 2).await;
    let ch1 = client.channel().await;
    let ch2 = client.channel().await;
    let mut c1 = consume(&ch1, "a").await;
    let mut c2 = consume(&ch2, "b").await;
    let tags1: Vec<u64> = [
        next(&mut c1).await,
        next(&mut c1).await,
        next(&mut c1).await,
    ]
    .iter()
    .map(|d| d.delivery_tag)
    .collect();
    let tags2: Vec<u64> = [next(&mut c2).await, next(&mut c2).await]
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

// --------------------------------------------------------------- settlements

#[tokio::test]
async fn ack_multiple_settles_up_to_the_tag() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 4).await;
    for _ in 0..4 {
        get_some(&ch, "q").await;
    }
    ch.basic_ack(3, ack_multiple()).await.expect("ack 1..=3");
    ch.close(200, "done".into()).await.expect("close");
    // Only the 4th was left unacked and comes back.
    eventually_ready(&client, "q", 1).await;
    let ch = client.channel().await;
    let back = get_some(&ch, "q").await;
    assert_eq!(
        (back.delivery.data[0], back.delivery.redelivered),
        (3, true)
    );
    client.close().await;
}

#[tokio::test]
async fn ack_of_tag_zero_with_multiple_settles_everything() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 5).await;
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..5 {
        next(&mut consumer).await;
    }
    ch.basic_ack(0, ack_multiple()).await.expect("ack all");
    ch.close(200, "done".into()).await.expect("close");
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn nack_multiple_with_requeue_redelivers_in_order() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 3).await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, false));
    }
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .expect("nack");
    for i in 0..3u8 {
        let d = next(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
        assert_eq!(d.delivery_tag, 4 + u64::from(i));
        d.ack(ack()).await.expect("ack");
    }
    // nack without requeue drops.
    publish(&ch, "q", b"drop me").await;
    let d = next(&mut consumer).await;
    d.nack(BasicNackOptions {
        multiple: false,
        requeue: false,
    })
    .await
    .expect("nack");
    ch.close(200, "done".into()).await.expect("close");
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn reject_requeues_or_drops_one() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 2).await;
    let first = get_some(&ch, "q").await;
    let second = get_some(&ch, "q").await;
    first
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
    second
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let back = get_some(&ch, "q").await;
    assert_eq!(
        (back.delivery.data[0], back.delivery.redelivered),
        (0, true)
    );
    assert_eq!(back.message_count, 0);
    assert!(get(&ch, "q").await.is_none(), "the rejected one is gone");
    client.close().await;
}

#[tokio::test]
async fn unknown_repeated_or_foreign_tags_are_406() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 3).await;
    let unknown = |tag: u64| {
        (
            406,
            format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
        )
    };

    let ch = client.channel().await;
    ch.basic_ack(42, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(42));
    // The message of an aborted channel goes back to the queue.
    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_ack(1, ack()).await.expect("sent");
    ch.basic_ack(1, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(1));

    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_reject(1, BasicRejectOptions { requeue: true })
        .await
        .expect("sent");
    ch.basic_nack(
        1,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("sent");
    assert_eq!(client.exception().await, unknown(1));

    // Tags belong to their channel.
    let owner = client.channel().await;
    let other = client.channel().await;
    get_some(&owner, "q").await;
    other.basic_ack(1, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(1));
    // A multiple ack naming an unknown tag is refused too.
    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_ack(7, ack_multiple()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(7));
    client.close().await;
}

#[tokio::test]
async fn requeue_puts_a_message_back_at_its_original_position() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 5).await;
    for i in 0..3u8 {
        assert_eq!(get_some(&ch, "q").await.delivery.data, [i]);
    }
    // Nack the 2nd (tag 2): it goes back ahead of the 4th and 5th.
    ch.basic_nack(
        2,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("nack");
    let order: Vec<(u8, bool)> = [
        get_some(&ch, "q").await,
        get_some(&ch, "q").await,
        get_some(&ch, "q").await,
    ]
    .iter()
    .map(|g| (g.delivery.data[0], g.delivery.redelivered))
    .collect();
    assert_eq!(order, [(1, true), (3, false), (4, false)]);
    client.close().await;
}

#[tokio::test]
async fn recover_requeues_everything_unacked() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish_n(&ch, "q", 3).await;
    get_some(&ch, "q").await;
    get_some(&ch, "q").await;
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .expect("recover");
    let order: Vec<(u8, bool)> = [
        get_some(&ch, "q").await,
        get_some(&ch, "q").await,
        get_some(&ch, "q").await,
    ]
    .iter()
    .map(|g| (g.delivery.data[0], g.delivery.redelivered))
    .collect();
    assert_eq!(order, [(0, true), (1, true), (2, false)]);
    // The old tags are gone with the recover; new ones continue the sequence.
    ch.basic_ack(5, ack_multiple()).await.expect("ack");
    assert_eq!(ready(&client, "q").await, 0);
    let ch = client.channel().await;
    let _ = ch
        .basic_recover(BasicRecoverOptions { requeue: false })
        .await;
    assert_eq!(
        client.exception().await,
        (540, "NOT_IMPLEMENTED - requeue=false".to_owned())
    );
}

#[tokio::test]
async fn unacked_deliveries_return_when_their_channel_or_connection_closes() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 3).await;

    // Channel close.
    let ch = client.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..3 {
        next(&mut consumer).await;
    }
    ch.close(200, "done".into()).await.expect("close channel");
    // Connection close.
    let second = Client::connect(&broker).await;
    let ch = second.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
    }
    second.close().await;

    let ch = client.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
        d.ack(ack()).await.expect("ack");
    }
    client.close().await;
}

#[tokio::test]
async fn unacked_deliveries_of_a_dead_connection_go_to_another_consumer() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "q").await;
    publish(&ch, "q", b"work").await;

    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.send_method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "raw".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: Default::default(),
        })),
    )
    .await;
    let mut delivered = false;
    while !delivered {
        match raw.next().await {
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))) => {}
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d)))) => {
                assert!(!d.redelivered);
                delivered = true;
            }
            other => panic!("expected consume-ok and a delivery, got {other:?}"),
        }
    }
    // The consumer's connection dies without connection.close.
    drop(raw);
    let mut consumer = consume(&ch, "q").await;
    let d = next(&mut consumer).await;
    assert_eq!((&d.data[..], d.redelivered), (&b"work"[..], true));
    client.close().await;
}

#[tokio::test]
async fn consumers_take_turns() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    let ch1 = client.channel().await;
    let ch2 = client.channel().await;
    let mut c1 = consume(&ch1, "q").await;
    let mut c2 = consume(&ch2, "q").await;
    publish_n(&pub_ch, "q", 6).await;
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    for _ in 0..3 {
        got1.push(next(&mut c1).await.data[0]);
        got2.push(next(&mut c2).await.data[0]);
    }
    assert!(
        (got1 == [0, 2, 4] && got2 == [1, 3, 5]) || (got1 == [1, 3, 5] && got2 == [0, 2, 4]),
        "{got1:?} {got2:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_consumer_without_credit_is_skipped() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    let slow_ch = client.channel().await;
    slow_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let fast_ch = client.channel().await;
    let mut slow = consume(&slow_ch, "q").await;
    let mut fast = consume(&fast_ch, "q").await;
    publish_n(&pub_ch, "q", 5).await;
    let held = next(&mut slow).await;
    let mut fast_got = Vec::new();
    for _ in 0..4 {
        fast_got.push(next(&mut fast).await.data[0]);
    }
    // 1 + 4 = 5: nothing else is waiting for the slow consumer.
    assert_eq!(ready(&client, "q").await, 0);
    let mut all: Vec<u8> = fast_got.clone();
    all.push(held.data[0]);
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4]);
    client.close().await;
}

// ----------------------------------------------------------------------- QoS

#[tokio::test]
async fn prefetch_one_gets_the_next_message_only_after_an_ack() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 3).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next(&mut consumer).await;
        assert_eq!(d.data, [i]);
        // Held back until this one is acked.
        assert_eq!(ready(&client, "q").await, 2 - u32::from(i));
        d.ack(ack()).await.expect("ack");
    }
    client.close().await;
}

#[tokio::test]
async fn prefetch_applies_to_consumers_created_after_it() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "before").await;
    declare(&pub_ch, "after").await;
    publish_n(&pub_ch, "before", 5).await;
    publish_n(&pub_ch, "after", 5).await;
    let ch = client.channel().await;
    let mut early = consume(&ch, "before").await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut late = consume(&ch, "after").await;
    for _ in 0..5 {
        next(&mut early).await;
    }
    next(&mut late).await;
    next(&mut late).await;
    assert_eq!(ready(&client, "before").await, 0);
    assert_eq!(ready(&client, "after").await, 3);
    client.close().await;
}

#[tokio::test]
async fn prefetch_zero_means_unlimited() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 5).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos 1");
    ch.basic_qos(0, BasicQosOptions::default())
        .await
        .expect("qos 0");
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..5 {
        next(&mut consumer).await;
    }
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn global_prefetch_limits_the_whole_channel() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "a").await;
    declare(&pub_ch, "b").await;
    publish_n(&pub_ch, "a", 5).await;
    publish_n(&pub_ch, "b", 5).await;
    let ch = client.channel().await;
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("qos");
    let ca = consume(&ch, "a").await;
    let cb = consume(&ch, "b").await;
    let mut both = futures_util::stream::select(ca, cb);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next(&mut both).await);
    }
    assert_eq!(ready(&client, "a").await + ready(&client, "b").await, 7);
    // One ack makes room for one more.
    held.remove(0).ack(ack()).await.expect("ack");
    held.push(next(&mut both).await);
    assert_eq!(ready(&client, "a").await + ready(&client, "b").await, 6);
    client.close().await;
}

#[tokio::test]
async fn global_prefetch_counts_consumer_deliveries_not_gets() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "a").await;
    declare(&pub_ch, "b").await;
    publish_n(&pub_ch, "a", 2).await;
    publish_n(&pub_ch, "b", 2).await;
    let ch = client.channel().await;
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .expect("qos");
    // An unacked basic.get does not use up the channel's prefetch...
    let _held = get_some(&ch, "a").await;
    let mut consumer = consume(&ch, "b").await;
    next(&mut consumer).await;
    // ...but the consumer's own unacked delivery does.
    assert_eq!(ready(&client, "b").await, 1);
    client.close().await;
}

#[tokio::test]
async fn consumer_and_global_prefetch_both_apply() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "a").await;
    declare(&pub_ch, "b").await;
    publish_n(&pub_ch, "a", 5).await;
    publish_n(&pub_ch, "b", 5).await;
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
        next(&mut both).await;
    }
    let (a, b) = (ready(&client, "a").await, ready(&client, "b").await);
    // Three out in all, at most two from either queue.
    assert_eq!(a + b, 7, "{a} {b}");
    assert!(a >= 3 && b >= 3, "{a} {b}");
    client.close().await;
}

#[tokio::test]
async fn prefetch_size_is_not_implemented() {
    let broker = common::start().await;
    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    // basic.qos with prefetch_size=1, prefetch_count=0, global=false.
    let payload = [0, 60, 0, 10, 0, 0, 0, 1, 0, 0, 0];
    let mut frame = vec![1, 0, 1, 0, 0, 0, payload.len() as u8];
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    raw.send_raw(&frame).await;
    let (text, class, method) = raw.expect_connection_close(540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (1)");
    assert_eq!((class, method), (60, 10));
    raw.close_ok_and_expect_eof().await;
}

// ------------------------------------------------------------------ confirms

fn publish_frames(channel: u16, routing_key: &str, mandatory: bool, body: &[u8]) -> BytesMut {
    let mut encoder = FrameEncoder::new();
    let mut out = BytesMut::new();
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: routing_key.into(),
        mandatory,
        immediate: false,
    }));
    encoder.method(channel, &publish, &mut out).expect("encode");
    let header =
        ContentHeader::from_properties(body.len() as u64, &Default::default()).expect("header");
    encoder.content(channel, &header, body, 131_072, &mut out);
    out
}

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
    let broker = common::start().await;
    let mut raw = RawClient::open(broker.addr).await;
    for channel in [1, 2] {
        raw.open_channel(channel).await;
        raw.send_method(
            channel,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
        assert!(matches!(
            raw.next().await,
            Seen::Frame(Frame::Method(
                _,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
            ))
        ));
    }
    raw.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        })),
    )
    .await;
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
        out.extend_from_slice(&publish_frames(1, key, mandatory, b"m"));
    }
    raw.send_raw(&out).await;
    read_confirms(&mut raw, 1, 6, &[3, 5]).await;
    // Channel 2 has its own sequence.
    raw.send_raw(&publish_frames(2, "q", false, b"a")).await;
    raw.send_raw(&publish_frames(2, "nowhere", false, b"b"))
        .await;
    read_confirms(&mut raw, 2, 2, &[]).await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_then_acked() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let confirm = ch
        .basic_publish(
            "".into(),
            "nowhere".into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            b"lost",
            props().with_message_id("m-1".into()),
        )
        .await
        .expect("publish")
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
    let plain = ch
        .basic_publish(
            "".into(),
            "nowhere".into(),
            BasicPublishOptions::default(),
            b"dropped",
            props(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(matches!(plain, Confirmation::Ack(None)), "{plain:?}");
    client.close().await;
}

#[tokio::test]
async fn confirm_and_tx_modes_exclude_each_other() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    let err = ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect_err("refused");
    assert_eq!(
        amqp(&err),
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
        amqp(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode".to_owned()
        )
    );
    client.close().await;
}

// ---------------------------------------------------------------------- tx

#[tokio::test]
async fn tx_publishes_appear_at_commit_and_vanish_at_rollback() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q").await;
    ch.tx_select().await.expect("tx.select");
    publish_n(&ch, "q", 3).await;
    assert_eq!(ready(&client, "q").await, 0, "invisible before commit");
    ch.tx_commit().await.expect("commit");
    assert_eq!(ready(&client, "q").await, 3);
    publish(&ch, "q", b"rolled back").await;
    ch.tx_rollback().await.expect("rollback");
    ch.tx_commit().await.expect("empty commit");
    assert_eq!(ready(&client, "q").await, 3);
    client.close().await;
}

#[tokio::test]
async fn tx_acks_apply_at_commit_and_are_undone_by_rollback() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 3).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    for _ in 0..3 {
        get_some(&ch, "q").await;
    }
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.tx_rollback().await.expect("rollback");
    // Rolled back: tag 1 is unacked again and can be acked (or nacked) anew.
    ch.basic_ack(1, ack()).await.expect("ack again");
    ch.basic_nack(
        2,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("nack");
    assert_eq!(
        ready(&client, "q").await,
        0,
        "nothing settled before commit"
    );
    ch.tx_commit().await.expect("commit");
    // Tag 2 is back in the queue; tag 3 is still out.
    assert_eq!(ready(&client, "q").await, 1);
    ch.close(200, "done".into()).await.expect("close");
    // Closing requeues tag 3; tag 1 was acked for good.
    assert_eq!(ready(&client, "q").await, 2);
    let ch = client.channel().await;
    assert_eq!(get_some(&ch, "q").await.delivery.data, [1]);
    assert_eq!(get_some(&ch, "q").await.delivery.data, [2]);
    client.close().await;
}

#[tokio::test]
async fn uncommitted_settlements_are_forgotten_when_the_channel_closes() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 3).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..3 {
        next(&mut consumer).await;
    }
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.basic_reject(2, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    // A tag settled in the open transaction is settled for this channel already.
    ch.basic_qos(0, BasicQosOptions::default())
        .await
        .expect("round trip");
    ch.close(200, "done".into()).await.expect("close");
    // Nothing was committed: all three come back, in order.
    eventually_ready(&client, "q", 3).await;
    let ch = client.channel().await;
    for i in 0..3u8 {
        let got = get_some(&ch, "q").await;
        assert_eq!((got.delivery.data[0], got.delivery.redelivered), (i, true));
    }
    client.close().await;
}

#[tokio::test]
async fn a_tag_settled_in_an_open_transaction_cannot_be_settled_again() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    let pub_ch = client.confirming().await;
    declare(&pub_ch, "q").await;
    publish_n(&pub_ch, "q", 1).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    get_some(&ch, "q").await;
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.basic_ack(1, ack()).await.expect("ack again");
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_owned()
        )
    );
    // The failed channel took its uncommitted ack with it.
    eventually_ready(&client, "q", 1).await;
    client.close().await;
}

#[tokio::test]
async fn commit_or_rollback_without_select_is_406() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let not_tx = (
        406,
        "PRECONDITION_FAILED - channel is not transactional".to_owned(),
    );
    let ch = client.channel().await;
    assert_eq!(amqp(&ch.tx_commit().await.expect_err("commit")), not_tx);
    let ch = client.channel().await;
    assert_eq!(amqp(&ch.tx_rollback().await.expect_err("rollback")), not_tx);
    client.close().await;
}

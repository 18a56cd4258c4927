//! Consumer priorities (`x-priority` on basic.consume) and single active
//! consumer (`x-single-active-consumer`), as RabbitMQ's classic queues have them.
//!
//! Every message is delivered once, so when the consumers a test expects to get
//! messages have got all of them, the others got none: no test waits for
//! something not to happen.

use lapin::options::*;
use lapin::types::{AMQPValue, LongString};
use lapin::{Channel, Consumer};

use crate::common::lapin::{Client, next_delivery, refused, table};
use crate::{declare, eventually_ready, int, publish, ready, setup};

/// basic.consume with this tag and these arguments (manual acks).
async fn consume_args(
    ch: &Channel,
    queue: &str,
    tag: &str,
    args: &[(&str, AMQPValue)],
) -> Result<Consumer, lapin::Error> {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        table(args),
    )
    .await
}

/// A consumer with this `x-priority` on a new channel with this prefetch
/// (0: unlimited).
async fn consumer(
    client: &Client,
    queue: &str,
    tag: &str,
    priority: Option<i64>,
    prefetch: u16,
) -> (Channel, Consumer) {
    let ch = client.channel().await;
    if prefetch > 0 {
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .expect("basic.qos");
    }
    let args: Vec<(&str, AMQPValue)> = priority
        .map(|p| ("x-priority", int(p)))
        .into_iter()
        .collect();
    let consumer = consume_args(&ch, queue, tag, &args)
        .await
        .unwrap_or_else(|e| panic!("consume {tag}: {e}"));
    (ch, consumer)
}

/// The next `n` deliveries as (body, redelivered), acked when `ack`.
async fn take(consumer: &mut Consumer, n: usize, ack: bool) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let d = next_delivery(consumer).await;
        got.push((String::from_utf8_lossy(&d.data).into_owned(), d.redelivered));
        if ack {
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    got
}

/// Bodies, none redelivered.
fn fresh(bodies: &[&str]) -> Vec<(String, bool)> {
    bodies.iter().map(|b| ((*b).to_owned(), false)).collect()
}

/// A queue with single active consumer.
fn sac() -> [(&'static str, AMQPValue); 1] {
    [("x-single-active-consumer", AMQPValue::Boolean(true))]
}

/// Waits until the broker has handled everything sent on `ch` so far (a reply
/// comes after the methods sent before it).
async fn sync(ch: &Channel, queue: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .expect("passive declare");
}

#[tokio::test]
async fn x_priority_must_be_an_integer() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    for (value, type_name) in [
        (AMQPValue::LongString(LongString::from("high")), "longstr"),
        (AMQPValue::Boolean(true), "bool"),
        (AMQPValue::Double(1.5), "double"),
        (AMQPValue::Timestamp(5), "timestamp"),
    ] {
        let ch = client.channel().await;
        let (code, text) = refused(consume_args(&ch, "q", "", &[("x-priority", value)]).await);
        assert_eq!(code, 406);
        assert_eq!(
            text,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': \"expected integer, got {type_name}\""
            )
        );
    }
    // Every AMQP integer type is taken, negative values too.
    let ch = client.channel().await;
    for value in [
        AMQPValue::ShortShortInt(-3),
        AMQPValue::ShortShortUInt(3),
        AMQPValue::ShortInt(-3),
        AMQPValue::ShortUInt(3),
        AMQPValue::LongInt(3),
        AMQPValue::LongUInt(3),
        AMQPValue::LongLongInt(-300_000_000_000),
    ] {
        consume_args(&ch, "q", "", &[("x-priority", value)])
            .await
            .expect("an integer priority is taken");
    }
    // The queue is looked up first.
    let (code, _) = refused(
        consume_args(
            &ch,
            "missing",
            "",
            &[("x-priority", AMQPValue::Boolean(true))],
        )
        .await,
    );
    assert_eq!(code, 404);
}

/// The highest-priority consumers get messages round-robin while they have
/// credit; a lower-priority one gets the rest only while they are blocked.
#[tokio::test]
async fn higher_priority_consumers_go_first_until_their_prefetch_is_full() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    let (a_ch, mut a) = consumer(&client, "q", "a", Some(10), 2).await;
    let (_b_ch, mut b) = consumer(&client, "q", "b", None, 0).await;
    let (_c_ch, mut c) = consumer(&client, "q", "c", Some(10), 2).await;
    for i in 0..10 {
        publish(&ch, "q", format!("m{i}").as_bytes()).await;
    }
    assert_eq!(take(&mut a, 2, false).await, fresh(&["m0", "m2"]));
    assert_eq!(take(&mut c, 2, false).await, fresh(&["m1", "m3"]));
    assert_eq!(
        take(&mut b, 6, true).await,
        fresh(&["m4", "m5", "m6", "m7", "m8", "m9"])
    );
    // Credit back on a high-priority consumer: the next message is its.
    a_ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .expect("ack all");
    sync(&a_ch, "q").await;
    publish(&ch, "q", b"m10").await;
    assert_eq!(take(&mut a, 1, true).await, fresh(&["m10"]));
}

#[tokio::test]
async fn negative_priorities_come_after_the_default() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    let (_low_ch, _low) = consumer(&client, "q", "low", Some(-5), 0).await;
    let (_default_ch, mut default) = consumer(&client, "q", "default", None, 0).await;
    for body in ["a", "b", "c"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut default, 3, true).await, fresh(&["a", "b", "c"]));
}

#[tokio::test]
async fn single_active_consumer_only_the_first_registered_gets_messages() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (_a_ch, mut a) = consumer(&client, "q", "a", None, 0).await;
    // A higher priority does not make a later consumer the active one.
    let (_b_ch, _b) = consumer(&client, "q", "b", Some(10), 0).await;
    for body in ["m1", "m2", "m3"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut a, 3, true).await, fresh(&["m1", "m2", "m3"]));
    // The waiting consumer counts as a consumer.
    let declared = ch
        .queue_declare(
            "q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("passive declare");
    assert_eq!(declared.consumer_count(), 2);
}

/// The active consumer at its prefetch limit: messages wait for it.
#[tokio::test]
async fn single_active_consumer_blocked_by_prefetch_leaves_messages_ready() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (_a_ch, mut a) = consumer(&client, "q", "a", None, 1).await;
    let (_b_ch, _b) = consumer(&client, "q", "b", Some(10), 0).await;
    for body in ["m1", "m2", "m3"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    let first = take(&mut a, 1, false).await;
    assert_eq!(first, fresh(&["m1"]));
    eventually_ready(&client, "q", 2).await;
}

/// basic.cancel of the active consumer: the next one takes over and gets what
/// is ready (RabbitMQ 4 does this at once; 3.13 only at the queue's next event).
/// The cancelled consumer's unacked messages stay with its channel.
#[tokio::test]
async fn single_active_consumer_fails_over_on_cancel() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (a_ch, mut a) = consumer(&client, "q", "a", None, 2).await;
    let (_b_ch, mut b) = consumer(&client, "q", "b", None, 0).await;
    for body in ["m1", "m2", "m3", "m4"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut a, 2, false).await, fresh(&["m1", "m2"]));
    a_ch.basic_cancel("a".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    assert_eq!(take(&mut b, 2, true).await, fresh(&["m3", "m4"]));
    // a's deliveries are still its channel's to ack.
    a_ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .expect("ack after cancel");
    sync(&a_ch, "q").await;
    assert_eq!(ready(&client, "q").await, 0);
    publish(&ch, "q", b"m5").await;
    assert_eq!(take(&mut b, 1, true).await, fresh(&["m5"]));
}

/// The active consumer's channel closes: its unacked messages are requeued and
/// reach the next consumer first, redelivered, then the rest in order.
#[tokio::test]
async fn single_active_consumer_fails_over_on_channel_close_with_redelivery() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (a_ch, mut a) = consumer(&client, "q", "a", None, 2).await;
    let (_b_ch, mut b) = consumer(&client, "q", "b", None, 0).await;
    for body in ["m1", "m2", "m3", "m4", "m5"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut a, 2, false).await, fresh(&["m1", "m2"]));
    a_ch.close(200, "bye".into()).await.expect("close");
    assert_eq!(
        take(&mut b, 5, true).await,
        [
            ("m1".to_owned(), true),
            ("m2".to_owned(), true),
            ("m3".to_owned(), false),
            ("m4".to_owned(), false),
            ("m5".to_owned(), false),
        ]
    );
}

#[tokio::test]
async fn single_active_consumer_fails_over_on_connection_close() {
    let (broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let other = Client::connect(&broker).await;
    let (_a_ch, mut a) = consumer(&other, "q", "a", None, 1).await;
    let (_b_ch, mut b) = consumer(&client, "q", "b", None, 0).await;
    publish(&ch, "q", b"m1").await;
    publish(&ch, "q", b"m2").await;
    assert_eq!(take(&mut a, 1, false).await, fresh(&["m1"]));
    eventually_ready(&client, "q", 1).await;
    other.close().await;
    assert_eq!(
        take(&mut b, 2, true).await,
        [("m1".to_owned(), true), ("m2".to_owned(), false)]
    );
}

/// When the active consumer goes, the next one is the first registered of the
/// highest priority among those left (RabbitMQ's classic queues).
#[tokio::test]
async fn single_active_consumer_next_active_is_by_priority_then_registration() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (first_ch, mut first) = consumer(&client, "q", "first", None, 0).await;
    let (_low_ch, _low) = consumer(&client, "q", "low", Some(5), 0).await;
    let (_high_ch, mut high) = consumer(&client, "q", "high", Some(10), 0).await;
    let (_later_ch, _later) = consumer(&client, "q", "later", Some(10), 0).await;
    for body in ["m1", "m2", "m3"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut first, 3, true).await, fresh(&["m1", "m2", "m3"]));
    first_ch
        .basic_cancel("first".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    for body in ["m4", "m5", "m6"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut high, 3, true).await, fresh(&["m4", "m5", "m6"]));
}

/// Cancelling a waiting consumer leaves the active one active.
#[tokio::test]
async fn cancelling_a_waiting_consumer_keeps_the_active_one() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let (_a_ch, mut a) = consumer(&client, "q", "a", None, 0).await;
    let (b_ch, _b) = consumer(&client, "q", "b", Some(10), 0).await;
    let (_c_ch, _c) = consumer(&client, "q", "c", Some(5), 0).await;
    b_ch.basic_cancel("b".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    for body in ["m1", "m2", "m3"] {
        publish(&ch, "q", body.as_bytes()).await;
    }
    assert_eq!(take(&mut a, 3, true).await, fresh(&["m1", "m2", "m3"]));
}

/// A single active consumer queue refuses exclusive consumers, with or without
/// consumers attached.
#[tokio::test]
async fn single_active_consumer_refuses_exclusive_consumers() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &sac()).await;
    let exclusive = BasicConsumeOptions {
        exclusive: true,
        ..Default::default()
    };
    let refusal = "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use".to_owned();
    let excl_ch = client.channel().await;
    let result = excl_ch
        .basic_consume("q".into(), "".into(), exclusive, Default::default())
        .await;
    assert_eq!(refused(result), (403, refusal.clone()));
    let (_a_ch, _a) = consumer(&client, "q", "a", None, 0).await;
    let excl_ch = client.channel().await;
    let result = excl_ch
        .basic_consume("q".into(), "".into(), exclusive, Default::default())
        .await;
    assert_eq!(refused(result), (403, refusal));
}

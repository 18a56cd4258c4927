//! Consuming from, getting from and purging a queue through a node it does not live on
//! (issue 18, step 5): the queue's home serves the channel of another node as its own,
//! settles come back, and what a gone channel held is redelivered.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use super::common::lapin::{confirming, next_delivery, publish_acked, refused};
use super::{channel, durable_queue, passive_queue};
use crate::nodes::Nodes;

fn number(data: &[u8]) -> u32 {
    u32::from_be_bytes(data.try_into().expect("4 bytes"))
}

async fn publish_numbers(ch: &Channel, queue: &str, numbers: std::ops::Range<u32>) {
    let persistent = BasicProperties::default().with_delivery_mode(2);
    for n in numbers {
        publish_acked(ch, "", queue, &n.to_be_bytes(), persistent.clone()).await;
    }
}

pub(crate) async fn consumer(
    ch: &Channel,
    queue: &str,
    tag: &str,
    no_ack: bool,
) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_gets_and_purges_through_any_node_reach_the_queue_where_it_lives() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare("work".into(), durable_queue(), FieldTable::default())
        .await
        .expect("queue on n1");
    publish_numbers(&ch1, "work", 0..100).await;

    // basic.get through n3: the head, with the home's count; a nack puts it back,
    // redelivered.
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let got = ch3
        .basic_get("work".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(number(&got.delivery.data), 0);
    assert_eq!(got.message_count, 99);
    assert!(!got.delivery.redelivered);
    got.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .expect("nack");
    let again = ch3
        .basic_get("work".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(number(&again.delivery.data), 0);
    assert!(again.delivery.redelivered, "nacked back at the head");
    again
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");

    // A consumer on n2 with a prefetch of 10 receives the rest in order and acks them.
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    ch2.basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut on_n2 = consumer(&ch2, "work", "n2", false).await;
    for expected in 1..100u32 {
        let d = next_delivery(&mut on_n2).await;
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // Acked at the home: nothing left there.
    let counts = super::common::eventually((0, 1), async || {
        let q = ch1
            .queue_declare("work".into(), passive_queue(), FieldTable::default())
            .await
            .expect("passive");
        (q.message_count(), q.consumer_count())
    })
    .await;
    assert_eq!(counts, (0, 1), "(ready, consumers) on the home");

    // Unacked deliveries of a channel that closes go back, to a consumer on n3.
    publish_numbers(&ch1, "work", 100..105).await;
    let mut held = Vec::new();
    for _ in 100..105 {
        held.push(number(&next_delivery(&mut on_n2).await.data));
    }
    assert_eq!(held, (100..105).collect::<Vec<u32>>());
    ch2.close(200, "bye".into()).await.expect("close");
    let mut on_n3 = consumer(&ch3, "work", "n3", false).await;
    for expected in 100..105u32 {
        let d = next_delivery(&mut on_n3).await;
        assert_eq!(number(&d.data), expected);
        assert!(
            d.redelivered,
            "{expected} came back from the closed channel"
        );
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    drop(on_n3);
    ch3.basic_cancel("n3".into(), Default::default())
        .await
        .expect("cancel");

    // queue.purge through n2 counts and removes the home's messages.
    publish_numbers(&ch1, "work", 0..7).await;
    let (_c2b, ch2) = channel(&nodes.uri(1)).await;
    let purged = ch2
        .queue_purge("work".into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(purged, 7);

    // A passive declare and a conditional delete through n2 see the home's figures.
    publish_numbers(&ch1, "work", 0..3).await;
    let q = ch2
        .queue_declare("work".into(), passive_queue(), FieldTable::default())
        .await
        .expect("passive");
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));
    let (code, text) = refused(
        ch2.queue_delete(
            "work".into(),
            QueueDeleteOptions {
                if_empty: true,
                ..QueueDeleteOptions::default()
            },
        )
        .await,
    );
    assert_eq!(code, 406, "{text}");
    assert!(
        text.contains("queue 'work' in vhost '/' not empty"),
        "{text}"
    );
    let (_c2c, ch2) = channel(&nodes.uri(1)).await;

    // A consumer on n2 is told when the queue is deleted (through n1).
    let mut on_n2 = consumer(&ch2, "work", "n2-again", true).await;
    for expected in 0..3u32 {
        assert_eq!(number(&next_delivery(&mut on_n2).await.data), expected);
    }
    ch1.queue_delete("work".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let end = tokio::time::timeout(Duration::from_secs(10), on_n2.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "consumer cancelled by the deletion: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_node_held_goes_back_to_the_queue() {
    let mut nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare("held".into(), durable_queue(), FieldTable::default())
        .await
        .expect("queue on n1");
    publish_numbers(&ch1, "held", 0..3).await;

    // A consumer on n2 takes the three without acking; then n2 dies.
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let mut on_n2 = consumer(&ch2, "held", "n2", false).await;
    for expected in 0..3u32 {
        assert_eq!(number(&next_delivery(&mut on_n2).await.data), expected);
    }
    nodes.kill(1);

    // The home notices the channel's node is gone and redelivers to a consumer on n3.
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let mut on_n3 = consumer(&ch3, "held", "n3", false).await;
    for expected in 0..3u32 {
        let d = tokio::time::timeout(Duration::from_secs(40), on_n3.next())
            .await
            .expect("redelivered in time")
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(number(&d.data), expected);
        assert!(d.redelivered);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_read_from_an_offset_through_another_node() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare(
        "events".into(),
        durable_queue(),
        super::table(&[("x-queue-type", super::text("stream"))]),
    )
    .await
    .expect("stream on n1");
    publish_numbers(&ch1, "events", 0..10).await;

    // From n2: a consumer starting at offset 4 reads 4..10 with their offsets.
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    ch2.basic_qos(5, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut reader = ch2
        .basic_consume(
            "events".into(),
            "reader".into(),
            BasicConsumeOptions::default(),
            super::table(&[("x-stream-offset", lapin::types::AMQPValue::LongLongInt(4))]),
        )
        .await
        .expect("consume the stream through n2");
    for expected in 4..10u32 {
        let d = next_delivery(&mut reader).await;
        assert_eq!(number(&d.data), expected);
        let offset = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-stream-offset").cloned());
        assert_eq!(
            offset,
            Some(lapin::types::AMQPValue::LongLongInt(i64::from(expected)))
        );
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // basic.get is refused for a stream, as on its own node.
    let (code, text) = refused(
        ch2.basic_get("events".into(), BasicGetOptions { no_ack: false })
            .await,
    );
    assert_eq!(code, 540, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_gets_basic_cancel_when_its_queues_node_goes_down() {
    let mut nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare("on-n1".into(), durable_queue(), FieldTable::default())
        .await
        .expect("declare on n1");
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let mut reader = consumer(&ch2, "on-n1", "reader", false).await;
    publish_numbers(&ch1, "on-n1", 0..1).await;
    let d = next_delivery(&mut reader).await;
    assert_eq!(number(&d.data), 0);
    d.ack(BasicAckOptions::default()).await.expect("ack");

    // The queue's node dies: the consumer on n2 is cancelled (lapin ends its stream), as
    // RabbitMQ cancels consumers of a queue whose node is down; the channel stays open.
    nodes.kill(0);
    let ended = tokio::time::timeout(Duration::from_secs(20), reader.next())
        .await
        .expect("the consumer ends in time");
    assert!(ended.is_none(), "no delivery, the stream ends: {ended:?}");
    assert!(ch2.status().connected(), "the channel stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_to_a_stopped_node_is_held_back_and_goes_on_when_it_returns() {
    let nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    ch1.queue_declare("far".into(), durable_queue(), FieldTable::default())
        .await
        .expect("declare on n1");
    let (_c2, ch2) = channel(&nodes.uri(1)).await;

    // n1 stops answering; n2's publisher (no confirms) sends well past its window.
    nodes.signal(0, "STOP");
    for n in 0..3000u32 {
        ch2.basic_publish(
            "".into(),
            "far".into(),
            lapin::options::BasicPublishOptions::default(),
            &n.to_be_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    // The channel holds the publisher back: a method after the publishes waits.
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        ch2.exchange_declare(
            "amq.direct".into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    assert!(probe.is_err(), "the channel waits for n1: {probe:?}");

    // n1 comes back: the channel goes on, and n1 took every publish.
    nodes.signal(0, "CONT");
    let count = super::common::eventually(3000, async || {
        ch1.queue_declare("far".into(), passive_queue(), FieldTable::default())
            .await
            .map(|q| q.message_count())
            .unwrap_or(0)
    })
    .await;
    assert_eq!(count, 3000);
}

//! The queue engine through its seams: a test sink instead of a channel, a
//! test host instead of a vhost, tokio's paused clock instead of waiting.

use std::sync::Arc;
use std::time::Duration;

use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable};

use super::dead_letter::Reason;
use super::testing::{TestHost, TestSink, consumer_tag, message, message_with, queue, queue_with};
use super::{Consumer, DeliveryKind, GetResult, Return, by_queue};
use crate::names::ConsumerTag;

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), value.clone());
    }
    table
}

fn consume(q: &Arc<super::Queue>, sink: &Arc<TestSink>, tag: &str, prefetch: u16) {
    let consumer = Consumer::new(ConsumerTag::from(tag), sink.clone(), false, false, prefetch);
    q.add_consumer(consumer, &Default::default(), || {})
        .expect("consumer accepted");
}

#[tokio::test]
async fn deliveries_follow_queue_order_and_prefetch_with_increasing_tags() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    for body in ["a", "b", "c"] {
        q.publish(message(body));
    }
    let sink = TestSink::new();
    consume(&q, &sink, "ctag", 2);
    assert_eq!(sink.bodies(), ["a", "b"], "prefetch 2 holds the third back");
    let tags: Vec<u64> = sink
        .delivered
        .lock()
        .expect("lock")
        .iter()
        .map(|(t, _)| t.0)
        .collect();
    assert_eq!(tags, [1, 2]);
    assert_eq!(q.stats().messages_unacknowledged, 2);
    by_queue(sink.settle(1), |queue, seqs| queue.ack(seqs));
    assert_eq!(sink.bodies(), ["a", "b", "c"], "an ack frees credit");
    let delivered = sink.delivered.lock().expect("lock");
    assert_eq!(consumer_tag(&delivered[2].1), Some("ctag"));
    assert_eq!(delivered[2].0.0, 3);
}

#[tokio::test]
async fn a_requeued_message_goes_back_to_its_place_redelivered() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    let sink = TestSink::new();
    q.publish(message("first"));
    q.publish(message("second"));
    assert_eq!(q.get(sink.as_ref(), false), GetResult::Sent);
    by_queue(sink.settle(1), |queue, seqs| {
        queue.requeue(seqs, Return::Failed)
    });
    assert_eq!(q.message_count(), 2);
    let consumer_sink = TestSink::new();
    consume(&q, &consumer_sink, "c", 0);
    assert_eq!(consumer_sink.bodies(), ["first", "second"]);
    let delivered = consumer_sink.delivered.lock().expect("lock");
    assert!(delivered[0].1.redelivered && !delivered[1].1.redelivered);
}

#[tokio::test]
async fn get_reports_empty_busy_and_the_count_left() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    let sink = TestSink::with_room(0);
    assert_eq!(q.get(sink.as_ref(), true), GetResult::Empty);
    q.publish(message("x"));
    q.publish(message("y"));
    assert_eq!(q.get(sink.as_ref(), true), GetResult::Busy);
    assert_eq!(
        q.message_count(),
        2,
        "a busy sink leaves the message queued"
    );
    sink.make_room(1);
    assert_eq!(q.get(sink.as_ref(), true), GetResult::Sent);
    let delivered = sink.delivered.lock().expect("lock");
    assert!(matches!(
        delivered[0].1.kind,
        DeliveryKind::Get { message_count: 1 }
    ));
    assert_eq!(q.stats().messages_unacknowledged, 0, "no-ack get");
}

#[tokio::test]
async fn a_full_sink_parks_its_consumer_until_it_has_room() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    let sink = TestSink::with_room(1);
    consume(&q, &sink, "c", 0);
    for body in ["1", "2", "3"] {
        q.publish(message(body));
    }
    assert_eq!(sink.bodies(), ["1"]);
    assert_eq!(q.message_count(), 2);
    sink.make_room(5);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(sink.bodies(), ["1", "2", "3"]);
}

#[tokio::test(start_paused = true)]
async fn expired_messages_are_dead_lettered_by_the_timer() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(1000)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("dlx".into()),
            ),
        ]),
    );
    q.publish(message("old"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    q.publish(message_with(
        "own-ttl",
        BasicProperties::default().with_expiration("100".into()),
    ));
    assert_eq!(q.message_count(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q.message_count(), 1, "the per-message TTL is lower");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(q.message_count(), 0);
    let dead = host.dead.lock().expect("lock");
    let bodies: Vec<&[u8]> = dead.iter().map(|(_, l)| &l.message.body[..]).collect();
    assert_eq!(bodies, [&b"own-ttl"[..], &b"old"[..]]);
    assert!(
        dead.iter()
            .all(|(dlx, l)| dlx == "dlx" && l.reason == Reason::Expired)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unused_queue_asks_its_host_to_delete_it_when_its_lease_ends() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, args(&[("x-expires", AMQPValue::LongInt(5000))]));
    tokio::time::sleep(Duration::from_millis(4000)).await;
    q.touch();
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert!(
        host.expired.lock().expect("lock").is_empty(),
        "a declare renews"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*host.expired.lock().expect("lock"), ["q"]);
}

#[tokio::test]
async fn rejects_over_the_delivery_limit_are_dead_lettered() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        ]),
    );
    q.publish(message("m"));
    let sink = TestSink::new();
    for tag in 1..=2 {
        assert_eq!(q.get(sink.as_ref(), false), GetResult::Sent);
        by_queue(sink.settle(tag), |queue, seqs| {
            queue.requeue(seqs, Return::Failed)
        });
    }
    assert_eq!(q.message_count(), 0);
    let dead = host.dead.lock().expect("lock");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1.reason, Reason::DeliveryLimit);
}

#[tokio::test]
async fn a_channel_leaving_requeues_its_deliveries_for_the_next_consumer() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
    );
    let first = TestSink::new();
    let second = TestSink::new();
    consume(&q, &first, "a", 1);
    consume(&q, &second, "b", 1);
    q.publish(message("m1"));
    q.publish(message("m2"));
    assert_eq!(first.bodies(), ["m1"]);
    assert!(
        second.bodies().is_empty(),
        "only the active consumer gets messages"
    );
    assert!(!q.release_channel(first.as_ref()));
    assert_eq!(
        second.bodies(),
        ["m1"],
        "the unacked one comes first, redelivered"
    );
    assert!(second.delivered.lock().expect("lock")[0].1.redelivered);
    assert_eq!(q.consumer_count(), 1);
}

#[tokio::test]
async fn a_persistent_backlog_past_the_memory_window_drains_in_order() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue_with(&host, FieldTable::default(), true);
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let total = 10_000;
    for i in 0..total {
        q.publish(message_with(&i.to_string(), persistent.clone()));
    }
    assert_eq!(q.message_count(), total);
    let sink = TestSink::new();
    let consumer = Consumer::new(ConsumerTag::from("c"), sink.clone(), true, false, 0);
    q.add_consumer(consumer, &Default::default(), || {})
        .expect("consumer accepted");
    let expected: Vec<String> = (0..total).map(|i| i.to_string()).collect();
    assert_eq!(sink.bodies(), expected, "paged messages come back in order");
    assert_eq!(q.message_count(), 0);
}

#[tokio::test]
async fn a_transient_backlog_past_its_window_pages_out_and_drains_in_order() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    let window = crate::durable::DEFAULT_TRANSIENT_WINDOW;
    let total = window + 5_000;
    for i in 0..total {
        q.publish(message(&i.to_string()));
    }
    let stats = q.stats();
    assert_eq!(stats.messages_ready, total as u64);
    assert_eq!(
        stats.messages_paged_out,
        (total - window) as u64,
        "without memory pressure, what is past the window is on disk only"
    );
    assert_eq!(stats.messages_ram(), window as u64);
    let sink = TestSink::new();
    let consumer = Consumer::new(ConsumerTag::from("c"), sink.clone(), true, false, 0);
    q.add_consumer(consumer, &Default::default(), || {})
        .expect("consumer accepted");
    let expected: Vec<String> = (0..total).map(|i| i.to_string()).collect();
    assert_eq!(sink.bodies(), expected, "paged messages come back in order");
    assert_eq!(q.message_count(), 0);
    assert_eq!(q.stats().messages_paged_out, 0);
}

#[tokio::test]
async fn a_short_transient_queue_stays_in_memory() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    for i in 0..crate::durable::DEFAULT_TRANSIENT_WINDOW {
        q.publish(message(&i.to_string()));
    }
    assert_eq!(q.stats().messages_paged_out, 0, "the window is not passed");
}

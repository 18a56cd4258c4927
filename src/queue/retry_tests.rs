//! Delayed retries and held messages through the queue engine's seams, on
//! tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldTable};

use super::dead_letter::Reason;
use super::testing::{TestHost, TestSink, message, message_with, queue};
use super::{Consumer, GetResult, Queue, Return, by_queue};
use crate::durable::records::wall_clock_ms;
use crate::names::ConsumerTag;

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), value.clone());
    }
    table
}

/// basic.get with ack: the body, the redelivered flag and `x-delivery-count`.
fn get(q: &Arc<Queue>, sink: &TestSink) -> Option<(String, bool, Option<i64>)> {
    if q.get(sink, false) != GetResult::Sent {
        return None;
    }
    let delivered = sink.delivered.lock().expect("lock");
    let (_, d) = delivered.last()?;
    let count = d
        .message
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    let count = match count {
        Some(AMQPValue::LongLongInt(n)) => Some(n),
        None => None,
        Some(other) => panic!("x-delivery-count of type {other:?}"),
    };
    Some((
        String::from_utf8_lossy(&d.message.body).into_owned(),
        d.redelivered,
        count,
    ))
}

/// Returns the last delivery (`tag`) to the queue for `why`.
fn give_back(sink: &TestSink, tag: u64, why: Return) {
    by_queue(sink.settle(tag), |queue, seqs| queue.requeue(seqs, why));
}

async fn advance(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn a_returned_message_waits_out_its_backoff_without_blocking_the_rest() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-delayed-retry-min", AMQPValue::LongInt(1000)),
            ("x-delayed-retry-multiplier", AMQPValue::LongInt(2)),
        ]),
    );
    let sink = TestSink::new();
    q.publish(message("a"));
    q.publish(message("b"));
    assert_eq!(get(&q, &sink), Some(("a".into(), false, None)));
    give_back(&sink, 1, Return::Failed);
    assert_eq!(
        get(&q, &sink),
        Some(("b".into(), false, None)),
        "the waiting retry blocks nothing behind it"
    );
    assert_eq!(q.message_count(), 0, "a waiting message is not ready");
    assert_eq!(q.stats().messages_delayed, 1);
    assert_eq!(q.stats().messages(), 2, "b unacked, a waiting");
    advance(999).await;
    assert_eq!(get(&q, &sink), None);
    advance(1).await;
    assert_eq!(get(&q, &sink), Some(("a".into(), true, Some(1))));
    give_back(&sink, 3, Return::Returned);
    advance(1999).await;
    assert_eq!(get(&q, &sink), None, "exponential: the second wait is 2 s");
    advance(1).await;
    assert_eq!(get(&q, &sink), Some(("a".into(), true, Some(2))));
}

#[tokio::test(start_paused = true)]
async fn the_timer_delivers_a_due_retry_to_a_waiting_consumer() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[("x-delayed-retry-min", AMQPValue::LongInt(500))]),
    );
    let sink = TestSink::new();
    let consumer = Consumer::new(ConsumerTag::from("c"), sink.clone(), false, false, 0);
    q.add_consumer(consumer, &Default::default(), || {})
        .expect("consumer");
    q.publish(message("job"));
    assert_eq!(sink.bodies(), ["job"]);
    give_back(&sink, 1, Return::Failed);
    tokio::time::sleep(Duration::from_millis(499)).await;
    assert_eq!(sink.bodies(), ["job"], "not before its due time");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(sink.bodies(), ["job", "job"], "redelivered by the timer");
}

#[tokio::test(start_paused = true)]
async fn only_the_returns_of_the_configured_type_wait() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            (
                "x-delayed-retry-type",
                AMQPValue::LongString("failed".into()),
            ),
            ("x-delayed-retry-min", AMQPValue::LongInt(1000)),
        ]),
    );
    let sink = TestSink::new();
    q.publish(message("m"));
    assert!(get(&q, &sink).is_some());
    give_back(&sink, 1, Return::Returned);
    assert_eq!(
        get(&q, &sink),
        Some(("m".into(), true, Some(1))),
        "a nack comes back at once under `failed`"
    );
    give_back(&sink, 2, Return::Failed);
    assert_eq!(get(&q, &sink), None, "a reject waits");
    advance(1000).await;
    assert_eq!(
        get(&q, &sink),
        Some(("m".into(), true, Some(2))),
        "RabbitMQ's form: the maximum defaults to the minimum"
    );
}

#[tokio::test(start_paused = true)]
async fn the_delivery_limit_dead_letters_at_once_and_defaults_to_twenty() {
    let host = Arc::new(TestHost::default());
    let dlx = ("x-dead-letter-exchange", AMQPValue::LongString("".into()));
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-delayed-retry-min", AMQPValue::LongInt(1000)),
            ("x-delivery-limit", AMQPValue::LongInt(0)),
            dlx.clone(),
        ]),
    );
    let sink = TestSink::new();
    q.publish(message("poison"));
    assert!(get(&q, &sink).is_some());
    give_back(&sink, 1, Return::Failed);
    assert_eq!(q.stats().messages_delayed, 0, "limit 0: no retry at all");
    assert_eq!(
        host.dead.lock().expect("lock")[0].1.reason,
        Reason::DeliveryLimit
    );

    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-delayed-retry-min", AMQPValue::LongInt(1)),
            ("x-delayed-retry-multiplier", AMQPValue::LongInt(1)),
            dlx,
        ]),
    );
    let sink = TestSink::new();
    q.publish(message("poison"));
    for tag in 1..=21 {
        assert!(get(&q, &sink).is_some(), "delivery {tag}");
        give_back(&sink, tag, Return::Returned);
        advance(1).await;
    }
    assert_eq!(get(&q, &sink), None, "the 21st return is over the limit");
    assert_eq!(host.dead.lock().expect("lock").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_each_delay_within_its_bounds() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(
        &host,
        args(&[
            ("x-delayed-retry-min", AMQPValue::LongInt(1000)),
            ("x-delayed-retry-multiplier", AMQPValue::LongInt(1)),
            (
                "x-delayed-retry-jitter",
                AMQPValue::LongString("equal".into()),
            ),
        ]),
    );
    let sink = TestSink::new();
    for i in 0..50 {
        q.publish(message(&i.to_string()));
    }
    for tag in 1..=50 {
        assert!(get(&q, &sink).is_some());
        give_back(&sink, tag, Return::Failed);
    }
    advance(499).await;
    assert_eq!(get(&q, &sink), None, "equal jitter waits at least half");
    advance(501).await;
    let mut back = 0;
    while get(&q, &sink).is_some() {
        back += 1;
    }
    assert_eq!(back, 50, "and at most the whole backoff");
}

#[tokio::test(start_paused = true)]
async fn a_message_with_a_delivery_time_waits_until_then() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = queue(&host, FieldTable::default());
    let sink = TestSink::new();
    let at = |ms: i64| {
        let now = i64::try_from(wall_clock_ms()).expect("ms");
        BasicProperties::default().with_headers(args(&[(
            "x-opt-delivery-time",
            AMQPValue::LongLongInt(now + ms),
        )]))
    };
    q.publish(message_with("later", at(60_000)));
    q.publish(message_with("past", at(-5_000)));
    assert_eq!(get(&q, &sink).map(|g| g.0), Some("past".into()));
    assert_eq!(get(&q, &sink), None);
    assert_eq!(q.stats().messages_delayed, 1);
    assert_eq!(q.purge(), 1, "purge takes waiting messages too");
    assert_eq!(q.stats().messages_delayed, 0);
}

#[test]
fn bad_retry_arguments_are_refused() {
    let refused = |pairs: &[(&str, AMQPValue)]| {
        super::QueueArgs::parse(&args(pairs), "queue 'q' in vhost '/'")
            .expect_err("refused")
            .reply_text()
    };
    assert!(
        refused(&[("x-delayed-retry-min", AMQPValue::LongInt(0))])
            .ends_with("'x-delayed-retry-min' for queue 'q' in vhost '/': {value_too_small,0}")
    );
    assert!(
        refused(&[(
            "x-delayed-retry-type",
            AMQPValue::LongString("often".into())
        )])
        .contains("expected disabled, all, failed or returned")
    );
    assert!(
        refused(&[(
            "x-delayed-retry-jitter",
            AMQPValue::LongString("some".into())
        )])
        .contains("expected none, full or equal")
    );
    assert!(
        refused(&[("x-delayed-retry-max", AMQPValue::LongString("1".into()))])
            .contains("expected integer")
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_messages_past_the_window_come_back_from_the_store() {
    let host = Arc::new(TestHost::default());
    let (q, _dir) = super::testing::queue_with(
        &host,
        args(&[("x-delayed-retry-min", AMQPValue::LongInt(1000))]),
        true,
    );
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let total = super::waiting::WINDOW + 500;
    for i in 0..total {
        q.publish(message_with(&i.to_string(), persistent.clone()));
    }
    let sink = TestSink::new();
    for tag in 1..=total as u64 {
        assert!(q.get(sink.as_ref(), false) == GetResult::Sent);
        give_back(&sink, tag, Return::Failed);
    }
    assert_eq!(q.stats().messages_delayed, total as u64);
    assert_eq!(
        q.classic().expect("classic").lock().waiting.in_memory(),
        super::waiting::WINDOW,
        "past the window, bodies stay on disk"
    );
    assert_eq!(q.stats().message_bytes_delayed, sink_bytes(total));
    advance(1000).await;
    let mut back = Vec::new();
    while let Some((body, redelivered, count)) = get(&q, &sink) {
        assert!(redelivered && count == Some(1), "{body}");
        back.push(body.parse::<usize>().expect("a number"));
    }
    assert_eq!(
        back,
        (0..total).collect::<Vec<_>>(),
        "every one, in queue order"
    );
}

/// Body bytes of the messages "0" .. "n-1".
fn sink_bytes(n: usize) -> u64 {
    (0..n).map(|i| i.to_string().len() as u64).sum()
}

//! Retries with backoff as clients see them: a delivery rejected or nacked
//! with requeue comes back after its backoff (RabbitMQ 4.3's
//! `x-delayed-retry-*`, LavinMQ's multiplier, Warren's jitter, or the policy
//! keys) carrying `x-delivery-count`, blocks nothing behind it, is
//! dead-lettered at the delivery limit (reason `delivery_limit`), and keeps
//! its due time and count across a restart; a message published with
//! `x-opt-delivery-time` waits until then.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::http::api_of;
use common::lapin::{Client, amqp_error, consume, next_delivery, publish_acked, table, text};
use common::{TestBroker, start, start_at};
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn declare(ch: &Channel, name: &str, durable: bool, args: FieldTable) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

/// The delivery's `x-delivery-count`, if it has one (a long, as RabbitMQ sends it).
fn delivery_count(d: &Delivery) -> Option<i64> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("x-delivery-count of type {other:?}"),
    }
}

async fn reject(d: &Delivery) {
    d.reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
}

async fn queue_json(broker: &TestBroker, name: &str) -> serde_json::Value {
    let (api, stop) = api_of(broker).await;
    let json = api.get(&format!("/api/queues/%2F/{name}")).await.json();
    stop().await;
    json
}

#[tokio::test]
async fn a_rejected_job_comes_back_after_its_backoff_with_its_attempt_count() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(
        &ch,
        "jobs",
        true,
        table(&[
            ("x-delayed-retry-min", AMQPValue::LongInt(200)),
            ("x-delayed-retry-multiplier", AMQPValue::LongInt(2)),
        ]),
    )
    .await;
    publish_acked(&ch, "", "jobs", b"job", persistent()).await;
    let mut jobs = consume(&ch, "jobs").await;
    let first = next_delivery(&mut jobs).await;
    assert_eq!((first.redelivered, delivery_count(&first)), (false, None));
    let rejected_at = Instant::now();
    reject(&first).await;
    // Another job meanwhile: the waiting retry does not hold it back.
    publish_acked(&ch, "", "jobs", b"other", persistent()).await;
    let other = next_delivery(&mut jobs).await;
    assert_eq!(&other.data[..], b"other", "delivered while the job waits");
    other.ack(BasicAckOptions::default()).await.expect("ack");
    let second = next_delivery(&mut jobs).await;
    assert!(rejected_at.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        (second.redelivered, delivery_count(&second)),
        (true, Some(1))
    );
    let nacked_at = Instant::now();
    second
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .expect("nack");
    let third = next_delivery(&mut jobs).await;
    assert!(
        nacked_at.elapsed() >= Duration::from_millis(400),
        "exponential: the second wait is 400 ms"
    );
    assert_eq!(delivery_count(&third), Some(2));
    third.ack(BasicAckOptions::default()).await.expect("ack");
    client.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn at_the_delivery_limit_the_job_is_dead_lettered_at_once() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "dead", false, FieldTable::default()).await;
    declare(
        &ch,
        "poison",
        false,
        table(&[
            ("x-delayed-retry-type", text("all")),
            ("x-delayed-retry-min", AMQPValue::LongInt(2000)),
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dead")),
        ]),
    )
    .await;
    publish_acked(&ch, "", "poison", b"bad", persistent()).await;
    let mut poison = consume(&ch, "poison").await;
    reject(&next_delivery(&mut poison).await).await;
    let again = next_delivery(&mut poison).await;
    assert_eq!(delivery_count(&again), Some(1));
    let rejected_at = Instant::now();
    reject(&again).await;
    let mut dead = consume(&ch, "dead").await;
    let d = next_delivery(&mut dead).await;
    assert!(
        rejected_at.elapsed() < Duration::from_millis(2000),
        "no backoff once over the limit"
    );
    let headers = d.properties.headers().clone().unwrap_or_default();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("x-death missing: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("x-death empty");
    };
    assert_eq!(death.inner().get("reason"), Some(&text("delivery_limit")));
    client.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_policy_turns_on_retries_and_bad_arguments_are_refused() {
    let broker = start().await;
    let (api, stop) = api_of(&broker).await;
    let bad = api
        .put(
            "/api/policies/%2F/retry",
            r#"{"pattern":"^retried","definition":{"delayed-retry-type":"all"}}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "a type without a minimum");
    let ok = api
        .put(
            "/api/policies/%2F/retry",
            r#"{"pattern":"^retried","apply-to":"queues","definition":{"delayed-retry-type":"failed","delayed-retry-min":2000}}"#,
        )
        .await;
    assert!(ok.status < 300, "{}", ok.status);
    stop().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "retried", false, FieldTable::default()).await;
    ch.basic_publish(
        "".into(),
        "retried".into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    let mut consumer = consume(&ch, "retried").await;
    let first = next_delivery(&mut consumer).await;
    first
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .expect("nack");
    let returned_at = Instant::now();
    let again = next_delivery(&mut consumer).await;
    assert!(
        returned_at.elapsed() < Duration::from_millis(2000),
        "`failed`: a nack comes back at once"
    );
    let rejected_at = Instant::now();
    reject(&again).await;
    let third = next_delivery(&mut consumer).await;
    assert!(rejected_at.elapsed() >= Duration::from_millis(2000));
    assert_eq!(delivery_count(&third), Some(2));

    let bad = ch
        .queue_declare(
            "bad".into(),
            QueueDeclareOptions::default(),
            table(&[("x-delayed-retry-multiplier", AMQPValue::LongInt(0))]),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        amqp_error(&bad),
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-delayed-retry-multiplier' for queue 'bad' in vhost '/': {value_too_small,0}".to_owned()
        )
    );
    client.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_waiting_retry_keeps_its_due_time_and_count_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let args = table(&[("x-delayed-retry-min", AMQPValue::LongInt(1500))]);
    declare(&ch, "kept", true, args.clone()).await;
    publish_acked(&ch, "", "kept", b"job", persistent()).await;
    let mut consumer = consume(&ch, "kept").await;
    let first = next_delivery(&mut consumer).await;
    // Before the reject is sent: the broker, which starts the wait when it
    // reads it, may do so before this task runs again.
    let rejected_at = Instant::now();
    reject(&first).await;
    let q = queue_json(&broker, "kept").await;
    assert_eq!(
        (&q["messages_delayed"], &q["messages_ready"], &q["messages"]),
        (&1.into(), &0.into(), &1.into()),
        "{q}"
    );
    client.close().await;
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let q = queue_json(&broker, "kept").await;
    assert_eq!(q["messages_delayed"], 1, "still waiting after the restart");
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "kept", true, args).await;
    let mut consumer = consume(&ch, "kept").await;
    let back = next_delivery(&mut consumer).await;
    assert!(
        rejected_at.elapsed() >= Duration::from_millis(1500),
        "not before its due time"
    );
    assert_eq!((back.redelivered, delivery_count(&back)), (true, Some(1)));
    client.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_message_with_a_delivery_time_waits_until_then() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare(&ch, "scheduled", false, FieldTable::default()).await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let at = |ms: i64| {
        BasicProperties::default().with_headers(table(&[(
            "x-opt-delivery-time",
            AMQPValue::LongLongInt(now_ms + ms),
        )]))
    };
    publish_acked(&ch, "", "scheduled", b"later", at(400)).await;
    publish_acked(&ch, "", "scheduled", b"now", at(-1000)).await;
    let published = Instant::now();
    let mut consumer = consume(&ch, "scheduled").await;
    let first = next_delivery(&mut consumer).await;
    assert_eq!(&first.data[..], b"now");
    let second = next_delivery(&mut consumer).await;
    assert_eq!(&second.data[..], b"later");
    assert!(published.elapsed() >= Duration::from_millis(350));
    client.close().await;
    broker.stop().await;
}

#[tokio::test]
async fn thousands_of_waiting_retries_come_back_after_a_restart() {
    // More than the waiting list keeps whole in memory (4096): the rest wait
    // on disk, before and after the restart.
    const TOTAL: usize = 5000;
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    // Long enough that none is due before the restart, however slow the
    // machine: after it they all wait out the rest on disk.
    let args = table(&[("x-delayed-retry-min", AMQPValue::LongInt(8000))]);
    declare(&ch, "many", true, args.clone()).await;
    for i in 0..TOTAL {
        ch.basic_publish(
            "".into(),
            "many".into(),
            BasicPublishOptions::default(),
            i.to_string().as_bytes(),
            persistent(),
        )
        .await
        .expect("publish");
    }
    ch.wait_for_confirms().await.expect("confirms");
    for _ in 0..TOTAL {
        let got = ch
            .basic_get("many".into(), BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("a message");
        reject(&got.delivery).await;
    }
    let waiting = common::eventually(TOTAL as u64, async || {
        queue_json(&broker, "many").await["messages_delayed"]
            .as_u64()
            .unwrap_or(0)
    })
    .await;
    assert_eq!(waiting, TOTAL as u64);
    client.close().await;
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "many", true, args).await;
    let mut consumer = consume(&ch, "many").await;
    let mut seen = vec![false; TOTAL];
    for _ in 0..TOTAL {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(delivery_count(&d), Some(1));
        let i: usize = std::str::from_utf8(&d.data)
            .expect("utf-8")
            .parse()
            .expect("a number");
        assert!(!std::mem::replace(&mut seen[i], true), "{i} twice");
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert!(seen.iter().all(|s| *s));
    client.close().await;
    broker.stop().await;
}

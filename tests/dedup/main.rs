//! Message deduplication as the `rabbitmq-message-deduplication` plugin's
//! users call it: `x-message-deduplication` on an exchange (a duplicate is not
//! routed, and is confirmed) and on a queue (a duplicate is not enqueued while
//! the original is in the queue), the `x-deduplication-header` header,
//! `x-cache-size` (eviction of the oldest), `x-cache-ttl` as an argument and
//! per message, bad arguments refused with 406, and the caches across a restart.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::lapin::{Client, counts, publish_acked, refused, table, text, try_publish};
use common::{TestBroker, start, start_at};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

/// A message carrying the deduplication id `id` (and more headers if given).
fn with_id(id: &str, more: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut headers = vec![("x-deduplication-header", text(id))];
    headers.extend_from_slice(more);
    BasicProperties::default()
        .with_headers(table(&headers))
        .with_delivery_mode(2)
}

fn dedup_args(more: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = vec![("x-message-deduplication", AMQPValue::Boolean(true))];
    args.extend_from_slice(more);
    table(&args)
}

/// A fanout exchange `x` with these arguments and a queue `q` bound to it.
async fn exchange_to_queue(ch: &Channel, x: &str, q: &str, durable: bool, args: FieldTable) {
    ch.exchange_declare(
        x.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("declare exchange");
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            durable,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare queue");
    ch.queue_bind(
        q.into(),
        x.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
}

async fn ready(client: &Client, queue: &str) -> u32 {
    counts(&client.conn, queue).await.0
}

#[tokio::test]
async fn exchange_routes_a_duplicate_nowhere_and_acks_it() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let args = dedup_args(&[("x-cache-size", AMQPValue::LongInt(10))]);
    exchange_to_queue(&ch, "dx", "dq", false, args).await;
    publish_acked(&ch, "dx", "", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "dx", "", b"2", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 1, "the duplicate is not routed");
    publish_acked(&ch, "dx", "", b"3", with_id("b", &[])).await;
    publish_acked(&ch, "dx", "", b"4", BasicProperties::default()).await;
    publish_acked(&ch, "dx", "", b"5", BasicProperties::default()).await;
    assert_eq!(
        ready(&client, "dq").await,
        4,
        "new ids and messages without one pass"
    );
    // Mandatory: the duplicate is unroutable, so it comes back, then is acked.
    let confirm = try_publish(&ch, "dx", "", true, b"6", with_id("a", &[]))
        .await
        .expect("publish");
    assert!(confirm.is_ack());
    assert!(confirm.take_message().is_some(), "returned as unroutable");
    assert_eq!(ready(&client, "dq").await, 4);
}

#[tokio::test]
async fn exchange_cache_ttl_lets_a_duplicate_through_later() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let args = dedup_args(&[
        ("x-cache-size", AMQPValue::LongInt(10)),
        ("x-cache-ttl", AMQPValue::LongInt(300)),
    ]);
    exchange_to_queue(&ch, "dx", "dq", false, args).await;
    publish_acked(&ch, "dx", "", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "dx", "", b"2", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_acked(&ch, "dx", "", b"3", with_id("a", &[])).await;
    assert_eq!(
        ready(&client, "dq").await,
        2,
        "the id expired from the cache"
    );
}

#[tokio::test]
async fn per_message_cache_ttl_overrides_the_exchanges() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    // No TTL on the exchange: ids stay until evicted, unless the message says.
    exchange_to_queue(&ch, "dx", "dq", false, dedup_args(&[])).await;
    let short = [("x-cache-ttl", AMQPValue::LongInt(300))];
    publish_acked(&ch, "dx", "", b"1", with_id("a", &short)).await;
    publish_acked(&ch, "dx", "", b"2", with_id("b", &[])).await;
    publish_acked(&ch, "dx", "", b"3", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_acked(&ch, "dx", "", b"4", with_id("a", &[])).await;
    publish_acked(&ch, "dx", "", b"5", with_id("b", &[])).await;
    assert_eq!(ready(&client, "dq").await, 3, "a expired, b did not");
}

#[tokio::test]
async fn exchange_cache_evicts_the_oldest_id_at_its_size() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let args = dedup_args(&[("x-cache-size", AMQPValue::LongInt(2))]);
    exchange_to_queue(&ch, "dx", "dq", false, args).await;
    for id in ["a", "b", "c"] {
        publish_acked(&ch, "dx", "", id.as_bytes(), with_id(id, &[])).await;
    }
    assert_eq!(ready(&client, "dq").await, 3);
    publish_acked(&ch, "dx", "", b"a again", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 4, "a was evicted by c");
    // Now a evicted b; c and a are cached.
    publish_acked(&ch, "dx", "", b"c again", with_id("c", &[])).await;
    publish_acked(&ch, "dx", "", b"a again", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 4);
}

#[tokio::test]
async fn queue_refuses_a_duplicate_while_the_original_is_in_it() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    ch.queue_declare("dq".into(), QueueDeclareOptions::default(), dedup_args(&[]))
        .await
        .expect("declare");
    publish_acked(&ch, "", "dq", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "", "dq", b"2", with_id("a", &[])).await;
    publish_acked(&ch, "", "dq", b"3", with_id("b", &[])).await;
    publish_acked(&ch, "", "dq", b"4", BasicProperties::default()).await;
    assert_eq!(ready(&client, "dq").await, 3);
    // Delivered and unacked: still in the queue.
    let got = ch
        .basic_get("dq".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"1");
    publish_acked(&ch, "", "dq", b"5", with_id("a", &[])).await;
    assert_eq!(
        ready(&client, "dq").await,
        2,
        "unacked original still counts"
    );
    got.delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    publish_acked(&ch, "", "dq", b"6", with_id("a", &[])).await;
    assert_eq!(
        ready(&client, "dq").await,
        3,
        "accepted once the original left"
    );
}

#[tokio::test]
async fn queue_accepts_the_id_again_after_a_purge_or_a_reject() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    ch.queue_declare("dq".into(), QueueDeclareOptions::default(), dedup_args(&[]))
        .await
        .expect("declare");
    publish_acked(&ch, "", "dq", b"1", with_id("a", &[])).await;
    ch.queue_purge("dq".into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    publish_acked(&ch, "", "dq", b"2", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 1);
    let got = ch
        .basic_get("dq".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    publish_acked(&ch, "", "dq", b"3", with_id("a", &[])).await;
    assert_eq!(ready(&client, "dq").await, 1);
}

/// Stops `broker` (a clean shutdown) and starts another on its data directory.
async fn restart(broker: TestBroker, dir: &std::path::Path) -> TestBroker {
    broker.stop().await;
    start_at(dir, |_| {}).await
}

#[tokio::test]
async fn caches_survive_a_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let broker = start_at(data.path(), |_| {}).await;
    {
        let client = Client::connect(&broker).await;
        let ch = client.confirming().await;
        let args = dedup_args(&[("x-cache-size", AMQPValue::LongInt(100))]);
        exchange_to_queue(&ch, "dx", "xq", true, args).await;
        ch.queue_declare(
            "dq".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            dedup_args(&[]),
        )
        .await
        .expect("declare");
        publish_acked(&ch, "dx", "", b"1", with_id("a", &[])).await;
        publish_acked(&ch, "", "dq", b"1", with_id("q", &[])).await;
        client.close().await;
    }
    let broker = restart(broker, data.path()).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    assert_eq!(ready(&client, "xq").await, 1);
    assert_eq!(ready(&client, "dq").await, 1);
    publish_acked(&ch, "dx", "", b"2", with_id("a", &[])).await;
    publish_acked(&ch, "", "dq", b"2", with_id("q", &[])).await;
    assert_eq!(
        ready(&client, "xq").await,
        1,
        "the exchange's cache came back"
    );
    assert_eq!(
        ready(&client, "dq").await,
        1,
        "the queue's cache was rebuilt"
    );
    publish_acked(&ch, "dx", "", b"3", with_id("new", &[])).await;
    assert_eq!(ready(&client, "xq").await, 2);
}

#[tokio::test]
async fn bad_arguments_are_refused_with_406() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let cases: [(&str, AMQPValue, &str); 3] = [
        (
            "x-cache-size",
            AMQPValue::LongInt(0),
            "'x-cache-size' must be an integer greater than 0",
        ),
        (
            "x-cache-ttl",
            AMQPValue::LongString("soon".into()),
            "'x-cache-ttl' must be an integer greater than 0",
        ),
        (
            "x-cache-persistence",
            text("tape"),
            "'x-cache-persistence' must be either 'disk' or 'memory'",
        ),
    ];
    for (key, value, why) in cases {
        let ch = client.channel().await;
        let result = ch
            .exchange_declare(
                "bad".into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                dedup_args(&[(key, value)]),
            )
            .await;
        let (code, message) = refused(result);
        assert_eq!(code, 406, "{message}");
        assert!(message.contains(why), "{message}");
    }
    let ch = client.channel().await;
    let result = ch
        .queue_declare(
            "bad".into(),
            QueueDeclareOptions::default(),
            table(&[("x-message-deduplication", text("yes"))]),
        )
        .await;
    let (code, message) = refused(result);
    assert_eq!(code, 406, "{message}");
    assert!(message.contains("'x-message-deduplication' must be a boolean"));
}

#[tokio::test]
async fn the_plugins_exchange_type_routes_as_fanout_and_deduplicates() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let kind = ExchangeKind::Custom("x-message-deduplication".into());
    // As the plugin's own example: the size as a string.
    let args = table(&[("x-cache-size", text("5"))]);
    ch.exchange_declare(
        "px".into(),
        kind.clone(),
        ExchangeDeclareOptions::default(),
        args,
    )
    .await
    .expect("declare");
    ch.queue_declare(
        "pq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare queue");
    ch.queue_bind(
        "pq".into(),
        "px".into(),
        "some key".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    publish_acked(&ch, "px", "another key", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "px", "", b"2", with_id("a", &[])).await;
    publish_acked(&ch, "px", "", b"3", with_id("b", &[])).await;
    assert_eq!(
        ready(&client, "pq").await,
        2,
        "fanout, and the duplicate dropped"
    );
    // The plugin requires x-cache-size on its exchange type.
    let ch = client.channel().await;
    let result = ch
        .exchange_declare(
            "nosize".into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    let (code, message) = refused(result);
    assert_eq!(code, 406, "{message}");
    assert!(message.contains("Missing or invalid argument, 'x-cache-size'"));
}

#[tokio::test]
async fn a_policy_turns_queue_deduplication_on() {
    let broker = start().await;
    let (api, _stop) = common::http::api_of(&broker).await;
    let bad = r#"{"pattern": "^pq", "apply-to": "queues", "definition": {"x-message-deduplication": "yes"}}"#;
    let r = api.put("/api/policies/%2F/bad", bad).await;
    assert_eq!(r.status, 400);
    let reason = r.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("\"x-message-deduplication\" must be a boolean"),
        "{reason}"
    );
    let good = r#"{"pattern": "^pq", "apply-to": "queues", "definition": {"x-message-deduplication": true, "x-cache-size": 10}}"#;
    let r = api.put("/api/policies/%2F/dedup", good).await;
    assert!(r.status < 300, "{}", r.status);
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    ch.queue_declare(
        "pq1".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    publish_acked(&ch, "", "pq1", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "", "pq1", b"2", with_id("a", &[])).await;
    assert_eq!(ready(&client, "pq1").await, 1);
    let q = api.get("/api/queues/%2f/pq1").await.json();
    assert_eq!(q["message_deduplication_cache_info"]["size"], 10, "{q}");
    // The policy gone, duplicates are enqueued again.
    let r = api.delete("/api/policies/%2F/dedup").await;
    assert!(r.status < 300, "{}", r.status);
    publish_acked(&ch, "", "pq1", b"3", with_id("a", &[])).await;
    assert_eq!(ready(&client, "pq1").await, 2);
}

#[tokio::test]
async fn the_api_shows_the_cache_in_use() {
    let broker = start().await;
    let (api, _stop) = common::http::api_of(&broker).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let args = dedup_args(&[("x-cache-size", AMQPValue::LongInt(7))]);
    exchange_to_queue(&ch, "dx", "dq", false, args).await;
    ch.queue_declare("qq".into(), QueueDeclareOptions::default(), dedup_args(&[]))
        .await
        .expect("declare");
    publish_acked(&ch, "dx", "", b"1", with_id("a", &[])).await;
    publish_acked(&ch, "", "qq", b"1", with_id("a", &[])).await;
    let x = api.get("/api/exchanges/%2f/dx").await.json();
    assert_eq!(x["cache_info"]["entries"], 1, "{x}");
    assert_eq!(x["cache_info"]["size"], 7, "{x}");
    let q = api.get("/api/queues/%2f/qq").await.json();
    assert_eq!(q["message_deduplication_cache_info"]["entries"], 1, "{q}");
    let plain = api.get("/api/queues/%2f/dq").await.json();
    assert!(plain.get("message_deduplication_cache_info").is_none());
}

#[tokio::test]
async fn after_a_restart_expired_and_departed_ids_pass_again() {
    let data = tempfile::tempdir().expect("data dir");
    let broker = start_at(data.path(), |_| {}).await;
    {
        let client = Client::connect(&broker).await;
        let ch = client.confirming().await;
        let args = dedup_args(&[("x-cache-ttl", AMQPValue::LongInt(300))]);
        exchange_to_queue(&ch, "dx", "xq", true, args).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("dq".into(), durable, dedup_args(&[]))
            .await
            .expect("declare");
        publish_acked(&ch, "dx", "", b"1", with_id("a", &[])).await;
        publish_acked(&ch, "", "dq", b"1", with_id("gone", &[])).await;
        publish_acked(&ch, "", "dq", b"2", with_id("kept", &[])).await;
        let got = ch
            .basic_get("dq".into(), BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("a message");
        got.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        client.close().await;
    }
    let broker = restart(broker, data.path()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    publish_acked(&ch, "dx", "", b"2", with_id("a", &[])).await;
    assert_eq!(ready(&client, "xq").await, 2, "the id expired meanwhile");
    publish_acked(&ch, "", "dq", b"3", with_id("gone", &[])).await;
    publish_acked(&ch, "", "dq", b"4", with_id("kept", &[])).await;
    assert_eq!(
        ready(&client, "dq").await,
        2,
        "acked before the restart: passes"
    );
}

#[tokio::test]
async fn queue_deduplicates_against_messages_paged_to_disk() {
    let data = tempfile::tempdir().expect("data dir");
    let broker = start_at(data.path(), |_| {}).await;
    // Past the queue's memory window (4096 messages) persistent messages stay on disk only.
    const COUNT: usize = 5000;
    {
        let client = Client::connect(&broker).await;
        let ch = client.confirming().await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("dq".into(), durable, dedup_args(&[]))
            .await
            .expect("declare");
        let mut confirms = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    "dq".into(),
                    BasicPublishOptions::default(),
                    b"m",
                    with_id(&format!("id-{i}"), &[]),
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.expect("confirm").is_ack());
        }
        let last = format!("id-{}", COUNT - 1);
        publish_acked(&ch, "", "dq", b"again", with_id(&last, &[])).await;
        assert_eq!(ready(&client, "dq").await, COUNT as u32);
        client.close().await;
    }
    let broker = restart(broker, data.path()).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    for i in [0, COUNT - 1] {
        publish_acked(&ch, "", "dq", b"again", with_id(&format!("id-{i}"), &[])).await;
    }
    assert_eq!(
        ready(&client, "dq").await,
        COUNT as u32,
        "rebuilt from disk too"
    );
}

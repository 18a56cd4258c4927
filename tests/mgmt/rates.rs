//! Message rates and lag as RabbitMQ's API reports them: `message_stats`
//! with `*_details.rate` on queues, exchanges, channels, connections and the
//! overview, the `msg_rates_age` / `lengths_age` samples, the queue length
//! details, `head_message_timestamp`, the age of the oldest message and
//! consumer capacity. Samples are taken by hand at chosen times, so the
//! expected rates are exact.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::Value;

use crate::common::lapin::{Client, consume, declare_queue, next_delivery};

/// Publishes `n` messages to queue `q` through the default exchange and
/// waits for their confirms.
async fn publish_n(ch: &lapin::Channel, q: &str, n: usize, properties: BasicProperties) {
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            i.to_string().as_bytes(),
            properties.clone(),
        )
        .await
        .expect("publish");
    }
    ch.wait_for_confirms().await.expect("confirms");
}

/// A broker whose own statistics ticker stays out of the way (an hour), so
/// that the samples are only those the test takes.
async fn start() -> (crate::common::TestBroker, crate::common::http::Http) {
    super::start_with(|c| c.collect_statistics_interval = 3_600_000).await
}

fn rate(json: &Value, path: &[&str]) -> f64 {
    let mut v = json;
    for key in path {
        v = &v[*key];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {json}"))
}

#[tokio::test]
async fn rates_on_every_object_follow_the_samples() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "rated").await;
    let b = &broker.broker;
    b.sample_statistics(1_000_000);
    publish_n(&ch, "rated", 50, BasicProperties::default()).await;
    // 50 messages in the 5 s between two samples: 10 per second.
    b.sample_statistics(1_005_000);

    let q = api.get("/api/queues/%2F/rated").await.json();
    assert_eq!(q["message_stats"]["publish"], 50, "{q}");
    assert_eq!(
        rate(&q, &["message_stats", "publish_details", "rate"]),
        10.0
    );
    assert_eq!(rate(&q, &["messages_details", "rate"]), 10.0);
    assert_eq!(rate(&q, &["messages_ready_details", "rate"]), 10.0);
    assert_eq!(rate(&q, &["messages_unacknowledged_details", "rate"]), 0.0);
    let x = api.get("/api/exchanges/%2F/amq.default").await.json();
    assert_eq!(x["message_stats"]["publish_in"], 50, "{x}");
    assert_eq!(
        rate(&x, &["message_stats", "publish_out_details", "rate"]),
        10.0
    );
    let channels = api.get("/api/channels").await.json();
    let channel = &channels[0];
    assert_eq!(channel["message_stats"]["publish"], 50);
    assert_eq!(channel["message_stats"]["confirm"], 50);
    assert_eq!(
        rate(channel, &["message_stats", "confirm_details", "rate"]),
        10.0
    );
    let connections = api.get("/api/connections").await.json();
    assert_eq!(
        rate(
            &connections[0],
            &["message_stats", "publish_details", "rate"]
        ),
        10.0
    );
    let overview = api.get("/api/overview").await.json();
    assert_eq!(
        rate(&overview, &["message_stats", "publish_details", "rate"]),
        10.0
    );
    assert_eq!(
        rate(&overview, &["queue_totals", "messages_details", "rate"]),
        10.0
    );

    // Consume them all (acks) in the next 5 s.
    let consumer_ch = client.channel().await;
    let mut consumer = consume(&consumer_ch, "rated").await;
    for _ in 0..50 {
        next_delivery(&mut consumer)
            .await
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    let drained = crate::common::eventually(0, async || {
        api.get("/api/queues/%2F/rated").await.json()["messages"]
            .as_u64()
            .unwrap_or(99)
    })
    .await;
    assert_eq!(drained, 0);
    b.sample_statistics(1_010_000);
    let q = api
        .get(
            "/api/queues/%2F/rated?msg_rates_age=10&msg_rates_incr=5&lengths_age=10&lengths_incr=5",
        )
        .await
        .json();
    let stats = &q["message_stats"];
    assert_eq!(stats["deliver"], 50);
    assert_eq!(stats["deliver_get"], 50);
    assert_eq!(stats["ack"], 50);
    assert_eq!(rate(stats, &["deliver_get_details", "rate"]), 10.0);
    assert_eq!(rate(stats, &["ack_details", "rate"]), 10.0);
    assert_eq!(rate(stats, &["publish_details", "rate"]), 0.0);
    assert_eq!(rate(&q, &["messages_details", "rate"]), -10.0);
    // Samples newest first, every 5 s over the last 10 s.
    let samples: Vec<(u64, u64)> = stats["publish_details"]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            (
                s["sample"].as_u64().expect("sample"),
                s["timestamp"].as_u64().expect("timestamp"),
            )
        })
        .collect();
    assert_eq!(samples, [(50, 1_010_000), (50, 1_005_000), (0, 1_000_000)]);
    assert_eq!(rate(stats, &["publish_details", "avg_rate"]), 5.0);
    let lengths = q["messages_details"]["samples"]
        .as_array()
        .expect("samples");
    assert_eq!(lengths[1]["sample"], 50, "{q}");
    client.close().await;
}

#[tokio::test]
async fn the_oldest_message_shows_its_age_and_timestamp() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "lagging").await;
    let q = api.get("/api/queues/%2F/lagging").await.json();
    assert_eq!(q["head_message_age_seconds"], 0, "empty: {q}");
    assert!(q.get("head_message_timestamp").is_none());
    publish_n(
        &ch,
        "lagging",
        1,
        BasicProperties::default().with_timestamp(1_700_000_000),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let q = api.get("/api/queues/%2F/lagging").await.json();
    assert_eq!(q["head_message_timestamp"], 1_700_000_000_u64);
    let age = q["head_message_age_seconds"].as_f64().expect("age");
    assert!((1.2..30.0).contains(&age), "{age}");
    let metrics = api.get("/metrics/per-object").await.body;
    assert!(
        metrics.contains("warren_queue_head_message_age_seconds{vhost=\"/\",queue=\"lagging\"}"),
        "{metrics}"
    );
    client.close().await;
}

#[tokio::test]
async fn consumer_capacity_is_the_share_of_samples_consumers_kept_up() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "busy").await;
    let b = &broker.broker;
    let capacity = async || {
        api.get("/api/queues/%2F/busy").await.json()["consumer_capacity"]
            .as_f64()
            .expect("capacity")
    };
    b.sample_statistics(1_000_000);
    assert_eq!(capacity().await, 0.0, "no consumer");
    // A consumer with prefetch 1 that never acks: one delivered, the rest wait.
    let slow = client.channel().await;
    slow.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let _consumer = slow
        .basic_consume(
            "busy".into(),
            "slow".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    b.sample_statistics(1_001_000);
    publish_n(&ch, "busy", 3, BasicProperties::default()).await;
    b.sample_statistics(1_002_000);
    b.sample_statistics(1_003_000);
    // Samples with the consumer: one kept up (nothing ready), two blocked.
    let c = capacity().await;
    assert!((c - 0.25).abs() < 1e-9, "{c}");
    client.close().await;
}

#[tokio::test]
async fn the_ticker_reports_the_publish_rate_it_saw() {
    // Samples every 500 ms from the broker's own ticker.
    let (broker, api) = super::start_with(|c| c.collect_statistics_interval = 500).await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "steady").await;
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    let publisher = tokio::spawn(async move {
        // About 100 messages a second for 4 s, noting when each went out, so
        // that the expected rate between any two instants is known however
        // the machine schedules this task.
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        let mut log = Vec::new();
        let started = tokio::time::Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            ticks.tick().await;
            ch.basic_publish(
                "".into(),
                "steady".into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .expect("publish");
            log.push(wall_ms());
        }
        log
    });
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let q = api
        .get("/api/queues/%2F/steady?msg_rates_age=2&msg_rates_incr=1")
        .await
        .json();
    let log = publisher.await.expect("publisher");
    let details = &q["message_stats"]["publish_details"];
    let samples = details["samples"].as_array().expect("samples");
    let at = |i: usize| samples[i]["timestamp"].as_u64().expect("timestamp");
    let (newest, oldest) = (at(0), at(samples.len() - 1));
    assert!(newest > oldest, "{details}");
    let sent_by = |t: u64| log.iter().filter(|&&sent| sent <= t).count() as f64;
    let expected = (sent_by(newest) - sent_by(oldest)) * 1000.0 / (newest - oldest) as f64;
    let reported = rate(details, &["avg_rate"]);
    assert!(
        expected > 0.0 && (reported - expected).abs() <= expected * 0.2,
        "reported {reported}/s, published {expected}/s between the samples"
    );
    client.close().await;
}

#[tokio::test]
async fn the_keda_scalers_queries_get_what_they_read() {
    // KEDA's RabbitMQ scaler (protocol http): GET /api/queues/{vhost}/{queue},
    // or with useRegex `?page=1&use_regex=true&pagination=false&name=..&page_size=..`
    // (a page: `items`, `page_count`); it reads `messages` and
    // `message_stats.publish_details.rate`.
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    for q in ["orders.eu", "orders.us", "billing"] {
        declare_queue(&ch, q).await;
    }
    let b = &broker.broker;
    b.sample_statistics(2_000_000);
    publish_n(&ch, "orders.eu", 20, BasicProperties::default()).await;
    b.sample_statistics(2_001_000);
    let one = api.get("/api/queues/%2F/orders.eu").await.json();
    assert_eq!(one["messages"], 20);
    assert_eq!(
        rate(&one, &["message_stats", "publish_details", "rate"]),
        20.0
    );
    let page = api
        .get("/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eorders%5C.&page_size=100")
        .await
        .json();
    assert_eq!(page["page_count"], 1, "{page}");
    let items = page["items"].as_array().expect("items");
    let names: Vec<&str> = items.iter().filter_map(|q| q["name"].as_str()).collect();
    assert_eq!(names, ["orders.eu", "orders.us"]);
    assert_eq!(items[0]["message_stats"]["publish_details"]["rate"], 20.0);
    assert_eq!(items[1]["messages"], 0);
    client.close().await;
}

#[tokio::test]
async fn an_empty_get_is_counted_on_its_channel_and_the_overview() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "empty").await;
    for _ in 0..2 {
        let got = ch
            .basic_get("empty".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get");
        assert!(got.is_none());
    }
    let channels = api.get("/api/channels").await.json();
    assert_eq!(channels[0]["message_stats"]["get_empty"], 2, "{channels}");
    let overview = api.get("/api/overview").await.json();
    assert_eq!(overview["message_stats"]["get_empty"], 2);
    client.close().await;
}

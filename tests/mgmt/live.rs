//! Connections, channels and consumers as the API lists them, and closing a
//! connection from the API.

use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use serde_json::Value;

use super::common::eventually;
use super::common::lapin::{Client, declare_queue};
use super::start;

/// An encoded path segment.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn connections_channels_and_consumers_are_listed_and_closable() {
    let (broker, api) = start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "watched").await;
    // Kept alive: lapin cancels a consumer it drops.
    let _consumer = ch
        .basic_consume(
            "watched".into(),
            "tag-1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let connections = api.get("/api/connections").await.json();
    let conn = &connections[0];
    assert_eq!(conn["user"], "guest");
    assert_eq!(conn["vhost"], "/");
    assert_eq!(conn["protocol"], "AMQP 0-9-1");
    assert_eq!(conn["channels"], 1);
    assert_eq!(conn["client_properties"]["product"], "lapin");
    let name = conn["name"].as_str().expect("name").to_owned();
    assert!(name.contains(" -> "), "{name}");

    let channels = api.get("/api/channels").await.json();
    assert_eq!(channels[0]["number"], 1);
    assert_eq!(channels[0]["consumer_count"], 1);
    assert_eq!(channels[0]["connection_details"]["name"], name.as_str());

    let consumers = api.get("/api/consumers").await.json();
    assert_eq!(consumers[0]["consumer_tag"], "tag-1");
    assert_eq!(consumers[0]["queue"]["name"], "watched");
    assert_eq!(
        consumers[0]["channel_details"]["connection_name"],
        name.as_str()
    );
    assert_eq!(
        api.get("/api/queues/%2F/watched").await.json()["consumers"],
        1
    );
    let overview = api.get("/api/overview").await.json();
    assert_eq!(overview["object_totals"]["connections"], 1);
    assert_eq!(overview["object_totals"]["consumers"], 1);

    assert_eq!(
        api.delete(&format!("/api/connections/{}", encode(&name)))
            .await
            .status,
        204
    );
    assert_eq!(
        client.exception().await,
        (
            320,
            "CONNECTION_FORCED - Closed via management plugin".into()
        )
    );
    let left = eventually(0, async || {
        api.get("/api/connections")
            .await
            .json()
            .as_array()
            .map_or(99, Vec::len)
    })
    .await;
    assert_eq!(left, 0);
    assert_eq!(api.get("/api/consumers").await.json(), Value::Array(vec![]));
    assert_eq!(
        api.delete(&format!("/api/connections/{}", encode(&name)))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_alarms_health_check_reports_a_memory_alarm() {
    let (broker, http) = start().await;
    assert_eq!(http.get("/api/health/checks/alarms").await.status, 200);
    // Any resident memory is over a 1-byte limit.
    broker.broker.alarms.set_memory_limit(1);
    let status = eventually(503, async || {
        http.get("/api/health/checks/alarms").await.status
    })
    .await;
    assert_eq!(status, 503);
    let body = http.get("/api/health/checks/alarms").await.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["alarms"][0]["resource"], "memory");
    let nodes = http.get("/api/nodes").await.json();
    assert_eq!(nodes[0]["mem_alarm"], true);
    broker.broker.alarms.set_memory_limit(u64::MAX);
    let status = eventually(200, async || {
        http.get("/api/health/checks/alarms").await.status
    })
    .await;
    assert_eq!(status, 200);
}

/// `x-queue-type`: `quorum` declares a working queue that the API reports as
/// what it is (classic, the argument kept); `stream` a stream, reported as one.
#[tokio::test]
async fn queue_types_as_declared_and_as_they_are() {
    use lapin::BasicProperties;
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};

    use super::common::lapin::{table, text};

    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(
        "orders.q".into(),
        durable,
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("quorum declares");
    ch.basic_publish(
        "".into(),
        "orders.q".into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    let q = api.get("/api/queues/%2F/orders.q").await.json();
    assert_eq!(q["type"], "classic");
    assert_eq!(q["arguments"]["x-queue-type"], "quorum");
    let messages = eventually(serde_json::json!(1), async || {
        api.get("/api/queues/%2F/orders.q").await.json()["messages"].clone()
    })
    .await;
    assert_eq!(messages, 1, "a quorum-declared queue takes messages");

    ch.queue_declare(
        "events.s".into(),
        durable,
        table(&[("x-queue-type", text("stream"))]),
    )
    .await
    .expect("stream declares");
    let s = api.get("/api/queues/%2F/events.s").await.json();
    assert_eq!(s["type"], "stream", "{s}");
    assert_eq!(s["arguments"]["x-queue-type"], "stream");
}

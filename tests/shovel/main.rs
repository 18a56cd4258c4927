//! Dynamic shovels (RabbitMQ's `shovel` runtime parameters) end to end. Here:
//! moving messages between queues of one Warren (properties, headers,
//! `src-exchange`, `src-delete-after`, `on-confirm`) and the helpers the other
//! files share; `api.rs`: declared, validated, listed and deleted over the
//! management API, kept across a restart and in definitions; `remote.rs`:
//! between two Warrens, through a destination restart and over amqps;
//! `rabbitmq.rs`: draining a real RabbitMQ node into Warren.

// Shared with the TLS suite, which uses all of it.
#[allow(dead_code)]
#[path = "../tls/certs.rs"]
mod certs;
#[path = "../common/mod.rs"]
mod common;

mod api;
mod rabbitmq;
mod remote;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::TestBroker;
use common::http::Http;
use common::lapin::{confirming, connect, declare_queue, publish_acked, table, text};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A broker on `dir` (a fresh one when `None`) with its management API.
async fn start_api(dir: Option<&Path>) -> (TestBroker, Http) {
    let (broker, http, stop) = start_api_stoppable(dir).await;
    // The API lives as long as the test.
    std::mem::forget(stop);
    (broker, http)
}

/// [`start_api`], with the API's stop: a restart needs the API gone too, as
/// it holds the broker (and so its data directory).
async fn start_api_stoppable(dir: Option<&Path>) -> (TestBroker, Http, DropGuard) {
    let broker = match dir {
        Some(dir) => common::start_at(dir, |_| {}).await,
        None => common::start().await,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(warren::mgmt::serve(
        listener,
        broker.broker.clone(),
        stop.clone().cancelled_owned(),
    ));
    (broker, Http::new(addr, "guest", "guest"), stop.drop_guard())
}

/// PUT a shovel; asserts 201 or 204.
async fn put_shovel(api: &Http, name: &str, value: Value) {
    let r = api
        .put(
            &format!("/api/parameters/shovel/%2F/{name}"),
            &json!({"value": value}).to_string(),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 204,
        "PUT shovel {name}: {} {}",
        r.status,
        r.body
    );
}

/// The shovel's `/api/shovels` entry, if listed.
async fn shovel_status(api: &Http, name: &str) -> Option<Value> {
    let all = api.get("/api/shovels/%2F").await.json();
    all.as_array()?.iter().find(|s| s["name"] == name).cloned()
}

async fn state_of(api: &Http, name: &str) -> String {
    shovel_status(api, name)
        .await
        .and_then(|s| s["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Publishes `ids` persistently to `queue` with confirms.
async fn publish_ids(ch: &Channel, queue: &str, ids: std::ops::Range<u32>) {
    for i in ids {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(i.to_string().into());
        publish_acked(ch, "", queue, format!("m{i}").as_bytes(), props).await;
    }
}

/// Reads every message of `queue` (basic.get + ack) until it stays empty
/// for a moment; returns the message ids.
async fn drain_ids(conn: &Connection, queue: &str) -> Vec<String> {
    let ch = conn.create_channel().await.expect("channel");
    let mut ids = Vec::new();
    let mut idle = 0;
    while idle < 10 {
        match ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("get")
        {
            Some(m) => {
                idle = 0;
                ids.push(
                    m.properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                );
                m.ack(BasicAckOptions::default()).await.expect("ack");
            }
            None => {
                idle += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    ids
}

/// Ready messages in `queue` (0 while it does not exist yet).
async fn ready(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(q) => {
            let _ = ch.close(200, "done".into()).await;
            q.message_count()
        }
        Err(_) => 0,
    }
}

#[tokio::test]
async fn moves_messages_with_properties_and_headers_intact() {
    let (broker, api) = start_api(None).await;
    let conn = connect(&broker.uri("")).await;
    let ch = confirming(&conn).await;
    declare_queue(&ch, "src").await;
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("corr".into())
        .with_message_id("m-1".into())
        .with_priority(3)
        .with_delivery_mode(2)
        .with_headers(table(&[
            ("colour", text("blue")),
            ("n", AMQPValue::LongInt(7)),
        ]));
    for _ in 0..20 {
        publish_acked(&ch, "", "src", b"payload", props.clone()).await;
    }
    put_shovel(
        &api,
        "move",
        json!({"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://",
               "dest-queue": "dst", "dest-add-forward-headers": true,
               "dest-add-timestamp-header": true}),
    )
    .await;
    assert_eq!(
        common::eventually(20, async || ready(&conn, "dst").await).await,
        20
    );
    assert_eq!(ready(&conn, "src").await, 0);
    let m = ch
        .basic_get("dst".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(m.data, b"payload");
    let p = &m.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        p.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr")
    );
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m-1"));
    assert_eq!(*p.priority(), Some(3));
    assert_eq!(*p.delivery_mode(), Some(2));
    let headers = p.headers().clone().expect("headers");
    let headers = headers.inner();
    assert_eq!(headers.get("colour"), Some(&text("blue")));
    assert_eq!(headers.get("n"), Some(&AMQPValue::LongInt(7)));
    assert!(matches!(
        headers.get("x-shovelled-timestamp"),
        Some(AMQPValue::LongLongInt(_))
    ));
    let Some(AMQPValue::FieldArray(hops)) = headers.get("x-shovelled") else {
        panic!("x-shovelled missing: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(hop)) = hops.as_slice().first() else {
        panic!("x-shovelled entry: {hops:?}");
    };
    let field = |k: &str| match hop.inner().get(k) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(field("shovel-name"), "move");
    assert_eq!(field("shovel-vhost"), "/");
    assert_eq!(field("shovel-type"), "dynamic");
    assert_eq!(field("src-queue"), "src");
    assert_eq!(field("dest-queue"), "dst");
    assert_eq!(field("src-uri"), "amqp://");
    // The status as rabbitmq_shovel_management reports it.
    let s = shovel_status(&api, "move").await.expect("listed");
    assert_eq!(s["state"], "running");
    assert_eq!(s["type"], "dynamic");
    assert_eq!(s["vhost"], "/");
    assert_eq!(s["src_queue"], "src");
    assert_eq!(s["dest_queue"], "dst");
    assert_eq!(s["src_uri"], "amqp://");
    assert!(s["node"].is_string() && s["timestamp"].is_string());
    let one = api.get("/api/shovels/vhost/%2F/move").await;
    assert_eq!(
        (one.status, one.json()["name"].clone()),
        (200, json!("move"))
    );
}

#[tokio::test]
async fn src_exchange_queue_length_and_self_deletion() {
    let (broker, api) = start_api(None).await;
    let conn = connect(&broker.uri("")).await;
    let ch = confirming(&conn).await;
    declare_queue(&ch, "backlog").await;
    publish_ids(&ch, "backlog", 0..30).await;
    put_shovel(
        &api,
        "once",
        json!({"src-uri": "amqp://", "src-queue": "backlog", "dest-uri": "amqp://",
               "dest-queue": "moved", "src-delete-after": "queue-length"}),
    )
    .await;
    let gone = common::eventually(404, async || {
        api.get("/api/parameters/shovel/%2F/once").await.status
    })
    .await;
    assert_eq!(gone, 404, "the shovel deletes itself");
    assert!(shovel_status(&api, "once").await.is_none());
    assert_eq!(ready(&conn, "moved").await, 30);
    publish_ids(&ch, "backlog", 30..35).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ready(&conn, "backlog").await,
        5,
        "nothing moves after it ended"
    );

    // src-exchange: an exclusive server-named queue bound with the key.
    put_shovel(
        &api,
        "tap",
        json!({"src-uri": "amqp://", "src-exchange": "amq.direct", "src-exchange-key": "k",
               "dest-uri": "amqp://", "dest-exchange": "amq.fanout", "ack-mode": "on-publish"}),
    )
    .await;
    let out = declare_queue(&ch, "fanned").await;
    ch.queue_bind(
        out.name().clone(),
        "amq.fanout".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    assert_eq!(
        common::eventually("running".to_owned(), async || state_of(&api, "tap").await).await,
        "running"
    );
    for _ in 0..5 {
        publish_acked(&ch, "amq.direct", "k", b"x", BasicProperties::default()).await;
    }
    assert_eq!(
        common::eventually(5, async || ready(&conn, "fanned").await).await,
        5
    );
}

#[tokio::test]
async fn on_confirm_acks_the_source_only_after_the_destination_confirmed() {
    // The destination refuses everything (a full queue with reject-publish):
    // nothing may leave the source.
    let (broker, api) = start_api(None).await;
    let conn = connect(&broker.uri("")).await;
    let ch = confirming(&conn).await;
    declare_queue(&ch, "keep").await;
    ch.queue_declare(
        "full".into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table(&[
            ("x-max-length", AMQPValue::LongInt(0)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await
    .expect("declare full");
    publish_ids(&ch, "keep", 0..5).await;
    put_shovel(
        &api,
        "refused",
        json!({"src-uri": "amqp://", "src-queue": "keep", "dest-uri": "amqp://",
               "dest-queue": "full", "src-prefetch-count": 1}),
    )
    .await;
    assert_eq!(
        common::eventually("running".to_owned(), async || state_of(&api, "refused")
            .await)
        .await,
        "running"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.delete("/api/parameters/shovel/%2F/refused")
            .await
            .status,
        204
    );
    assert_eq!(
        common::eventually(5, async || ready(&conn, "keep").await).await,
        5,
        "nacked messages stay at the source"
    );
    // A consumer sees them whole.
    let mut consumer = ch
        .basic_consume(
            "keep".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = common::lapin::next_delivery(&mut consumer).await;
    assert!(d.data.starts_with(b"m"));
}

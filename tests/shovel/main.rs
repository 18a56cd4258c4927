//! Dynamic shovels (RabbitMQ's `shovel` runtime parameters) end to end:
//! declared over the management API, moving messages between queues of one
//! Warren and between two Warrens, through restarts of either side, and
//! (`rabbitmq.rs`) draining a real RabbitMQ node into Warren.

// Shared with the TLS suite, which uses all of it.
#[allow(dead_code)]
#[path = "../tls/certs.rs"]
mod certs;
#[path = "../common/mod.rs"]
mod common;

mod rabbitmq;

use std::collections::HashSet;
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
async fn validation_errors_are_400_with_rabbitmqs_reason() {
    let (_broker, api) = start_api(None).await;
    let cases = [
        (
            json!({"src-queue": "a", "dest-uri": "amqp://"}),
            "Key <<\"src-uri\">> not found",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "a", "src-exchange": "x", "dest-uri": "amqp://"}),
            "Cannot specify 'src-exchange' and 'src-queue'",
        ),
        (
            json!({"src-uri": "amqp://", "dest-uri": "amqp://"}),
            "Must specify 'src-exchange' or 'src-queue'",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "ack-mode": "maybe"}),
            "ack-mode should be one of",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "src-delete-after": "later"}),
            "\"never\" or \"queue-length\"",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "src-protocol": "amqp10"}),
            "amqp091",
        ),
        (
            json!({"src-uri": "http://x", "src-queue": "a", "dest-uri": "amqp://"}),
            "not a valid URI",
        ),
    ];
    for (value, reason) in cases {
        let r = api
            .put(
                "/api/parameters/shovel/%2F/bad",
                &json!({"value": value}).to_string(),
            )
            .await;
        let body = r.json();
        assert_eq!(
            (r.status, body["error"].clone()),
            (400, json!("bad_request")),
            "{value}"
        );
        let text = body["reason"].as_str().unwrap_or_default();
        assert!(text.contains(reason), "{value}: {text}");
    }
    assert_eq!(api.get("/api/parameters/shovel/%2F/bad").await.status, 404);
    assert_eq!(api.get("/api/parameters").await.json(), json!([]));
    let nowhere = api
        .put(
            "/api/parameters/shovel/nope/s",
            &json!({"value": {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://"}})
                .to_string(),
        )
        .await;
    assert_eq!(nowhere.status, 404);
}

#[tokio::test]
async fn status_lists_and_deletes() {
    let (_broker, api) = start_api(None).await;
    // Nothing listens on port 1: the shovel terminates with a reason and retries.
    put_shovel(
        &api,
        "broken",
        json!({"src-uri": "amqp://127.0.0.1:1", "src-queue": "a", "dest-uri": "amqp://",
               "reconnect-delay": 0.2}),
    )
    .await;
    let state = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "broken").await
    })
    .await;
    assert_eq!(state, "terminated");
    let s = shovel_status(&api, "broken").await.expect("listed");
    assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
    // reconnect-delay 0: it stays terminated (RabbitMQ's temporary shovel).
    put_shovel(
        &api,
        "once-only",
        json!({"src-uri": "amqp://127.0.0.1:1", "src-queue": "a", "dest-uri": "amqp://",
               "reconnect-delay": 0}),
    )
    .await;
    let state = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "once-only").await
    })
    .await;
    assert_eq!(state, "terminated");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_of(&api, "once-only").await, "terminated");
    assert_eq!(
        api.delete("/api/parameters/shovel/%2F/once-only")
            .await
            .status,
        204
    );
    let listed = api.get("/api/parameters/shovel").await.json();
    assert_eq!(listed[0]["component"], "shovel");
    assert_eq!(listed[0]["name"], "broken");
    assert_eq!(listed[0]["value"]["src-queue"], "a");
    assert_eq!(api.get("/api/parameters/shovel/%2F").await.json(), listed);
    assert_eq!(
        api.delete("/api/shovels/vhost/%2F/broken/restart")
            .await
            .status,
        204
    );
    assert_eq!(
        api.delete("/api/parameters/shovel/%2F/broken").await.status,
        204
    );
    assert_eq!(
        api.delete("/api/parameters/shovel/%2F/broken").await.status,
        404
    );
    assert_eq!(api.get("/api/shovels").await.json(), json!([]));
}

#[tokio::test]
async fn deleting_the_vhost_stops_its_shovels() {
    let (broker, api) = start_api(None).await;
    assert_eq!(api.put("/api/vhosts/other", "{}").await.status, 201);
    let perm = r#"{"configure":".*","write":".*","read":".*"}"#;
    let granted = api.put("/api/permissions/other/guest", perm).await.status;
    assert!(granted == 201 || granted == 204, "{granted}");
    let r = api
        .put(
            "/api/parameters/shovel/other/s",
            &json!({"value": {"src-uri": "amqp:///other", "src-queue": "a",
                               "dest-uri": "amqp:///other", "dest-queue": "b"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        api.get("/api/shovels/other")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(api.delete("/api/vhosts/other").await.status, 204);
    assert_eq!(api.get("/api/shovels").await.json(), json!([]));
    assert_eq!(api.get("/api/parameters").await.json(), json!([]));
    drop(broker);
}

#[tokio::test]
async fn survives_a_restart_and_round_trips_through_definitions() {
    let dir = tempfile::tempdir().expect("dir");
    let (broker, api, api_stop) = start_api_stoppable(Some(dir.path())).await;
    put_shovel(
        &api,
        "durable",
        json!({"src-uri": "amqp://", "src-queue": "in", "dest-uri": "amqp://", "dest-queue": "out"}),
    )
    .await;
    let exported = api.get("/api/definitions").await.json();
    let params = exported["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        params.iter().any(|p| p["component"] == "shovel"
            && p["name"] == "durable"
            && p["vhost"] == "/"
            && p["value"]["src-queue"] == "in"),
        "{params:?}"
    );
    drop(api_stop);
    broker.stop().await;
    // The stopped API lets the broker (and its data directory) go.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (broker, api) = start_api(Some(dir.path())).await;
    assert_eq!(
        api.get("/api/parameters/shovel/%2F/durable").await.status,
        200
    );
    assert_eq!(
        common::eventually("running".to_owned(), async || state_of(&api, "durable")
            .await)
        .await,
        "running"
    );
    let conn = connect(&broker.uri("")).await;
    let ch = confirming(&conn).await;
    publish_ids(&ch, "in", 0..10).await;
    assert_eq!(
        common::eventually(10, async || ready(&conn, "out").await).await,
        10
    );

    // Import into a fresh broker: the shovel is back and runs.
    let (fresh, fresh_api) = start_api(None).await;
    let r = fresh_api
        .post("/api/definitions", &exported.to_string())
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        common::eventually("running".to_owned(), async || state_of(
            &fresh_api, "durable"
        )
        .await)
        .await,
        "running"
    );
    let conn2 = connect(&fresh.uri("")).await;
    let ch2 = confirming(&conn2).await;
    publish_ids(&ch2, "in", 0..3).await;
    assert_eq!(
        common::eventually(3, async || ready(&conn2, "out").await).await,
        3
    );
}

#[tokio::test]
async fn warren_to_warren_through_a_destination_restart() {
    let dest_dir = tempfile::tempdir().expect("dir");
    let dest = common::start_at(dest_dir.path(), |_| {}).await;
    let dest_addr = dest.addr;
    let (src, api) = start_api(None).await;
    let src_conn = connect(&src.uri("")).await;
    let ch = confirming(&src_conn).await;
    declare_queue(&ch, "outbox").await;
    put_shovel(
        &api,
        "w2w",
        json!({"src-uri": "amqp://", "src-queue": "outbox",
               "dest-uri": format!("amqp://guest:guest@{dest_addr}/%2F"),
               "dest-queue": "inbox", "reconnect-delay": 0.2, "src-prefetch-count": 50}),
    )
    .await;
    publish_ids(&ch, "outbox", 0..200).await;
    let dest_conn = connect(&dest.uri("")).await;
    let some = common::eventually(true, async || ready(&dest_conn, "inbox").await > 0).await;
    assert!(some);
    drop(dest_conn);
    dest.stop().await;
    // While the destination is down: published, not lost.
    publish_ids(&ch, "outbox", 200..400).await;
    let terminated = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "w2w").await
    })
    .await;
    assert_eq!(terminated, "terminated");
    let dest = common::start_at_addr(dest_dir.path(), dest_addr, |_| {}).await;
    let running =
        common::eventually("running".to_owned(), async || state_of(&api, "w2w").await).await;
    assert_eq!(running, "running");
    assert_eq!(
        common::eventually(0, async || ready(&src_conn, "outbox").await).await,
        0
    );
    let dest_conn = connect(&dest.uri("")).await;
    let ids = drain_ids(&dest_conn, "inbox").await;
    let unique: HashSet<&String> = ids.iter().collect();
    let missing: Vec<u32> = (0..400)
        .filter(|i| !unique.contains(&i.to_string()))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    println!(
        "warren-to-warren: 400 published, {} received, {} duplicates",
        ids.len(),
        ids.len() - unique.len()
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

#[tokio::test]
async fn amqps_destination_with_rabbitmqs_uri_options() {
    let pki = certs::Pki::new("shovel CA");
    let dest = common::start_tls(|config| {
        config.tls_cert = Some(pki.server_cert.clone());
        config.tls_key = Some(pki.server_key.clone());
        config.tls_ca = Some(pki.ca.clone());
        config.tls_verify_peer = true;
        config.tls_fail_if_no_peer_cert = true;
    })
    .await;
    let tls = dest.tls_addr.expect("amqps listener");
    let client = pki.client(Some("shovel"));
    let cert = pki.write("client.pem", &client.cert_pem);
    let key = pki.write("client.key", &client.key_pem);
    let (src, api) = start_api(None).await;
    let uri = |query: String| format!("amqps://guest:guest@{tls}/%2F?{query}");
    let with_identity = format!("certfile={}&keyfile={}", cert.display(), key.display());
    for (name, query) in [
        (
            "trusted",
            format!(
                "cacertfile={}&{with_identity}&verify=verify_peer&server_name_indication=localhost",
                pki.ca.display()
            ),
        ),
        ("unverified", format!("{with_identity}&verify=verify_none")),
        ("untrusted", with_identity.clone()),
    ] {
        put_shovel(
            &api,
            name,
            json!({"src-uri": "amqp://", "src-queue": format!("q-{name}"),
                   "dest-uri": uri(query), "dest-queue": format!("q-{name}"),
                   "reconnect-delay": 0.2}),
        )
        .await;
    }
    for name in ["trusted", "unverified"] {
        let state =
            common::eventually("running".to_owned(), async || state_of(&api, name).await).await;
        assert_eq!(
            state,
            "running",
            "{name}: {:?}",
            shovel_status(&api, name).await
        );
    }
    // The system's roots do not know the test CA.
    let state = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "untrusted").await
    })
    .await;
    assert_eq!(state, "terminated");
    let conn = connect(&src.uri("")).await;
    let ch = confirming(&conn).await;
    publish_ids(&ch, "q-trusted", 0..10).await;
    let dest_conn = connect(&dest.uri("")).await;
    assert_eq!(
        common::eventually(10, async || ready(&dest_conn, "q-trusted").await).await,
        10
    );
    let s = shovel_status(&api, "trusted").await.expect("listed");
    let shown = s["dest_uri"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("amqps://guest@") && !shown.contains("guest:guest"),
        "{shown}"
    );
}

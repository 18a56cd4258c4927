//! Warren only: a stream's messages, offsets and timestamps across a
//! restart, and the management API's view of a stream.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::types::AMQPValue;

use crate::common::lapin::text;
use crate::common::{eventually, http::api_of, start_at};
use crate::{
    Target, bodies, consumer_from, consumer_on, declare_stream, names, nothing_more, offset_of,
    publish_range, reference, take, target,
};

/// Warren on this data directory.
async fn warren_at(dir: &Path) -> Target {
    let broker = start_at(dir, |_| {}).await;
    Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        broker: Some(broker),
    }
}

/// Stops the broker and waits for its shutdown.
async fn stop(mut t: Target) {
    if let Some(broker) = t.broker.take() {
        broker.stop().await;
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn messages_offsets_and_timestamps_survive_a_restart() {
    if reference() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let t = warren_at(dir.path()).await;
    let q = "kept";
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, q, &[("x-max-age", text("1D"))]).await;
    publish_range(&ch, q, 0..3).await;
    let boundary = now() + 1;
    while now() < boundary {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_range(&ch, q, 3..6).await;
    conn.close(200, "bye".into()).await.expect("close");
    stop(t).await;

    let t = warren_at(dir.path()).await;
    let conn = t.conn().await;
    // Declared again with the same arguments: equivalent.
    declare_stream(&conn.channel().await, q, &[("x-max-age", text("1D"))]).await;
    let (_c, mut all) = consumer_from(&conn, q, "first").await;
    let got = take(&mut all, 6, true).await;
    let seen: Vec<(String, i64)> = got.iter().map(|d| (crate::body(d), offset_of(d))).collect();
    let expected: Vec<(String, i64)> = names(0..6).into_iter().zip(0..6).collect();
    assert_eq!(seen, expected);
    nothing_more(&mut all).await;
    // Chunk timestamps were kept.
    let (_t, mut second) = consumer_on(
        &conn,
        q,
        10,
        &[("x-stream-offset", AMQPValue::Timestamp(boundary))],
    )
    .await;
    assert_eq!(bodies(&mut second, 3).await, names(3..6));
    // New messages go on from the old end.
    let ch = conn.confirming().await;
    publish_range(&ch, q, 6..7).await;
    let d = take(&mut all, 1, true).await;
    assert_eq!((crate::body(&d[0]), offset_of(&d[0])), ("m6".to_owned(), 6));
    stop(t).await;
}

#[tokio::test]
async fn the_management_api_shows_a_stream() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = "shown";
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, q, &[]).await;
    publish_range(&ch, q, 0..4).await;
    let (api, stop_api) = api_of(t.broker()).await;
    let path = format!("/api/queues/%2F/{q}");
    let r = api.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json = r.json();
    assert_eq!(json["type"], "stream", "{json}");
    assert_eq!(json["durable"], true);
    let messages = eventually(Some(4), async || {
        api.get(&path).await.json()["messages"].as_u64()
    })
    .await;
    assert_eq!(messages, Some(4));
    let (_c, mut consumer) = consumer_from(&conn, q, "first").await;
    take(&mut consumer, 4, false).await;
    let consumers = eventually(Some(1), async || {
        api.get(&path).await.json()["consumers"].as_u64()
    })
    .await;
    assert_eq!(consumers, Some(1));
    stop_api().await;
}

#[tokio::test]
async fn the_management_api_and_metrics_show_offsets_and_lag() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = "lagging";
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, q, &[]).await;
    publish_range(&ch, q, 0..4).await;
    // One consumer has read everything, one is held at 2 by its prefetch.
    let (_a, mut ahead) = consumer_from(&conn, q, "first").await;
    take(&mut ahead, 4, true).await;
    let (_b, mut behind) = consumer_on(
        &conn,
        q,
        2,
        &[
            ("x-stream-offset", text("first")),
            ("x-stream-consumer-name", text("audit")),
        ],
    )
    .await;
    take(&mut behind, 2, false).await;
    let (api, stop_api) = api_of(t.broker()).await;
    let path = format!("/api/queues/%2F/{q}");
    let lags = eventually(vec![0, 2], async || {
        let json = api.get(&path).await.json();
        let mut lags: Vec<u64> = json["stream"]["consumers"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["lag"].as_u64()).collect())
            .unwrap_or_default();
        lags.sort_unstable();
        lags
    })
    .await;
    assert_eq!(lags, vec![0, 2]);
    let json = api.get(&path).await.json();
    let stream = &json["stream"];
    assert_eq!(stream["first_offset"], 0, "{json}");
    assert_eq!(stream["last_offset"], 3);
    assert_eq!(stream["committed_offset"], 4);
    assert_eq!(stream["segments"], 1);
    assert!(
        stream["size_bytes"].as_u64().is_some_and(|b| b > 0),
        "{json}"
    );
    // The name's kept offset is its first unacked delivery.
    assert_eq!(
        stream["named_consumers"],
        serde_json::json!([{"name": "audit", "offset": 0, "lag": 4, "attached": true}])
    );
    let metrics = api.get("/metrics/per-object").await.body;
    assert!(
        metrics.contains("warren_stream_committed_offset{vhost=\"/\",queue=\"lagging\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warren_stream_consumer_lag{")
                && l.contains("name=\"audit\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    // What streams do not do is refused through the API too.
    let purge = api.delete(&format!("{path}/contents")).await;
    assert_eq!(purge.status, 400, "{}", purge.body);
    assert!(
        purge.body.contains("not supported by stream queues"),
        "{}",
        purge.body
    );
    let get = api
        .post(
            &format!("{path}/get"),
            r#"{"count":1,"ackmode":"ack_requeue_true","encoding":"auto"}"#,
        )
        .await;
    assert_eq!(get.status, 400, "{}", get.body);
    stop_api().await;
}

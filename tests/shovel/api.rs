//! Shovels through the management API: validation errors as RabbitMQ words
//! them, status, listing and deletion (also with their vhost), and a shovel
//! kept across a restart and carried in definitions.

use std::time::Duration;

use serde_json::json;

use crate::common;
use crate::common::lapin::{confirming, connect};
use crate::{
    publish_ids, put_shovel, ready, shovel_status, start_api, start_api_stoppable, state_of,
};

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

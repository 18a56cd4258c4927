//! Basic auth, tags, vhosts, users and permissions through the API, and their
//! effect on AMQP clients.

use lapin::{Connection, ConnectionProperties};
use serde_json::json;

use super::common::http::Http;
use super::common::lapin::{amqp_error, connect};
use super::start;

#[tokio::test]
async fn credentials_and_tags_are_checked_as_rabbitmq_does() {
    let (_broker, api) = start().await;
    let anonymous = Http::anonymous(api.addr).get("/api/whoami").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    let wrong = Http::new(api.addr, "guest", "nope")
        .get("/api/whoami")
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"error": "not_authorized", "reason": "Login failed"})
    );

    let me = api.get("/api/whoami").await;
    assert_eq!(
        me.json(),
        json!({"name": "guest", "tags": ["administrator"]})
    );

    assert_eq!(
        api.put("/api/users/plain", r#"{"password":"pw","tags":""}"#)
            .await
            .status,
        201
    );
    let plain = Http::new(api.addr, "plain", "pw")
        .get("/api/overview")
        .await;
    assert_eq!(plain.status, 401);
    assert_eq!(
        plain.json(),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );
    assert_eq!(
        api.put("/api/users/mgr", r#"{"password":"pw","tags":"management"}"#)
            .await
            .status,
        201
    );
    let mgr = Http::new(api.addr, "mgr", "pw");
    assert_eq!(mgr.get("/api/overview").await.status, 200);
    let users = mgr.get("/api/users").await;
    assert_eq!(users.status, 401);
    assert_eq!(
        users.json(),
        json!({"error": "not_authorised", "reason": "Not administrator user"})
    );
}

#[tokio::test]
async fn vhosts_users_and_permissions_round_trip() {
    let (broker, api) = start().await;
    assert_eq!(api.put("/api/vhosts/v1", "").await.status, 201);
    assert_eq!(api.put("/api/vhosts/v1", "").await.status, 204);
    let vhosts = api.get("/api/vhosts").await.json();
    let names: Vec<_> = vhosts
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, [json!("/"), json!("v1")]);

    assert_eq!(
        api.put("/api/users/bob", r#"{"password":"pw","tags":"management"}"#)
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            "/api/users/bob",
            r#"{"password":"pw","tags":["management"]}"#
        )
        .await
        .status,
        204
    );
    let bob = api.get("/api/users/bob").await.json();
    assert_eq!(bob["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(bob["tags"], json!(["management"]));
    let missing_tags = api.put("/api/users/x", r#"{"password":"pw"}"#).await;
    assert_eq!(
        (missing_tags.status, missing_tags.json()["reason"].clone()),
        (400, json!("tags_not_present"))
    );

    // No permissions yet: bob may not open v1.
    let uri = format!("amqp://bob:pw@{}/v1", broker.addr);
    let err = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect_err("no access yet");
    assert_eq!(
        amqp_error(&err),
        (
            530,
            "NOT_ALLOWED - access to vhost 'v1' refused for user 'bob'".into()
        )
    );

    let partial = api
        .put("/api/permissions/v1/bob", r#"{"configure":".*"}"#)
        .await;
    assert_eq!(partial.status, 400);
    assert_eq!(
        partial.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"})
    );
    let not_json = api.put("/api/permissions/v1/bob", "nope").await;
    assert_eq!(not_json.json()["reason"], "not_json");
    let unknown = api
        .put(
            "/api/permissions/nope/bob",
            r#"{"configure":"","write":"","read":""}"#,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.json()["reason"].clone()),
        (400, json!("vhost_or_user_not_found"))
    );
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    assert_eq!(api.put("/api/permissions/v1/bob", all).await.status, 201);
    assert_eq!(api.put("/api/permissions/v1/bob", all).await.status, 204);
    assert_eq!(
        api.get("/api/permissions/v1/bob").await.json(),
        json!({"user": "bob", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"})
    );
    let conn = connect(&uri).await;
    conn.close(200, "bye".into()).await.expect("close");

    assert_eq!(api.delete("/api/permissions/v1/bob").await.status, 204);
    assert_eq!(api.delete("/api/permissions/v1/bob").await.status, 404);
    assert!(
        Connection::connect(&uri, ConnectionProperties::default())
            .await
            .is_err()
    );

    assert_eq!(api.delete("/api/users/bob").await.status, 204);
    let gone = api.get("/api/users/bob").await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(api.delete("/api/vhosts/v1").await.status, 204);
    assert_eq!(api.get("/api/vhosts/v1").await.status, 404);
}

#[tokio::test]
async fn a_user_given_a_rabbitmq_hash_logs_in() {
    let (broker, api) = start().await;
    // guest's hash as exported by RabbitMQ 3.10.8.
    let body = r#"{"password_hash":"xoOO5/d1qsLSX2KzSW9SfogWMDTj+9o3renoM4+0Q4zZQuzI","tags":"monitoring"}"#;
    assert_eq!(api.put("/api/users/hashed", body).await.status, 201);
    let hashed = Http::new(api.addr, "hashed", "guest");
    assert_eq!(
        hashed.get("/api/whoami").await.json()["tags"],
        json!(["monitoring"])
    );
    assert_eq!(
        api.put(
            "/api/permissions/%2F/hashed",
            r#"{"configure":"","write":"","read":".*"}"#
        )
        .await
        .status,
        201
    );
    let conn = connect(&format!("amqp://hashed:guest@{}/%2f", broker.addr)).await;
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn definitions_export_and_import_round_trip() {
    let (_broker, api) = start().await;
    assert_eq!(api.put("/api/vhosts/dv", "").await.status, 201);
    assert_eq!(
        api.put("/api/exchanges/dv/dx", r#"{"type":"topic","durable":true}"#)
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            "/api/queues/dv/dq",
            r#"{"durable":true,"arguments":{"x-max-length":5}}"#
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.post("/api/bindings/dv/e/dx/q/dq", r#"{"routing_key":"a.#"}"#)
            .await
            .status,
        201
    );
    let exported = api.get("/api/definitions").await.json();
    assert_eq!(
        exported["users"][0]["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    assert!(exported["rabbit_version"].is_string());
    assert_eq!(
        exported["queues"],
        json!([{"name": "dq", "vhost": "dv", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 5}}])
    );
    assert_eq!(exported["exchanges"][0]["type"], "topic");
    assert_eq!(
        exported["bindings"],
        json!([{"source": "dx", "vhost": "dv", "destination": "dq", "destination_type": "queue", "routing_key": "a.#", "arguments": {}}])
    );

    // Into a fresh broker: the same definitions come back out.
    let (_other, fresh) = start().await;
    assert_eq!(
        fresh
            .post("/api/definitions", &exported.to_string())
            .await
            .status,
        204
    );
    let again = fresh.get("/api/definitions").await.json();
    for key in ["vhosts", "permissions", "queues", "exchanges", "bindings"] {
        assert_eq!(again[key], exported[key], "{key}");
    }
    // The imported hash still logs guest in (a new broker hashes with a new salt).
    assert_eq!(again["users"], exported["users"]);
    assert_eq!(fresh.post("/api/definitions", "nope").await.status, 400);
}

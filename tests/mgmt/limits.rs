//! Vhost limits (`max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`): set, listed and cleared through the
//! API as RabbitMQ 3.10+ does, kept across a restart and in definitions, and
//! the raw-client helpers the enforcement tests share; `limits/enforced.rs`:
//! refused on the wire with RabbitMQ's codes and texts, and never passed by
//! racing clients.

mod enforced;

use std::net::SocketAddr;

use serde_json::json;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, connection};

use super::common::http::{Http, api_of};
use super::common::raw::{RawClient, Seen, channel_open, open_vhost, tune_ok};
use super::common::start_at;
use super::start;

/// A raw client that logs in as `user`/`password` and sends connection.open
/// for `vhost`; the caller reads what comes back.
async fn open_as(addr: SocketAddr, user: &str, password: &str, vhost: &str) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    let response = format!("\0{user}\0{password}");
    c.start_ok(response.as_bytes(), true)
        .await
        .expect("connection.tune");
    c.send_method(0, tune_ok(2047, 131_072, 0)).await;
    c.send_method(0, open_vhost(vhost)).await;
    c
}

/// As [`open_as`], expecting open-ok.
async fn opened(addr: SocketAddr, user: &str, password: &str) -> RawClient {
    let mut c = open_as(addr, user, password, "/").await;
    match c.next().await {
        Seen::Frame(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))) => {
        }
        other => panic!("expected open-ok for {user}, got {other:?}"),
    }
    c
}

/// A user `name` (password `pw`, no tags) with every permission on `/`.
async fn add_user(api: &Http, name: &str) {
    let user = api
        .put(
            &format!("/api/users/{name}"),
            r#"{"password":"pw","tags":""}"#,
        )
        .await;
    assert_eq!(user.status, 201);
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    let perms = api.put(&format!("/api/permissions/%2F/{name}"), all).await;
    assert_eq!(perms.status, 201);
}

#[tokio::test]
async fn vhost_limits_are_set_listed_and_cleared() {
    let (_broker, api) = start().await;
    assert_eq!(api.put("/api/vhosts/v1", "").await.status, 201);
    let put = |path: &'static str, body: &'static str| {
        let api = &api;
        async move { api.put(path, body).await }
    };
    assert_eq!(
        put("/api/vhost-limits/%2F/max-connections", r#"{"value":10}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        put("/api/vhost-limits/%2F/max-queues", r#"{"value":5}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        put("/api/vhost-limits/v1/max-queues", r#"{"value":0}"#)
            .await
            .status,
        204
    );
    let all = api.get("/api/vhost-limits").await;
    assert_eq!(
        (all.status, all.json()),
        (
            200,
            json!([
                {"vhost": "/", "value": {"max-connections": 10, "max-queues": 5}},
                {"vhost": "v1", "value": {"max-queues": 0}},
            ])
        )
    );
    assert_eq!(
        api.get("/api/vhost-limits/v1").await.json(),
        json!([{"vhost": "v1", "value": {"max-queues": 0}}])
    );

    let bad_name = put("/api/vhost-limits/%2F/max-channels", r#"{"value":1}"#).await;
    assert_eq!(
        (bad_name.status, bad_name.json()),
        (
            400,
            json!({"error": "bad_request", "reason": "Validation failed\n\nUnrecognised terms [{<<\"max-channels\">>,1}] in limits\n"})
        )
    );
    let bad_value = put("/api/vhost-limits/%2F/max-queues", r#"{"value":"many"}"#).await;
    assert_eq!(
        (bad_value.status, bad_value.json()["reason"].clone()),
        (
            400,
            json!(
                "Validation failed\n\nmax-queues should be a number, actually was <<\"many\">>\n"
            )
        )
    );
    let no_value = put("/api/vhost-limits/%2F/max-queues", r#"{"val":1}"#).await;
    assert_eq!(
        (no_value.status, no_value.json()["reason"].clone()),
        (400, json!("[{key_missing,value}]"))
    );
    let no_vhost = put("/api/vhost-limits/nope/max-queues", r#"{"value":1}"#).await;
    assert_eq!(no_vhost.status, 404);

    // A negative value is kept, listed, and means no limit (RabbitMQ 3.10.8).
    assert_eq!(
        put("/api/vhost-limits/%2F/max-connections", r#"{"value":-1}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        api.get("/api/vhost-limits/%2F").await.json(),
        json!([{"vhost": "/", "value": {"max-connections": -1, "max-queues": 5}}])
    );
    for name in ["max-queues", "max-connections"] {
        let path = format!("/api/vhost-limits/%2F/{name}");
        assert_eq!(api.delete(&path).await.status, 204);
    }
    assert_eq!(
        api.get("/api/vhost-limits").await.json(),
        json!([{"vhost": "v1", "value": {"max-queues": 0}}])
    );

    // Administrators only.
    assert_eq!(
        api.put("/api/users/mgr", r#"{"password":"pw","tags":"management"}"#)
            .await
            .status,
        201
    );
    let manager = Http::new(api.addr, "mgr", "pw");
    let refused = manager
        .put("/api/vhost-limits/%2F/max-queues", r#"{"value":1}"#)
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        manager
            .delete("/api/vhost-limits/v1/max-queues")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn user_limits_are_set_listed_and_cleared() {
    let (_broker, api) = start().await;
    add_user(&api, "bob").await;
    assert_eq!(
        api.put("/api/user-limits/bob/max-connections", r#"{"value":3}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        api.put("/api/user-limits/bob/max-channels", r#"{"value":7}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        api.get("/api/user-limits").await.json(),
        json!([{"user": "bob", "value": {"max-channels": 7, "max-connections": 3}}])
    );
    assert_eq!(
        api.get("/api/user-limits/bob").await.json(),
        json!([{"user": "bob", "value": {"max-channels": 7, "max-connections": 3}}])
    );
    assert_eq!(api.get("/api/user-limits/guest").await.json(), json!([]));
    assert_eq!(
        api.get("/api/users/bob").await.json()["limits"],
        json!({"max-channels": 7, "max-connections": 3})
    );

    let bad_name = api
        .put("/api/user-limits/bob/max-queues", r#"{"value":1}"#)
        .await;
    assert_eq!(
        (bad_name.status, bad_name.json()["reason"].clone()),
        (
            400,
            json!("Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits")
        )
    );
    let bad_value = api
        .put("/api/user-limits/bob/max-channels", r#"{"value":1.5}"#)
        .await;
    assert_eq!(
        (bad_value.status, bad_value.json()["reason"].clone()),
        (
            400,
            json!("max-channels should be a number, actually was 1.5")
        )
    );
    let nobody = api
        .put("/api/user-limits/nobody/max-channels", r#"{"value":1}"#)
        .await;
    assert_eq!(
        (nobody.status, nobody.json()),
        (
            400,
            json!({"error": "bad_request", "reason": ["no_such_user", "nobody"]})
        )
    );

    assert_eq!(
        api.delete("/api/user-limits/bob/max-channels").await.status,
        204
    );
    assert_eq!(
        api.put("/api/user-limits/bob/max-connections", r#"{"value":-1}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        api.get("/api/user-limits").await.json(),
        json!([{"user": "bob", "value": {"max-connections": -1}}])
    );
    assert_eq!(
        api.delete("/api/user-limits/bob/max-connections")
            .await
            .status,
        204
    );
    assert_eq!(api.get("/api/user-limits").await.json(), json!([]));
    let bob = Http::new(api.addr, "bob", "pw");
    assert_eq!(
        bob.put("/api/user-limits/bob/max-channels", r#"{"value":1}"#)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn limits_survive_a_restart_and_travel_in_definitions() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let (api, stop_api) = api_of(&broker).await;
    add_user(&api, "bob").await;
    for (path, value) in [
        ("/api/vhost-limits/%2F/max-queues", 1),
        ("/api/vhost-limits/%2F/max-connections", 5),
        ("/api/user-limits/bob/max-channels", 0),
    ] {
        let r = api.put(path, &format!(r#"{{"value":{value}}}"#)).await;
        assert_eq!(r.status, 204, "{path}");
    }
    let exported = api.get("/api/definitions").await.json();
    assert_eq!(
        exported["parameters"],
        json!([{"vhost": "/", "component": "vhost-limits", "name": "limits",
                "value": {"max-connections": 5, "max-queues": 1}}])
    );
    assert_eq!(
        api.get("/api/definitions/%2F").await.json()["parameters"],
        json!([{"vhost": "/", "component": "vhost-limits", "name": "limits",
                "value": {"max-connections": 5, "max-queues": 1}}])
    );
    let bob = exported["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "bob"))
        .cloned()
        .expect("bob exported");
    assert_eq!(bob["limits"], json!({"max-channels": 0}));

    stop_api().await;
    broker.stop().await;
    let broker = start_at(dir.path(), |_| {}).await;
    let (api, _stop_api) = api_of(&broker).await;
    assert_eq!(
        api.get("/api/vhost-limits").await.json(),
        json!([{"vhost": "/", "value": {"max-connections": 5, "max-queues": 1}}])
    );
    assert_eq!(
        api.get("/api/user-limits").await.json(),
        json!([{"user": "bob", "value": {"max-channels": 0}}])
    );
    assert_eq!(api.put("/api/queues/%2F/one", "{}").await.status, 201);
    assert_eq!(api.put("/api/queues/%2F/two", "{}").await.status, 400);
    let mut c = opened(broker.addr, "bob", "pw").await;
    c.send_method(1, channel_open()).await;
    let (text, _, _) = c.expect_connection_close(530).await;
    assert!(
        text.ends_with("maximum allowed user limit of (0)"),
        "{text}"
    );

    // An export imports into a fresh broker with its limits.
    let (_fresh, fresh_api) = start().await;
    let imported = fresh_api
        .post("/api/definitions", &exported.to_string())
        .await;
    assert_eq!(imported.status, 204);
    assert_eq!(
        fresh_api.get("/api/vhost-limits").await.json(),
        json!([{"vhost": "/", "value": {"max-connections": 5, "max-queues": 1}}])
    );
    assert_eq!(
        fresh_api.get("/api/user-limits/bob").await.json(),
        json!([{"user": "bob", "value": {"max-channels": 0}}])
    );
    assert_eq!(fresh_api.put("/api/queues/%2F/a", "{}").await.status, 201);
    assert_eq!(fresh_api.put("/api/queues/%2F/b", "{}").await.status, 400);
}

/// Runs RabbitMQ's own `rabbitmqadmin` (v1, the one RabbitMQ 3.10 ships)
/// against `api`; `None` when it is not installed.
async fn rabbitmqadmin(api: &Http, args: &[&str]) -> Option<(bool, String)> {
    let mut command = std::process::Command::new("rabbitmqadmin");
    command.args([
        "-H",
        "127.0.0.1",
        "-P",
        &api.addr.port().to_string(),
        "-u",
        "guest",
        "-p",
        "guest",
    ]);
    command.args(args);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

#[tokio::test]
async fn rabbitmqadmin_declares_lists_and_deletes_vhost_limits() {
    let (_broker, api) = start().await;
    let declare = [
        "declare",
        "vhost_limit",
        "vhost=/",
        "name=max-connections",
        "value=12",
    ];
    let Some((ok, text)) = rabbitmqadmin(&api, &declare).await else {
        eprintln!("rabbitmqadmin is not installed; skipped");
        return;
    };
    assert!(ok, "{text}");
    assert_eq!(
        api.get("/api/vhost-limits").await.json(),
        json!([{"vhost": "/", "value": {"max-connections": 12}}])
    );
    let (ok, listed) = rabbitmqadmin(&api, &["-f", "tsv", "list", "vhost_limits"])
        .await
        .expect("ran before");
    assert!(ok && listed.contains("max-connections"), "{listed}");
    let delete = ["delete", "vhost_limit", "vhost=/", "name=max-connections"];
    let (ok, text) = rabbitmqadmin(&api, &delete).await.expect("ran before");
    assert!(ok, "{text}");
    assert_eq!(api.get("/api/vhost-limits").await.json(), json!([]));
    let bad = [
        "declare",
        "vhost_limit",
        "vhost=/",
        "name=max-bogus",
        "value=1",
    ];
    let (ok, text) = rabbitmqadmin(&api, &bad).await.expect("ran before");
    assert!(!ok && text.contains("Unrecognised terms"), "{text}");
}

//! Vhost limits (`max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`): set, listed and cleared through the
//! API as RabbitMQ 3.10+ does, refused on the wire with RabbitMQ's codes and
//! texts, kept across a restart and in definitions.

use std::net::SocketAddr;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, connection};

use super::common::http::{Http, api_of};
use super::common::lapin::{Client, declare_queue, refused};
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
async fn vhost_max_connections_refuses_connection_open() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let _first = opened(broker.addr, "guest", "guest").await;
    let _second = opened(broker.addr, "guest", "guest").await;
    let mut third = open_as(broker.addr, "guest", "guest", "/").await;
    assert_eq!(
        third.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached"
                .to_owned(),
            10,
            40
        )
    );
    third.close_ok_and_expect_eof().await;

    // 0: no connection at all.
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", r#"{"value":0}"#)
            .await
            .status,
        204
    );
    let mut none = open_as(broker.addr, "guest", "guest", "/").await;
    let (text, _, _) = none.expect_connection_close(530).await;
    assert!(text.ends_with("connection limit (0) is reached"), "{text}");

    assert_eq!(
        api.delete("/api/vhost-limits/%2F/max-connections")
            .await
            .status,
        204
    );
    let _third = opened(broker.addr, "guest", "guest").await;
}

#[tokio::test]
async fn user_max_connections_refuses_connection_open() {
    let (broker, api) = start().await;
    add_user(&api, "bob").await;
    assert_eq!(
        api.put("/api/user-limits/bob/max-connections", r#"{"value":1}"#)
            .await
            .status,
        204
    );
    let _bob = opened(broker.addr, "bob", "pw").await;
    let mut again = open_as(broker.addr, "bob", "pw", "/").await;
    assert_eq!(
        again.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - connection refused for user 'bob': user connection limit (1) is reached"
                .to_owned(),
            10,
            40
        )
    );
    // Other users are not counted.
    let _guest = opened(broker.addr, "guest", "guest").await;
    let _guest2 = opened(broker.addr, "guest", "guest").await;
}

#[tokio::test]
async fn user_max_channels_refuses_channel_open_over_all_connections() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/user-limits/guest/max-channels", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let mut a = RawClient::open(broker.addr).await;
    a.open_channel(1).await;
    let mut b = RawClient::open(broker.addr).await;
    b.open_channel(1).await;
    b.send_method(2, channel_open()).await;
    assert_eq!(
        b.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - number of channels opened for user 'guest' has reached the maximum allowed user limit of (2)"
                .to_owned(),
            0,
            0
        )
    );
    b.close_ok_and_expect_eof().await;
    // b's channel is gone with its connection: a may open another.
    let guest_channels = async || broker.broker.channels_of("guest");
    assert_eq!(super::common::eventually(1, guest_channels).await, 1);
    a.open_channel(2).await;
}

#[tokio::test]
async fn vhost_max_queues_refuses_a_new_queue_only() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-queues", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q1").await;
    declare_queue(&ch, "q2").await;
    // Redeclaring one that exists is fine.
    declare_queue(&ch, "q1").await;
    assert_eq!(
        refused(
            ch.queue_declare(
                "q3".into(),
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached"
                .to_owned()
        )
    );
    let by_api = api.put("/api/queues/%2F/q4", "{}").await;
    assert_eq!(
        (by_api.status, by_api.json()["reason"].clone()),
        (
            400,
            json!("cannot declare queue 'q4': queue limit in vhost '/' (2) is reached")
        )
    );
    assert_eq!(api.delete("/api/queues/%2F/q2").await.status, 204);
    assert_eq!(api.put("/api/queues/%2F/q4", "{}").await.status, 201);
    assert_eq!(
        api.delete("/api/vhost-limits/%2F/max-queues").await.status,
        204
    );
    assert_eq!(api.put("/api/queues/%2F/q5", "{}").await.status, 201);
}

#[tokio::test]
async fn a_raw_queue_declare_over_max_queues_closes_the_channel() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-queues", r#"{"value":0}"#)
            .await
            .status,
        204
    );
    let mut c = RawClient::open(broker.addr).await;
    c.open_channel(1).await;
    c.send_method(1, super::common::raw::queue_declare("q"))
        .await;
    let (text, class, method) = c.expect_channel_close(1, 406).await;
    assert_eq!(
        (text.as_str(), class, method),
        (
            "PRECONDITION_FAILED - cannot declare queue 'q': queue limit in vhost '/' (0) is reached",
            50,
            10
        )
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

#[tokio::test]
async fn connection_limits_are_checked_before_vhost_access() {
    // As RabbitMQ 3.10.8 orders them: the vhost's limit, the user's, then
    // whether the user may use the vhost at all.
    let (broker, api) = start().await;
    let user = api
        .put("/api/users/noperm", r#"{"password":"pw","tags":""}"#)
        .await;
    assert_eq!(user.status, 201);
    let mut no_access = open_as(broker.addr, "noperm", "pw", "/").await;
    let (text, _, _) = no_access.expect_connection_close(530).await;
    assert_eq!(
        text,
        "NOT_ALLOWED - access to vhost '/' refused for user 'noperm'"
    );
    let limit = r#"{"value":0}"#;
    assert_eq!(
        api.put("/api/user-limits/noperm/max-connections", limit)
            .await
            .status,
        204
    );
    let mut user_limit = open_as(broker.addr, "noperm", "pw", "/").await;
    assert_eq!(
        user_limit.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - connection refused for user 'noperm': user connection limit (0) is reached"
                .to_owned(),
            10,
            40
        )
    );
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", limit)
            .await
            .status,
        204
    );
    let mut vhost_limit = open_as(broker.addr, "noperm", "pw", "/").await;
    let (text, _, _) = vhost_limit.expect_connection_close(530).await;
    assert_eq!(
        text,
        "NOT_ALLOWED - access to vhost '/' refused for user 'noperm': connection limit (0) is reached"
    );
}

#[tokio::test]
async fn a_closed_channel_with_a_consumer_no_longer_counts() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/user-limits/guest/max-channels", r#"{"value":1}"#)
            .await
            .status,
        204
    );
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "consumed").await;
    let _consumer = super::common::lapin::consume(&ch, "consumed").await;
    ch.close(200, "bye".into()).await.expect("close");
    let guest_channels = async || broker.broker.channels_of("guest");
    assert_eq!(super::common::eventually(0, guest_channels).await, 0);
    let again = client.channel().await;
    declare_queue(&again, "consumed").await;
}

#[tokio::test]
async fn concurrent_declares_never_pass_max_queues_together() {
    use std::sync::{Arc, Barrier};
    use warren::names::ConnectionId;
    use warren::vhost::QueueDeclare;

    let (broker, api) = start().await;
    let r = api
        .put("/api/vhost-limits/%2F/max-queues", r#"{"value":1}"#)
        .await;
    assert_eq!(r.status, 204);
    let vhost = broker.broker.vhost("/").expect("default vhost");
    let declare = |name: String| QueueDeclare {
        name,
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
        server_named: false,
        quorum: None,
    };
    // Two threads race to declare different queues into the one free slot,
    // round after round; never may both win.
    const ROUNDS: usize = 2000;
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|t| {
            let (vhost, barrier) = (vhost.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut won = Vec::with_capacity(ROUNDS);
                for round in 0..ROUNDS {
                    barrier.wait();
                    let req = declare(format!("q{t}-{round}"));
                    won.push(vhost.declare_queue(&req, ConnectionId(1)).is_ok());
                    barrier.wait();
                    if t == 0 {
                        for q in vhost.queues() {
                            vhost.remove_queue(&q);
                        }
                    }
                }
                won
            })
        })
        .collect();
    let results: Vec<Vec<bool>> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let both = (0..ROUNDS)
        .filter(|&i| results[0][i] && results[1][i])
        .count();
    let none = (0..ROUNDS)
        .filter(|&i| !results[0][i] && !results[1][i])
        .count();
    assert_eq!(
        (both, none),
        (0, 0),
        "rounds where both or neither declared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_never_pass_max_connections_together() {
    let (broker, api) = start().await;
    let r = api
        .put("/api/vhost-limits/%2F/max-connections", r#"{"value":1}"#)
        .await;
    assert_eq!(r.status, 204);
    let open_ok = |seen: &Seen| {
        matches!(
            seen,
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))
            ))
        )
    };
    for round in 0..30 {
        let (mut a, mut b) = tokio::join!(
            open_as(broker.addr, "guest", "guest", "/"),
            open_as(broker.addr, "guest", "guest", "/"),
        );
        let (seen_a, seen_b) = tokio::join!(a.next(), b.next());
        let opened = usize::from(open_ok(&seen_a)) + usize::from(open_ok(&seen_b));
        assert_eq!(opened, 1, "round {round}: {seen_a:?} / {seen_b:?}");
        drop((a, b));
        let live = super::common::eventually(0, async || broker.broker.connections.len()).await;
        assert_eq!(live, 0, "round {round}: connections left");
    }
}

//! Policies and operator policies: set, listed and deleted through the API
//! with RabbitMQ 3.10.8's codes and texts (checked with curl against it),
//! applied at once to queues and exchanges that already exist, combined with
//! operator policies and queue arguments by RabbitMQ's rules, kept across a
//! restart and in definitions.

use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};

use super::common::http::{Http, api_of};
use super::common::lapin::{Client, counts, declare_queue, publish_acked, table, text};
use super::common::{eventually, start_at};
use super::start;

/// PUTs a policy and asserts the status.
async fn set(api: &Http, path: &str, body: Value, status: u16) {
    let r = api.put(path, &body.to_string()).await;
    assert_eq!(r.status, status, "PUT {path} {body}: {}", r.body);
}

fn queue_policy(api_queue: &Value) -> (Value, Value, Value) {
    (
        api_queue["policy"].clone(),
        api_queue["operator_policy"].clone(),
        api_queue["effective_policy_definition"].clone(),
    )
}

#[tokio::test]
async fn policies_are_set_listed_and_deleted_as_in_rabbitmq() {
    let (_broker, api) = start().await;
    assert_eq!(api.get("/api/policies").await.json(), json!([]));
    let body = json!({"pattern": "^q", "definition": {"message-ttl": 1000}, "priority": 1, "apply-to": "queues"});
    set(&api, "/api/policies/%2F/p1", body.clone(), 201).await;
    set(&api, "/api/policies/%2F/p1", body, 204).await;
    let listed = json!([{"vhost": "/", "name": "p1", "pattern": "^q", "apply-to": "queues",
                         "definition": {"message-ttl": 1000}, "priority": 1}]);
    assert_eq!(api.get("/api/policies").await.json(), listed);
    assert_eq!(api.get("/api/policies/%2F").await.json(), listed);
    assert_eq!(api.get("/api/policies/%2F/p1").await.json(), listed[0]);
    assert_eq!(api.get("/api/policies/%2F/none").await.status, 404);
    assert_eq!(api.get("/api/policies/nowhere").await.status, 404);
    assert_eq!(api.delete("/api/policies/%2F/p1").await.status, 204);
    assert_eq!(api.delete("/api/policies/%2F/p1").await.status, 404);
    assert_eq!(api.get("/api/policies").await.json(), json!([]));

    // Refusals, texts as RabbitMQ's.
    for (body, reason) in [
        (
            json!({"definition": {"message-ttl": 1}}),
            "[{key_missing,pattern}]",
        ),
        (json!({"pattern": "x"}), "[{key_missing,definition}]"),
        (
            json!({"pattern": "x", "definition": {}}),
            "Validation failed\n\nno policy provided\n",
        ),
        (
            json!({"pattern": "x", "definition": {"message-ttl": -1}}),
            "Validation failed\n\n-1 is not a valid message TTL\n",
        ),
        (
            json!({"pattern": "x", "definition": {"foo": "bar"}}),
            "Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings\n",
        ),
        (
            json!({"pattern": "x", "definition": {"message-ttl": 1}, "priority": "5"}),
            "Validation failed\n\npriority should be a number, actually was <<\"5\">>\n",
        ),
    ] {
        let r = api.put("/api/policies/%2F/bad", &body.to_string()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.json(),
            json!({"error": "bad_request", "reason": reason}),
            "{body}"
        );
    }
    let r = api
        .put(
            "/api/policies/nowhere/p",
            r#"{"pattern":"x","definition":{"message-ttl":1}}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    // Operator policies take only limits.
    let r = api
        .put(
            "/api/operator-policies/%2F/op",
            r#"{"pattern":"x","definition":{"dead-letter-exchange":"a"}}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["reason"]
            .as_str()
            .is_some_and(|t| t.contains("are not recognised policy settings")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn only_policymakers_set_policies_and_only_administrators_operator_policies() {
    let (broker, api) = start().await;
    for (user, tags) in [("plain", "management"), ("maker", "policymaker")] {
        let body = json!({"password": "pw", "tags": tags}).to_string();
        assert_eq!(
            api.put(&format!("/api/users/{user}"), &body).await.status,
            201
        );
        let all = r#"{"configure":".*","write":".*","read":".*"}"#;
        let r = api.put(&format!("/api/permissions/%2F/{user}"), all).await;
        assert_eq!(r.status, 201);
    }
    let as_user = |user: &str| Http::new(api.addr, user, "pw");
    let policy = r#"{"pattern":"x","definition":{"max-length":1}}"#;
    assert_eq!(
        as_user("plain")
            .put("/api/policies/%2F/p", policy)
            .await
            .status,
        401
    );
    assert_eq!(as_user("plain").get("/api/policies").await.status, 200);
    assert_eq!(
        as_user("plain").get("/api/policies/%2F/p").await.status,
        401
    );
    assert_eq!(
        as_user("maker")
            .put("/api/policies/%2F/p", policy)
            .await
            .status,
        201
    );
    assert_eq!(
        as_user("maker")
            .put("/api/operator-policies/%2F/op", policy)
            .await
            .status,
        401
    );
    assert_eq!(
        api.put("/api/operator-policies/%2F/op", policy)
            .await
            .status,
        201
    );
    drop(broker);
}

#[tokio::test]
async fn a_policy_applies_to_an_existing_queue_and_dead_letters_its_messages() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "work").await;
    declare_queue(&ch, "dead").await;
    ch.exchange_declare(
        "dlx".into(),
        lapin::ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("dlx");
    ch.queue_bind(
        "dead".into(),
        "dlx".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");

    set(
        &api,
        "/api/policies/%2F/ttl",
        json!({"pattern": "^work$", "definition": {"message-ttl": 50, "dead-letter-exchange": "dlx"},
               "apply-to": "queues"}),
        201,
    )
    .await;
    let q = api.get("/api/queues/%2F/work").await.json();
    assert_eq!(
        queue_policy(&q),
        (
            json!("ttl"),
            Value::Null,
            json!({"message-ttl": 50, "dead-letter-exchange": "dlx"})
        )
    );
    // The pattern does not match the other queue.
    assert_eq!(
        api.get("/api/queues/%2F/dead").await.json()["policy"],
        Value::Null
    );

    publish_acked(&ch, "", "work", b"late", BasicProperties::default()).await;
    assert_eq!(
        eventually((0, 0), async || counts(&client.conn, "work").await).await,
        (0, 0)
    );
    let dead = ch
        .basic_get("dead".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the expired message was dead-lettered");
    assert_eq!(dead.delivery.data, b"late");

    // Deleted: the queue keeps what it is given again.
    assert_eq!(api.delete("/api/policies/%2F/ttl").await.status, 204);
    publish_acked(&ch, "", "work", b"kept", BasicProperties::default()).await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(counts(&client.conn, "work").await, (1, 0));
    let q = api.get("/api/queues/%2F/work").await.json();
    assert_eq!(queue_policy(&q), (Value::Null, Value::Null, json!({})));
}

#[tokio::test]
async fn a_lower_limit_drops_the_head_at_once_and_the_operator_policy_caps_it() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    for i in 0..5u8 {
        publish_acked(&ch, "", "q", &[i], BasicProperties::default()).await;
    }
    set(
        &api,
        "/api/policies/%2F/len",
        json!({"pattern": "^q$", "definition": {"max-length": 3}}),
        201,
    )
    .await;
    assert_eq!(counts(&client.conn, "q").await, (3, 0));
    set(
        &api,
        "/api/operator-policies/%2F/cap",
        json!({"pattern": ".*", "definition": {"max-length": 1, "message-ttl": 60000}, "apply-to": "queues"}),
        201,
    )
    .await;
    assert_eq!(counts(&client.conn, "q").await, (1, 0));
    let q = api.get("/api/queues/%2F/q").await.json();
    assert_eq!(
        queue_policy(&q),
        (
            json!("len"),
            json!("cap"),
            json!({"max-length": 1, "message-ttl": 60000})
        )
    );
    // The newest message is the one left (drop-head).
    let left = ch
        .basic_get("q".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("one left");
    assert_eq!(left.delivery.data, [4]);
}

#[tokio::test]
async fn queue_arguments_and_policies_resolve_key_by_key() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    // Own x-overflow and a higher x-max-length: the lower limit wins, the
    // argument's overflow wins over the policy's.
    ch.queue_declare(
        "own".into(),
        QueueDeclareOptions::default(),
        table(&[
            ("x-max-length", AMQPValue::LongInt(10)),
            ("x-overflow", text("drop-head")),
        ]),
    )
    .await
    .expect("declare");
    set(
        &api,
        "/api/policies/%2F/p",
        json!({"pattern": "^own$", "definition": {"max-length": 2, "overflow": "reject-publish"}}),
        201,
    )
    .await;
    for i in 0..4u8 {
        // drop-head: every publish is confirmed.
        publish_acked(&ch, "", "own", &[i], BasicProperties::default()).await;
    }
    assert_eq!(counts(&client.conn, "own").await, (2, 0));

    // Without its own x-overflow, the policy's reject-publish applies: nacks.
    declare_queue(&ch, "bare").await;
    set(
        &api,
        "/api/policies/%2F/p2",
        json!({"pattern": "^bare$", "definition": {"max-length": 1, "overflow": "reject-publish"}}),
        201,
    )
    .await;
    publish_acked(&ch, "", "bare", b"1", BasicProperties::default()).await;
    let refused =
        super::common::lapin::try_publish(&ch, "", "bare", false, b"2", BasicProperties::default())
            .await
            .expect("publish");
    assert!(refused.is_nack(), "{refused:?}");
}

#[tokio::test]
async fn an_exchange_policy_sets_the_alternate_exchange() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    ch.exchange_declare(
        "orders".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    declare_queue(&ch, "unrouted").await;
    ch.queue_bind(
        "unrouted".into(),
        "amq.fanout".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    set(
        &api,
        "/api/policies/%2F/ae",
        json!({"pattern": "^orders$", "definition": {"alternate-exchange": "amq.fanout"},
               "apply-to": "exchanges"}),
        201,
    )
    .await;
    assert_eq!(
        api.get("/api/exchanges/%2F/orders").await.json()["policy"],
        "ae"
    );
    assert!(
        api.get("/api/exchanges/%2F/amq.direct")
            .await
            .json()
            .get("policy")
            .is_none()
    );
    publish_acked(&ch, "orders", "nobody", b"m", BasicProperties::default()).await;
    assert_eq!(counts(&client.conn, "unrouted").await, (1, 0));
    // A policy for queues does not touch exchanges.
    assert_eq!(
        api.get("/api/queues/%2F/unrouted").await.json()["policy"],
        Value::Null
    );
}

#[tokio::test]
async fn policies_survive_a_restart_and_travel_in_definitions() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let (api, stop_api) = api_of(&broker).await;
    assert_eq!(
        api.put("/api/queues/%2F/kept", r#"{"durable":true}"#)
            .await
            .status,
        201
    );
    set(
        &api,
        "/api/policies/%2F/p",
        json!({"pattern": "^kept$", "definition": {"max-length": 7}, "priority": 3}),
        201,
    )
    .await;
    set(
        &api,
        "/api/operator-policies/%2F/cap",
        json!({"pattern": ".*", "definition": {"max-length": 5}}),
        201,
    )
    .await;
    let exported = api.get("/api/definitions").await.json();
    assert_eq!(
        exported["policies"],
        json!([{"vhost": "/", "name": "p", "pattern": "^kept$", "apply-to": "all",
                "definition": {"max-length": 7}, "priority": 3}])
    );
    assert_eq!(
        api.get("/api/definitions/%2F").await.json()["policies"],
        json!([{"name": "p", "pattern": "^kept$", "apply-to": "all",
                "definition": {"max-length": 7}, "priority": 3}])
    );
    stop_api().await;
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let (api, stop_api) = api_of(&broker).await;
    assert_eq!(api.get("/api/policies").await.json(), exported["policies"]);
    assert_eq!(
        api.get("/api/operator-policies")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let q = api.get("/api/queues/%2F/kept").await.json();
    assert_eq!(
        queue_policy(&q),
        (json!("p"), json!("cap"), json!({"max-length": 5}))
    );
    // Imported into a fresh broker, with an operator policy list.
    stop_api().await;
    broker.stop().await;
    let (_fresh, api) = start().await;
    let mut defs = exported.clone();
    defs["operator_policies"] =
        json!([{"vhost": "/", "name": "cap", "pattern": ".*", "definition": {"max-length": 5}}]);
    let r = api.post("/api/definitions", &defs.to_string()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(api.get("/api/policies").await.json(), exported["policies"]);
    assert_eq!(
        api.get("/api/operator-policies/%2F/cap").await.json()["definition"],
        json!({"max-length": 5})
    );
    let bad = json!({"policies": [{"vhost": "/", "name": "broken", "pattern": "x", "definition": {"message-ttl": "soon"}}]});
    let r = api.post("/api/definitions", &bad.to_string()).await;
    assert_eq!(r.status, 400);
}

//! What `rabbitmqadmin` v2 (crate `rabbitmq-http-client`) requires of the API:
//! fields it deserializes as required, and the health check endpoints it
//! calls. Bodies and codes as RabbitMQ answers them (checked against 3.10.8;
//! `being_drained` and `consumer_timeout` are 3.13+ fields).

use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use serde_json::json;

use super::common::lapin::{Client, declare_queue};
use super::start;

#[tokio::test]
async fn channels_report_confirm_mode_prefetch_and_unconfirmed() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let plain = client.channel().await;
    let confirming = client.channel().await;
    confirming
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    confirming
        .basic_qos(7, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let transactional = client.channel().await;
    transactional.tx_select().await.expect("tx.select");
    declare_queue(&plain, "q").await;

    let channels = api.get("/api/channels").await.json();
    let by_number = |n: u64| {
        channels
            .as_array()
            .and_then(|all| all.iter().find(|c| c["number"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("channel {n} in {channels}"))
    };
    let first = by_number(1);
    assert_eq!(
        (
            first["confirm"].clone(),
            first["transactional"].clone(),
            first["prefetch_count"].clone(),
            first["messages_unconfirmed"].clone(),
        ),
        (json!(false), json!(false), json!(0), json!(0))
    );
    let second = by_number(2);
    assert_eq!(
        (second["confirm"].clone(), second["prefetch_count"].clone()),
        (json!(true), json!(7))
    );
    assert_eq!(by_number(3)["transactional"], true);
    drop(plain);
}

#[tokio::test]
async fn consumers_carry_their_node_and_ack_timeout() {
    let (broker, api) = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "watched").await;
    let _consumer = ch
        .basic_consume(
            "watched".into(),
            "tag-1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let node = api.get("/api/nodes").await.json()[0]["name"].clone();
    let consumers = api.get("/api/consumers").await.json();
    assert_eq!(consumers[0]["channel_details"]["node"], node);
    assert!(
        consumers[0]["consumer_timeout"].is_u64(),
        "{}",
        consumers[0]
    );
}

#[tokio::test]
async fn nodes_say_whether_they_are_being_drained() {
    let (_broker, api) = start().await;
    let nodes = api.get("/api/nodes").await.json();
    assert_eq!(nodes[0]["being_drained"], false);
    let name = nodes[0]["name"].as_str().expect("name").to_owned();
    let node = api.get(&format!("/api/nodes/{name}")).await.json();
    assert_eq!(node["being_drained"], false);
}

#[tokio::test]
async fn listener_health_checks_answer_as_rabbitmq() {
    let (_broker, api) = start().await;
    let port = api.addr.port();
    let ok = api
        .get(&format!("/api/health/checks/port-listener/{port}"))
        .await;
    assert_eq!(
        (ok.status, ok.json()),
        (200, json!({"status": "ok", "port": port}))
    );
    let missing = api.get("/api/health/checks/port-listener/1").await;
    assert_eq!(missing.status, 503);
    let body = missing.json();
    assert_eq!(
        (
            body["status"].clone(),
            body["reason"].clone(),
            body["missing"].clone()
        ),
        (json!("failed"), json!("No active listener"), json!(1))
    );
    assert!(
        body["ports"]
            .as_array()
            .is_some_and(|p| p.contains(&json!(port))),
        "{body}"
    );
    let invalid = api.get("/api/health/checks/port-listener/abc").await;
    assert_eq!(
        (invalid.status, invalid.json()),
        (
            400,
            json!({"error": "bad_request", "reason": "Invalid port"})
        )
    );

    for asked in ["amqp", "amqp091"] {
        let ok = api
            .get(&format!("/api/health/checks/protocol-listener/{asked}"))
            .await;
        assert_eq!(
            (ok.status, ok.json()),
            (200, json!({"status": "ok", "protocol": "amqp"}))
        );
    }
    let mqtt = api.get("/api/health/checks/protocol-listener/mqtt").await;
    assert_eq!(mqtt.status, 503);
    let body = mqtt.json();
    assert_eq!(
        (body["missing"].clone(), body["reason"].clone()),
        (json!("mqtt"), json!("No active listener"))
    );
    assert!(
        body["protocols"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("amqp"))),
        "{body}"
    );
}

#[tokio::test]
async fn single_node_health_checks_pass() {
    let (_broker, api) = start().await;
    for path in ["node-is-quorum-critical", "node-is-mirror-sync-critical"] {
        let r = api.get(&format!("/api/health/checks/{path}")).await;
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({"status": "ok", "reason": "single node cluster"})
            ),
            "{path}"
        );
    }
    let r = api.get("/api/health/checks/virtual-hosts").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = api
        .get("/api/health/checks/certificate-expiration/1/weeks")
        .await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = api
        .get("/api/health/checks/certificate-expiration/1/fortnights")
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_users_connections_are_listed_and_closed_by_username() {
    let (broker, api) = start().await;
    let mut client = Client::connect(&broker).await;
    let _ch = client.channel().await;
    let node = api.get("/api/nodes").await.json()[0]["name"].clone();
    let name = api.get("/api/connections").await.json()[0]["name"].clone();
    let listed = api.get("/api/connections/username/guest").await;
    assert_eq!(
        (listed.status, listed.json()),
        (
            200,
            json!([{"name": name, "node": node, "user": "guest", "vhost": "/"}])
        )
    );
    assert_eq!(
        api.get("/api/connections/username/nobody").await.json(),
        json!([])
    );
    assert_eq!(
        api.delete("/api/connections/username/nobody").await.status,
        204
    );
    assert_eq!(
        api.delete("/api/connections/username/guest").await.status,
        204
    );
    assert_eq!(
        client.exception().await,
        (
            320,
            "CONNECTION_FORCED - Closed via management plugin".into()
        )
    );
}

#[tokio::test]
async fn a_nodes_memory_breakdown_is_not_available() {
    let (_broker, api) = start().await;
    let name = api.get("/api/nodes").await.json()[0]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let memory = api.get(&format!("/api/nodes/{name}/memory")).await;
    assert_eq!(
        (memory.status, memory.json()),
        (200, json!({"memory": "not_available"}))
    );
    assert_eq!(api.get("/api/nodes/nonode/memory").await.status, 404);
}

#[tokio::test]
async fn policies_parameters_and_limits_are_listed_empty() {
    let (_broker, api) = start().await;
    for path in [
        "/api/policies",
        "/api/policies/%2F",
        "/api/operator-policies",
        "/api/operator-policies/%2F",
        "/api/parameters",
        "/api/vhost-limits",
        "/api/vhost-limits/%2F",
        "/api/user-limits",
        "/api/user-limits/guest",
        "/api/feature-flags",
    ] {
        let r = api.get(path).await;
        assert_eq!((r.status, r.json()), (200, json!([])), "{path}");
    }
    for path in [
        "/api/policies/nope",
        "/api/vhost-limits/nope",
        "/api/user-limits/nobody",
    ] {
        assert_eq!(api.get(path).await.status, 404, "{path}");
    }
    let put = r#"{"password":"pw","tags":"management"}"#;
    assert_eq!(api.put("/api/users/manager", put).await.status, 201);
    let manager = super::common::http::Http::new(api.addr, "manager", "pw");
    assert_eq!(manager.get("/api/policies").await.status, 200);
    assert_eq!(manager.get("/api/feature-flags").await.status, 401);
    let refused = manager.get("/api/parameters").await;
    assert_eq!(
        (refused.status, refused.json()),
        (
            401,
            json!({"error": "not_authorised", "reason": "User not authorised to access object"})
        )
    );
}

#[tokio::test]
async fn bindings_are_listed_in_rabbitmqs_order() {
    let (_broker, api) = start().await;
    for q in ["zq", "aq"] {
        assert_eq!(
            api.put(&format!("/api/queues/%2F/{q}"), "{}").await.status,
            201
        );
    }
    assert_eq!(
        api.put("/api/exchanges/%2F/x1", r#"{"type":"direct"}"#)
            .await
            .status,
        201
    );
    for path in ["q/zq", "e/amq.topic", "q/aq"] {
        let bound = api
            .post(
                &format!("/api/bindings/%2F/e/x1/{path}"),
                r#"{"routing_key":"k"}"#,
            )
            .await;
        assert_eq!(bound.status, 201, "{path}");
    }
    let listed: Vec<(String, String)> = api
        .get("/api/bindings/%2F")
        .await
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| {
            (
                b["source"].as_str().unwrap_or_default().to_owned(),
                b["destination"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("", "aq"),
        ("", "zq"),
        ("x1", "amq.topic"),
        ("x1", "aq"),
        ("x1", "zq"),
    ];
    assert_eq!(
        listed,
        expected.map(|(s, d)| (s.to_owned(), d.to_owned())).to_vec()
    );
}

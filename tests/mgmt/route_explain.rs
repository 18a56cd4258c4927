//! POST /api/route-explain/{vhost}: where a message would go, hop by hop,
//! without publishing; and the partitioning exchanges in the API
//! (`/api/exchanges`, definitions export and import).

use serde_json::{Value, json};

use super::start;
use crate::common::http::Http;

async fn setup(api: &Http) {
    for q in ["re-q1", "re-q2", "re-lost", "re-cc"] {
        assert_eq!(
            api.put(&format!("/api/queues/%2F/{q}"), "{}").await.status,
            201
        );
    }
    for (x, body) in [
        ("re-ae", r#"{"type":"fanout"}"#),
        (
            "re-topic",
            r#"{"type":"topic","arguments":{"alternate-exchange":"re-ae"}}"#,
        ),
        ("re-inner", r#"{"type":"direct"}"#),
        ("re-ch", r#"{"type":"x-consistent-hash"}"#),
    ] {
        assert_eq!(
            api.put(&format!("/api/exchanges/%2F/{x}"), body)
                .await
                .status,
            201,
            "{x}"
        );
    }
    for (path, key) in [
        ("e/re-topic/q/re-q1", "order.*"),
        ("e/re-topic/e/re-inner", "order.#"),
        ("e/re-inner/q/re-q2", "order.eu"),
        ("e/re-ae/q/re-lost", ""),
        ("e/re-ch/q/re-q1", "1"),
        ("e/re-ch/q/re-q2", "3"),
        ("e/re-topic/q/re-cc", "audit"),
    ] {
        let body = json!({"routing_key": key}).to_string();
        assert_eq!(
            api.post(&format!("/api/bindings/%2F/{path}"), &body)
                .await
                .status,
            201,
            "{path}"
        );
    }
}

async fn explain(api: &Http, body: Value) -> (u16, Value) {
    let r = api.post("/api/route-explain/%2F", &body.to_string()).await;
    (r.status, r.json())
}

#[tokio::test]
async fn explains_bindings_exchange_hops_and_the_alternate_exchange() {
    let (_broker, api) = start().await;
    setup(&api).await;
    let (status, e) = explain(
        &api,
        json!({"exchange": "re-topic", "routing_key": "order.eu", "headers": {"CC": ["audit"]}}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["routing_keys"], json!(["order.eu", "audit"]));
    assert_eq!(e["queues"], json!(["re-cc", "re-q1", "re-q2"]));
    assert_eq!(e["routed"], json!(true));
    let hops = e["hops"].as_array().expect("hops");
    assert_eq!(hops[0]["exchange"], "re-topic");
    assert_eq!(hops[0]["type"], "topic");
    let mut keys: Vec<&str> = hops[0]["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .filter_map(|b| b["routing_key"].as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["audit", "order.#", "order.*"]);
    assert!(
        hops[0]["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .any(|b| b
                == &json!({"destination": "re-inner", "destination_type": "exchange",
                   "routing_key": "order.#", "arguments": {}}))
    );
    assert_eq!(hops[1]["exchange"], "re-inner");
    assert_eq!(
        hops[1]["bindings"],
        json!([{"destination": "re-q2", "destination_type": "queue", "routing_key": "order.eu", "arguments": {}}])
    );

    // Nothing matches: the alternate exchange takes it.
    let (_, e) = explain(
        &api,
        json!({"exchange": "re-topic", "routing_key": "invoice"}),
    )
    .await;
    assert_eq!(e["queues"], json!(["re-lost"]));
    assert_eq!(e["hops"][0]["bindings"], json!([]));
    assert_eq!(e["hops"][0]["alternate_exchange"], "re-ae");
    assert_eq!(e["hops"][1]["exchange"], "re-ae");

    // Explaining publishes nothing.
    let q = api.get("/api/queues/%2F/re-q2").await.json();
    assert_eq!(q["messages"], json!(0));
}

#[tokio::test]
async fn explains_the_default_exchange_and_partitions() {
    let (_broker, api) = start().await;
    setup(&api).await;
    let (_, e) = explain(
        &api,
        json!({"exchange": "amq.default", "routing_key": "re-q1", "headers": {"BCC": ["re-q2", "nope"]}}),
    )
    .await;
    assert_eq!(e["queues"], json!(["re-q1", "re-q2"]));
    assert_eq!(e["hops"][0]["exchange"], "");
    assert_eq!(e["hops"][0]["bindings"][1]["routing_key"], "re-q2");

    let (_, e) = explain(
        &api,
        json!({"exchange": "re-ch", "routing_key": "customer-7"}),
    )
    .await;
    let partition = &e["hops"][0]["partition"];
    assert_eq!(partition["hashed"], "routing key");
    assert_eq!(e["queues"], json!([partition["destination"].clone()]));
    assert_eq!(e["hops"][0]["bindings"].as_array().map(Vec::len), Some(1));
    assert_eq!(e["hops"][0]["type"], "x-consistent-hash");
    // The same key, the same partition.
    let (_, again) = explain(
        &api,
        json!({"exchange": "re-ch", "routing_key": "customer-7"}),
    )
    .await;
    assert_eq!(again["queues"], e["queues"]);
}

#[tokio::test]
async fn missing_things_and_permissions() {
    let (_broker, api) = start().await;
    setup(&api).await;
    let (status, e) = explain(&api, json!({"exchange": "nope", "routing_key": "k"})).await;
    assert_eq!(
        (status, e["reason"].clone()),
        (404, json!("no exchange 'nope' in vhost '/'"))
    );
    let r = api
        .post("/api/route-explain/nope", r#"{"exchange":"x"}"#)
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .post("/api/route-explain/%2F", r#"{"routing_key":"k"}"#)
        .await;
    assert_eq!(r.status, 400, "exchange is required");
    // A user who may read but not write the exchange is refused, as a publish would be.
    assert_eq!(
        api.put(
            "/api/users/reader",
            r#"{"password":"pw","tags":"management"}"#
        )
        .await
        .status,
        201
    );
    assert_eq!(
        api.put(
            "/api/permissions/%2F/reader",
            r#"{"configure":"","write":"","read":".*"}"#
        )
        .await
        .status,
        201
    );
    let reader = Http::new(api.addr, "reader", "pw");
    let r = reader
        .post("/api/route-explain/%2F", r#"{"exchange":"re-topic"}"#)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn partitioning_exchanges_in_the_api_and_definitions() {
    let (_broker, api) = start().await;
    let body =
        r#"{"type":"x-consistent-hash","durable":true,"arguments":{"hash-header":"customer"}}"#;
    assert_eq!(
        api.put("/api/exchanges/%2F/re-def-ch", body).await.status,
        201
    );
    let body = r#"{"type":"x-modulus-hash","durable":true}"#;
    assert_eq!(
        api.put("/api/exchanges/%2F/re-def-mod", body).await.status,
        201
    );
    let both = r#"{"type":"x-consistent-hash","arguments":{"hash-header":"a","hash-property":"message_id"}}"#;
    let refused = api.put("/api/exchanges/%2F/re-def-bad", both).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["reason"],
        "hash-header and hash-property are mutually exclusive"
    );
    assert_eq!(
        api.get("/api/exchanges/%2F/re-def-ch").await.json()["type"],
        "x-consistent-hash"
    );
    assert_eq!(
        api.get("/api/exchanges/%2F/re-def-mod").await.json()["type"],
        "x-modulus-hash"
    );
    let defs = api.get("/api/definitions").await.json();
    let exported: Vec<&Value> = defs["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .filter(|x| x["name"].as_str().is_some_and(|n| n.starts_with("re-def")))
        .collect();
    assert_eq!(exported.len(), 2);
    assert!(exported.iter().any(|x| x["type"] == "x-consistent-hash"
        && x["arguments"] == json!({"hash-header": "customer"})));

    // Import into a fresh broker.
    let (_other, api2) = start().await;
    let r = api2.post("/api/definitions", &defs.to_string()).await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(
        api2.get("/api/exchanges/%2F/re-def-mod").await.json()["type"],
        "x-modulus-hash"
    );
}

#[tokio::test]
async fn a_policy_alternate_exchange_and_internal_exchanges() {
    let (_broker, api) = start().await;
    setup(&api).await;
    assert_eq!(
        api.put("/api/exchanges/%2F/re-pol", r#"{"type":"direct"}"#)
            .await
            .status,
        201
    );
    let policy = r#"{"pattern":"^re-pol$","definition":{"alternate-exchange":"re-ae"},"apply-to":"exchanges"}"#;
    let status = api
        .put("/api/policies/%2F/re-ae-policy", policy)
        .await
        .status;
    assert!(status == 201 || status == 204, "{status}");
    let (_, e) = explain(&api, json!({"exchange": "re-pol", "routing_key": "k"})).await;
    assert_eq!(e["hops"][0]["alternate_exchange"], "re-ae");
    assert_eq!(e["queues"], json!(["re-lost"]));

    let internal = r#"{"type":"fanout","internal":true}"#;
    assert_eq!(
        api.put("/api/exchanges/%2F/re-internal", internal)
            .await
            .status,
        201
    );
    let (status, e) = explain(&api, json!({"exchange": "re-internal"})).await;
    assert_eq!(status, 401, "{e}");
    assert_eq!(
        e["reason"],
        "cannot publish to internal exchange 're-internal' in vhost '/'"
    );
}

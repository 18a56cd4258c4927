//! Exchanges, queues, bindings, publish, get and purge through the API;
//! pagination and columns; /metrics.

use serde_json::json;

use super::start;

#[tokio::test]
async fn queues_exchanges_and_bindings() {
    let (_broker, api) = start().await;
    let q = r#"{"durable":true,"arguments":{"x-max-length":10}}"#;
    assert_eq!(api.put("/api/queues/%2F/q1", q).await.status, 201);
    assert_eq!(api.put("/api/queues/%2F/q1", q).await.status, 204);
    let inequivalent = api.put("/api/queues/%2F/q1", r#"{"durable":false}"#).await;
    assert_eq!(inequivalent.status, 400);
    assert_eq!(
        inequivalent.json(),
        json!({"error": "bad_request", "reason": "inequivalent arg 'durable' for queue 'q1' in vhost '/': received 'false' but current is 'true'"})
    );
    let no_vhost = api.put("/api/queues/nope/q", "{}").await;
    assert_eq!(
        (no_vhost.status, no_vhost.json()["reason"].clone()),
        (404, json!("vhost_not_found"))
    );

    assert_eq!(
        api.put("/api/exchanges/%2F/x1", r#"{"type":"fanout"}"#)
            .await
            .status,
        201
    );
    assert_eq!(
        api.put("/api/exchanges/%2F/x1", r#"{"type":"fanout"}"#)
            .await
            .status,
        204
    );
    let bogus = api
        .put("/api/exchanges/%2F/x2", r#"{"type":"bogus"}"#)
        .await;
    assert_eq!(bogus.json()["reason"], "unknown exchange type 'bogus'");
    let system = api.put("/api/exchanges/%2F/amq.foo", "{}").await;
    assert_eq!(
        system.json(),
        json!({"error": "not_authorised", "reason": "Access refused."})
    );
    let x1 = api.get("/api/exchanges/%2F/x1").await.json();
    assert_eq!(
        (x1["type"].clone(), x1["durable"].clone()),
        (json!("fanout"), json!(false))
    );
    assert_eq!(
        api.get("/api/exchanges/%2F/amq.default").await.json()["name"],
        ""
    );

    let bound = api
        .post(
            "/api/bindings/%2F/e/x1/q/q1",
            r#"{"routing_key":"k","arguments":{}}"#,
        )
        .await;
    assert_eq!(bound.status, 201);
    assert_eq!(bound.header("location"), Some("q1/k"));
    let missing = api
        .post("/api/bindings/%2F/e/nope/q/q1", r#"{"routing_key":"k"}"#)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["reason"], "no exchange 'nope' in vhost '/'");
    assert_eq!(
        api.get("/api/bindings/%2F/e/x1/q/q1/k").await.json(),
        json!({"source": "x1", "vhost": "/", "destination": "q1", "destination_type": "queue",
               "routing_key": "k", "arguments": {}, "properties_key": "k"})
    );
    let all = api.get("/api/bindings/%2F").await.json();
    assert_eq!(
        all[0]["source"], "",
        "the default exchange's binding comes first"
    );
    assert_eq!(all.as_array().map(Vec::len), Some(2));

    // publish / get / purge
    let publish = |key: &str| {
        format!(
            r#"{{"properties":{{"delivery_mode":2}},"routing_key":"{key}","payload":"hello","payload_encoding":"string"}}"#
        )
    };
    assert_eq!(
        api.post("/api/exchanges/%2F/amq.default/publish", &publish("q1"))
            .await
            .json(),
        json!({"routed": true})
    );
    assert_eq!(
        api.post("/api/exchanges/%2F/amq.default/publish", &publish("zz"))
            .await
            .json(),
        json!({"routed": false})
    );
    assert_eq!(
        api.post("/api/exchanges/%2F/x1/publish", &publish("any"))
            .await
            .json(),
        json!({"routed": true})
    );
    let incomplete = api
        .post(
            "/api/exchanges/%2F/x1/publish",
            r#"{"routing_key":"k","payload":"x"}"#,
        )
        .await;
    assert_eq!(
        incomplete.json()["reason"],
        "[{key_missing,properties},{key_missing,payload_encoding}]"
    );
    let queue = api.get("/api/queues/%2F/q1?columns=name,messages,messages_ready,messages_unacknowledged,message_bytes").await;
    assert_eq!(
        queue.json(),
        json!({"name": "q1", "messages": 2, "messages_ready": 2, "messages_unacknowledged": 0, "message_bytes": 10})
    );
    let got = api
        .post(
            "/api/queues/%2F/q1/get",
            r#"{"count":5,"ackmode":"ack_requeue_true","encoding":"auto"}"#,
        )
        .await
        .json();
    assert_eq!(got.as_array().map(Vec::len), Some(2));
    assert_eq!(got[0]["payload"], "hello");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["message_count"], 1);
    assert_eq!(got[0]["properties"], json!({"delivery_mode": 2}));
    // Requeued: still there, now redelivered.
    let again = api
        .post(
            "/api/queues/%2F/q1/get",
            r#"{"count":1,"ackmode":"ack_requeue_false","encoding":"base64"}"#,
        )
        .await
        .json();
    assert_eq!(
        (again[0]["redelivered"].clone(), again[0]["payload"].clone()),
        (json!(true), json!("aGVsbG8="))
    );
    assert_eq!(api.get("/api/queues/%2F/q1").await.json()["messages"], 1);
    assert_eq!(api.delete("/api/queues/%2F/q1/contents").await.status, 204);
    assert_eq!(api.get("/api/queues/%2F/q1").await.json()["messages"], 0);

    assert_eq!(
        api.delete("/api/bindings/%2F/e/x1/q/q1/k").await.status,
        204
    );
    assert_eq!(
        api.delete("/api/bindings/%2F/e/x1/q/q1/k").await.status,
        404
    );
    assert_eq!(api.delete("/api/exchanges/%2F/x1").await.status, 204);
    assert_eq!(api.delete("/api/queues/%2F/q1").await.status, 204);
    let gone = api.get("/api/queues/%2F/q1").await;
    assert_eq!(
        (gone.status, gone.json()),
        (
            404,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    assert_eq!(api.get("/api/no-such-thing").await.status, 404);
}

#[tokio::test]
async fn lists_paginate_and_keep_columns() {
    let (_broker, api) = start().await;
    for q in ["a1", "a2", "b1"] {
        assert_eq!(
            api.put(&format!("/api/queues/%2F/{q}"), "{}").await.status,
            201
        );
    }
    let page = api
        .get("/api/queues?page=2&page_size=1&columns=name")
        .await
        .json();
    assert_eq!(
        page,
        json!({"filtered_count": 3, "item_count": 1, "items": [{"name": "a2"}], "page": 2,
               "page_count": 3, "page_size": 1, "total_count": 3})
    );
    let filtered = api
        .get("/api/queues?page=1&name=%5Ea&use_regex=true&columns=name")
        .await
        .json();
    assert_eq!(filtered["items"], json!([{"name": "a1"}, {"name": "a2"}]));
    assert_eq!(filtered["filtered_count"], 2);
    let out_of_range = api.get("/api/queues?page=5&page_size=1").await;
    assert_eq!(
        out_of_range.json(),
        json!({"error": "page_out_of_range", "reason": "Page out of range, page: 5 page size: 1, len: 3"})
    );
    assert_eq!(
        api.get("/api/queues?page=0").await.json()["error"],
        "invalid_pagination_parameters"
    );
    let plain = api.get("/api/queues/%2F?columns=name,durable").await.json();
    assert_eq!(plain[2], json!({"name": "b1", "durable": false}));
}

/// Parses the exposition format strictly enough to catch malformed output:
/// every sample belongs to a metric declared by `# TYPE` before it.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut declared = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            declared.push(name.to_owned());
        } else if line.starts_with("# HELP ") || line.is_empty() {
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let name = series.split('{').next().expect("name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| declared.iter().any(|d| d == family));
            let name = family.unwrap_or(name);
            assert!(declared.iter().any(|d| d == name), "undeclared {name}");
            assert!(series.ends_with('}') == series.contains('{'), "{line}");
            samples.push((series.to_owned(), value.parse().expect("number")));
        }
    }
    samples
}

#[tokio::test]
async fn metrics_use_rabbitmq_names() {
    let (broker, api) = start().await;
    assert_eq!(api.put("/api/queues/%2F/m1", "{}").await.status, 201);
    let publish =
        r#"{"properties":{},"routing_key":"m1","payload":"abc","payload_encoding":"string"}"#;
    api.post("/api/exchanges/%2F/amq.default/publish", publish)
        .await;
    let conn = super::common::lapin::connect(&broker.uri("")).await;
    let _ch = conn.create_channel().await.expect("channel");
    let response = api.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let samples = parse_metrics(&response.body);
    let value = |name: &str| samples.iter().find(|(s, _)| s == name).map(|(_, v)| *v);
    assert_eq!(value("rabbitmq_queue_messages_ready"), Some(1.0));
    assert_eq!(value("rabbitmq_queue_messages_unacked"), Some(0.0));
    assert_eq!(value("rabbitmq_queues"), Some(1.0));
    assert_eq!(value("rabbitmq_connections"), Some(1.0));
    assert_eq!(value("rabbitmq_channels"), Some(1.0));
    let per_queue = parse_metrics(&api.get("/metrics/per-object").await.body);
    assert!(per_queue.contains(&(
        "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"m1\"}".into(),
        1.0
    )));
}

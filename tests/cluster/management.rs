//! The management API changes definitions through any node, and users, vhosts,
//! permissions and policies are the same on every node.

use super::*;
use crate::nodes::Nodes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_changes_definitions_through_any_node() {
    let nodes = Nodes::start().await;
    let put = nodes
        .api(1)
        .put(
            "/api/queues/%2f/jobs",
            r#"{"durable":true,"arguments":{"x-max-length":100}}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let put = nodes
        .api(0)
        .put(
            "/api/exchanges/%2f/work",
            r#"{"type":"direct","durable":true}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let bound = nodes
        .api(2)
        .post(
            "/api/bindings/%2f/e/work/q/jobs",
            r#"{"routing_key":"resize"}"#,
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);

    // Every node lists the queue with the node it lives on.
    for i in 0..3 {
        let home = common::eventually(Some("warren@n2".to_string()), async || {
            let resp = nodes.api(i).get("/api/queues/%2f/jobs").await;
            (resp.status == 200).then(|| resp.json()["node"].as_str().unwrap_or("").to_owned())
        })
        .await;
        assert_eq!(home.as_deref(), Some("warren@n2"), "GET on node {i}");
        let listed = nodes.api(i).get("/api/queues/%2f").await.json();
        let names: Vec<&str> = listed
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|q| q["name"].as_str())
            .collect();
        assert!(names.contains(&"jobs"), "node {i} lists {names:?}");
    }
    let bindings = nodes
        .api(0)
        .get("/api/exchanges/%2f/work/bindings/source")
        .await
        .json();
    assert_eq!(bindings.as_array().map(Vec::len), Some(1), "{bindings}");

    // An inequivalent redeclare is refused alike through a node the queue does not live on.
    let put = nodes
        .api(2)
        .put(
            "/api/queues/%2f/jobs",
            r#"{"durable":true,"arguments":{"x-max-length":5}}"#,
        )
        .await;
    assert_eq!(put.status, 400, "{}", put.body);
    assert!(
        put.body.contains("inequivalent arg 'x-max-length'"),
        "{}",
        put.body
    );

    // A delete through a node that only has the record removes it everywhere.
    let deleted = nodes.api(0).delete("/api/queues/%2f/jobs").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    for i in 0..3 {
        let status = common::eventually(404, async || {
            nodes.api(i).get("/api/queues/%2f/jobs").await.status
        })
        .await;
        assert_eq!(status, 404, "queue gone on node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_vhosts_permissions_and_policies_are_the_same_on_every_node() {
    let nodes = Nodes::start().await;
    let put = nodes.api(0).put("/api/vhosts/billing", "{}").await;
    assert_eq!(put.status, 201, "{}", put.body);
    let put = nodes
        .api(1)
        .put("/api/users/alice", r#"{"password":"s3cret","tags":""}"#)
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let put = nodes
        .api(2)
        .put(
            "/api/permissions/billing/alice",
            r#"{"configure":".*","write":".*","read":".*"}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let put = nodes
        .api(1)
        .put(
            "/api/policies/billing/short",
            r#"{"pattern":"^short","definition":{"max-length":3},"apply-to":"queues"}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);

    // Alice reaches her vhost through any node, and the policy is in force there.
    for i in 0..3 {
        let uri = format!(
            "amqp://alice:s3cret@127.0.0.1:{}/billing",
            nodes.ports[i].amqp
        );
        let conn = common::eventually(true, async || {
            lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .is_ok()
        })
        .await;
        assert!(conn, "alice logs in to billing on node {i}");
        let policies = nodes.api(i).get("/api/policies/billing").await.json();
        assert_eq!(
            policies.as_array().map(Vec::len),
            Some(1),
            "node {i}: {policies}"
        );
    }
    let conn = connect(&format!(
        "amqp://alice:s3cret@127.0.0.1:{}/billing",
        nodes.ports[2].amqp
    ))
    .await;
    let ch = common::lapin::confirming(&conn).await;
    ch.queue_declare("short-q".into(), durable_queue(), FieldTable::default())
        .await
        .expect("alice declares on n3");
    for i in 0..5u8 {
        ch.basic_publish(
            "".into(),
            "short-q".into(),
            BasicPublishOptions::default(),
            &[i],
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let depth = nodes.api(2).get("/api/queues/billing/short-q").await.json();
    assert_eq!(
        depth["messages"], 3,
        "the policy set on n2 limits the queue on n3: {depth}"
    );

    // A user deleted through one node can no longer log in through another.
    let deleted = nodes.api(0).delete("/api/users/alice").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let uri = format!(
        "amqp://alice:s3cret@127.0.0.1:{}/billing",
        nodes.ports[1].amqp
    );
    let refused_login = common::eventually(true, async || {
        lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .is_err()
    })
    .await;
    assert!(refused_login, "alice is gone on n2 too");

    // Deleting the vhost through n2 removes it and its queues everywhere.
    let deleted = nodes.api(1).delete("/api/vhosts/billing").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    for i in 0..3 {
        let status = common::eventually(404, async || {
            nodes.api(i).get("/api/vhosts/billing").await.status
        })
        .await;
        assert_eq!(status, 404, "vhost gone on node {i}");
    }
}

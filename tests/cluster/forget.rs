//! A node gone for good (issue 18): forgotten through another node, it leaves the cluster
//! and every quorum queue's group, as RabbitMQ's `forget_cluster_node` shrinks quorum
//! queues; a new node then takes its place, and the cluster survives the next loss.

use std::time::Duration;

use lapin::options::BasicAckOptions;

use super::common::lapin::{confirming, next_delivery};
use super::quorum_members::members;
use super::{channel, durable_queue, publish_numbers, table, text, within};
use crate::nodes::Nodes;

/// The nodes node `i` lists, by name, with whether each runs.
async fn listed(nodes: &Nodes, i: usize) -> Vec<(String, bool)> {
    let mut names: Vec<(String, bool)> = nodes
        .listed_on(i)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, running, _)| (name, running))
        .collect();
    names.sort();
    names
}

fn named(names: &[&str]) -> Vec<(String, bool)> {
    names.iter().map(|n| (n.to_string(), true)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_node_leaves_the_quorum_queues_and_a_new_node_replaces_it() {
    let mut nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare(
        "replaced".into(),
        durable_queue(),
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("declare");
    publish_numbers(&ch1, "replaced", 0..10).await;
    let api = nodes.api(0);
    let forget = "/api/cluster/forget";

    // A running node, this node and an unknown one are not forgotten.
    let running = api.post(forget, "{\"node\":\"warren@n3\"}").await;
    assert_eq!(running.status, 400, "{}", running.body);
    assert!(running.body.contains("running"), "{}", running.body);
    let itself = api.post(forget, "{\"node\":\"warren@n1\"}").await;
    assert_eq!(itself.status, 400, "{}", itself.body);
    let unknown = api.post(forget, "{\"node\":\"warren@n9\"}").await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);

    // n3's machine dies; it is forgotten through n1.
    nodes.kill(2);
    let down = within(Duration::from_secs(20), false, async || {
        listed(&nodes, 0)
            .await
            .iter()
            .any(|(name, running)| name == "warren@n3" && *running)
    })
    .await;
    assert!(!down, "n1 sees n3 down");
    let forgot = api.post(forget, "{\"node\":\"warren@n3\"}").await;
    assert_eq!(forgot.status, 204, "{}", forgot.body);
    for i in 0..2 {
        let now = within(
            Duration::from_secs(20),
            named(&["warren@n1", "warren@n2"]),
            async || listed(&nodes, i).await,
        )
        .await;
        assert_eq!(
            now,
            named(&["warren@n1", "warren@n2"]),
            "nodes on n{}",
            i + 1
        );
        let left = within(Duration::from_secs(30), 2, async || {
            members(&nodes, i, "replaced").await.len()
        })
        .await;
        assert_eq!(left, 2, "the queue's members on n{}", i + 1);
    }

    // A new machine joins and the queue grows onto it: three members again.
    let n4 = nodes.launch_another();
    assert_eq!(n4, 3);
    let all = named(&["warren@n1", "warren@n2", "warren@n4"]);
    let joined = within(Duration::from_secs(40), all.clone(), async || {
        listed(&nodes, 0).await
    })
    .await;
    assert_eq!(joined, all, "n4 joined");
    let grown = api
        .post(
            "/api/queues/quorum/replicas/on/warren@n4/grow",
            "{\"strategy\":\"all\",\"vhost_pattern\":\".*\",\"queue_pattern\":\".*\"}",
        )
        .await;
    assert_eq!(grown.status, 200, "{}", grown.body);
    assert!(grown.body.contains("\"grown\":1"), "{}", grown.body);
    let three = within(Duration::from_secs(30), 3, async || {
        members(&nodes, 0, "replaced").await.len()
    })
    .await;
    assert_eq!(three, 3);

    // n2 dies too. Were n3 still a voter, n1 and n4 would be two of four: no majority.
    // They are two of three, so the queue takes confirmed publishes and delivers them all.
    nodes.kill(1);
    publish_numbers(&ch1, "replaced", 10..20).await;
    let (_c, ch) = channel(&nodes.uri(3)).await;
    let mut consumer = super::remote_queues::consumer(&ch, "replaced", "after", false).await;
    for expected in 0..20u32 {
        let d = next_delivery(&mut consumer).await;
        let got = u32::from_be_bytes(d.data.as_slice().try_into().expect("4 bytes"));
        assert_eq!(got, expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_target_group_size_quorum_queues_grow_back_by_themselves() {
    let target = vec!["--quorum-target-group-size".to_owned(), "3".to_owned()];
    let mut nodes = Nodes::start_with(vec![target; 3]).await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare(
        "healed".into(),
        durable_queue(),
        table(&[
            ("x-queue-type", text("quorum")),
            (
                "x-quorum-initial-group-size",
                lapin::types::AMQPValue::LongInt(2),
            ),
        ]),
    )
    .await
    .expect("declare");
    publish_numbers(&ch1, "healed", 0..5).await;
    // Declared with two members, it grows to the target on its own.
    let grown = within(Duration::from_secs(30), 3, async || {
        members(&nodes, 0, "healed").await.len()
    })
    .await;
    assert_eq!(grown, 3, "grown to the target size");

    // n3 dies and is forgotten: two members; n4 joins: three again, without a grow.
    nodes.kill(2);
    let forget = "/api/cluster/forget";
    let forgot = within(Duration::from_secs(20), 204, async || {
        nodes
            .api(0)
            .post(forget, "{\"node\":\"warren@n3\"}")
            .await
            .status
    })
    .await;
    assert_eq!(forgot, 204, "n3 forgotten once seen down");
    let shrunk = within(Duration::from_secs(30), 2, async || {
        members(&nodes, 0, "healed").await.len()
    })
    .await;
    assert_eq!(shrunk, 2);
    let n4 = nodes.launch_another();
    let healed = within(Duration::from_secs(60), 3, async || {
        members(&nodes, 0, "healed").await.len()
    })
    .await;
    assert_eq!(healed, 3, "grown onto the new node");
    assert!(
        members(&nodes, 0, "healed")
            .await
            .contains(&"warren@n4".to_owned()),
        "n4 is a member"
    );
    let hosts = within(Duration::from_secs(30), true, async || {
        super::quorum_members::queue_json(&nodes, n4, "healed").await["leader"].is_string()
    })
    .await;
    assert!(hosts, "n4 runs the queue's group");
    let (_c, ch) = channel(&nodes.uri(n4)).await;
    let mut consumer = super::remote_queues::consumer(&ch, "healed", "n4", false).await;
    for expected in 0..5u32 {
        let d = next_delivery(&mut consumer).await;
        let got = u32::from_be_bytes(d.data.as_slice().try_into().expect("4 bytes"));
        assert_eq!(got, expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

//! Quorum queues on three nodes (issue 18, step 7): declared through any node, replicated
//! to every member, confirmed once a majority has a publish, consumed on any member, and
//! still there with their messages when a node is killed.

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

use super::common::lapin::{confirming, next_delivery, refused};
use super::{channel, durable_queue, passive_queue, publish_numbers, table, text};
use crate::nodes::Nodes;

fn quorum() -> FieldTable {
    table(&[("x-queue-type", text("quorum"))])
}

fn number(data: &[u8]) -> u32 {
    u32::from_be_bytes(data.try_into().expect("4 bytes"))
}

async fn declare_quorum(ch: &Channel, name: &str) {
    ch.queue_declare(name.into(), durable_queue(), quorum())
        .await
        .unwrap_or_else(|e| panic!("quorum queue {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_is_replicated_and_consumed_on_any_member() {
    let nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    declare_quorum(&ch1, "orders").await;

    // The management API reports what it is.
    let listed = super::common::eventually(true, async || {
        let body = nodes.api(1).get("/api/queues/%2f/orders").await.body;
        body.contains("\"type\":\"quorum\"")
    })
    .await;
    assert!(listed, "n2 lists the quorum queue with its type");

    // Confirmed publishes through n2; consumed with acks through n3.
    let (c2, _) = channel(&nodes.uri(1)).await;
    let ch2 = confirming(&c2).await;
    publish_numbers(&ch2, "orders", 0..100).await;
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    ch3.basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut on_n3 = super::remote_queues::consumer(&ch3, "orders", "n3", false).await;
    for expected in 0..100u32 {
        let d = next_delivery(&mut on_n3).await;
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // Every member agrees the queue is empty, with one consumer.
    for i in 0..3 {
        let counts = super::common::eventually((0, 1), async || {
            let (_c, ch) = channel(&nodes.uri(i)).await;
            let q = ch
                .queue_declare("orders".into(), passive_queue(), FieldTable::default())
                .await
                .expect("passive");
            (q.message_count(), q.consumer_count())
        })
        .await;
        assert_eq!(counts, (0, 1), "(ready, consumers) on node {i}");
    }

    // A requeued message comes back first, redelivered, with its delivery count.
    publish_numbers(&ch2, "orders", 100..101).await;
    let first = next_delivery(&mut on_n3).await;
    assert_eq!(number(&first.data), 100);
    first
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .expect("nack");
    let again = next_delivery(&mut on_n3).await;
    assert_eq!(number(&again.data), 100);
    assert!(again.redelivered);
    let count = again
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    assert_eq!(count, Some(AMQPValue::LongLongInt(1)));
    again.ack(BasicAckOptions::default()).await.expect("ack");

    // basic.get through n1.
    publish_numbers(&ch2, "orders", 7..8).await;
    drop(on_n3);
    ch3.close(200, "bye".into()).await.expect("close");
    let got = super::common::eventually(true, async || {
        ch1.basic_get("orders".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .is_some_and(|m| number(&m.delivery.data) == 7)
    })
    .await;
    assert!(got, "basic.get through n1 takes the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_keeps_its_confirmed_messages_when_a_node_is_killed() {
    let mut nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    declare_quorum(&ch1, "jobs").await;
    let (c2, _) = channel(&nodes.uri(1)).await;
    let ch2 = confirming(&c2).await;
    publish_numbers(&ch2, "jobs", 0..50).await;

    // The node that declared it (and started its group) dies.
    drop(ch1);
    nodes.kill(0);

    // The other two still form a majority: publishes are confirmed and every message is
    // there, in order.
    publish_numbers(&ch2, "jobs", 50..60).await;
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let mut consumer = super::remote_queues::consumer(&ch3, "jobs", "n3", false).await;
    for expected in 0..60u32 {
        let d = tokio::time::timeout(
            Duration::from_secs(20),
            futures_util::StreamExt::next(&mut consumer),
        )
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery");
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }

    // The killed node comes back with the queue, caught up.
    nodes.restart(0).await;
    let counts = super::common::eventually((0, 1), async || {
        let (_c, ch) = channel(&nodes.uri(0)).await;
        match ch
            .queue_declare("jobs".into(), passive_queue(), FieldTable::default())
            .await
        {
            Ok(q) => (q.message_count(), q.consumer_count()),
            Err(_) => (u32::MAX, 0),
        }
    })
    .await;
    assert_eq!(counts, (0, 1), "n1 replayed the queue's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_refuse_what_rabbitmq_refuses() {
    let nodes = Nodes::start().await;
    for (options, property) in [
        (
            QueueDeclareOptions {
                durable: false,
                ..QueueDeclareOptions::default()
            },
            "non-durable",
        ),
        (
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            "exclusive-owner",
        ),
        (
            QueueDeclareOptions {
                durable: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            "auto-delete",
        ),
    ] {
        let (_c, ch) = channel(&nodes.uri(1)).await;
        let (code, text) = refused(ch.queue_declare("q".into(), options, quorum()).await);
        assert_eq!(code, 406, "{text}");
        assert_eq!(
            text,
            format!(
                "PRECONDITION_FAILED - invalid property '{property}' for queue 'q' in vhost '/'"
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_members_consumer_held_is_redelivered() {
    let mut nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    declare_quorum(&ch1, "held").await;
    publish_numbers(&ch1, "held", 0..3).await;

    // The API names the leader and the three members.
    let body = nodes.api(0).get("/api/queues/%2f/held").await.body;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["type"], "quorum", "{body}");
    assert_eq!(json["members"].as_array().map(Vec::len), Some(3), "{body}");
    assert!(
        json["leader"]
            .as_str()
            .is_some_and(|l| l.starts_with("warren@n")),
        "{body}"
    );

    // A consumer on n2 takes the three without acking; then n2 dies.
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let mut on_n2 = super::remote_queues::consumer(&ch2, "held", "n2", false).await;
    for expected in 0..3u32 {
        assert_eq!(number(&next_delivery(&mut on_n2).await.data), expected);
    }
    nodes.kill(1);

    // The leader finds n2 gone and the three come back, to a consumer on n3.
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let mut on_n3 = super::remote_queues::consumer(&ch3, "held", "n3", false).await;
    for expected in 0..3u32 {
        let d = tokio::time::timeout(
            Duration::from_secs(40),
            futures_util::StreamExt::next(&mut on_n3),
        )
        .await
        .expect("redelivered in time")
        .expect("consumer open")
        .expect("delivery");
        assert_eq!(number(&d.data), expected);
        assert!(d.redelivered);
    }
}

/// The bytes of the newest snapshot of every quorum queue group on a node (`raft/snap/<id>`,
/// group 0 excluded).
fn queue_snapshots(dir: &std::path::Path) -> Vec<u64> {
    let Ok(groups) = std::fs::read_dir(dir.join("raft").join("snap")) else {
        return Vec::new();
    };
    groups
        .filter_map(Result::ok)
        .filter(|g| g.file_name() != "0")
        .filter_map(|g| {
            std::fs::read_dir(g.path())
                .ok()?
                .filter_map(Result::ok)
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .max()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_quorum_queue_compacts_its_log_on_every_member() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    declare_quorum(&ch1, "big").await;
    // 12 MiB through the queue, then drained.
    let body = vec![7u8; 64 * 1024];
    let mut confirms = Vec::new();
    for _ in 0..192 {
        confirms.push(
            ch1.basic_publish(
                "".into(),
                "big".into(),
                Default::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .expect("publish"),
        );
    }
    for confirm in confirms {
        assert!(confirm.await.expect("confirm").is_ack());
    }
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let mut consumer = super::remote_queues::consumer(&ch2, "big", "c", true).await;
    for _ in 0..192 {
        next_delivery(&mut consumer).await;
    }
    // Each member snapshots the empty queue: a small snapshot, the log before it purged.
    for i in 0..3 {
        let small = super::common::eventually(true, async || {
            let sizes = queue_snapshots(&nodes.data_dir(i));
            !sizes.is_empty() && sizes.iter().all(|&s| s < 64 * 1024)
        })
        .await;
        assert!(small, "node {i} has a small snapshot of the drained queue");
    }

    // Deleted, the queue's group goes from every member with its snapshots; declared
    // again, the name gets a new group.
    ch1.queue_delete("big".into(), Default::default())
        .await
        .expect("delete");
    for i in 0..3 {
        let gone = super::common::eventually(true, async || {
            queue_snapshots(&nodes.data_dir(i)).is_empty()
        })
        .await;
        assert!(gone, "node {i} removed the deleted queue's group");
    }
    declare_quorum(&ch1, "big").await;
    publish_numbers(&ch1, "big", 0..1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_limits_a_quorum_queue_on_every_member() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    declare_quorum(&ch1, "capped").await;
    let put = nodes
        .api(1)
        .put(
            "/api/policies/%2f/cap",
            r#"{"pattern":"^capped$","definition":{"max-length":2},"apply-to":"quorum_queues"}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    // The limit reaches the queue's log: publishes past it drop the head (the default).
    let limited = super::common::eventually(true, async || {
        publish_numbers(&ch1, "capped", 0..3).await;
        let (_c, ch) = channel(&nodes.uri(2)).await;
        ch.queue_declare("capped".into(), passive_queue(), FieldTable::default())
            .await
            .is_ok_and(|q| q.message_count() == 2)
    })
    .await;
    assert!(limited, "the policy's max-length holds on n3");
    let got = ch1
        .basic_get("capped".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(number(&got.delivery.data), 1, "the oldest were dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_quorum_message_is_dead_lettered() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare("dlq".into(), durable_queue(), FieldTable::default())
        .await
        .expect("dead-letter queue");
    ch1.queue_declare(
        "work".into(),
        durable_queue(),
        table(&[
            ("x-queue-type", text("quorum")),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("dlq")),
        ]),
    )
    .await
    .expect("quorum queue");
    publish_numbers(&ch1, "work", 41..42).await;
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let mut consumer = super::remote_queues::consumer(&ch2, "work", "c", false).await;
    let d = next_delivery(&mut consumer).await;
    d.reject(lapin::options::BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    // The group's leader republishes it to the dead-letter queue, wherever both live.
    let got = super::common::eventually(true, async || {
        ch1.basic_get("dlq".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .is_some_and(|m| number(&m.delivery.data) == 41)
    })
    .await;
    assert!(got, "the rejected message reached the dead-letter queue");
}

//! A node cut off from the other two (the transport's fault hook) and healed: what the
//! isolated node decided alone must not act on the cluster once it is back.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicQosOptions};

use super::common::lapin::{confirming, next_delivery, publish_acked, table, text};
use super::{channel, durable_queue};
use crate::nodes::Nodes;

/// While cut off, a quorum queue's old leader cannot reach the nodes of the queue's
/// consumers and takes them for down; once the cut heals, that verdict must not reach the
/// log that the other two kept writing: the consumer on another node stays, with no
/// basic.cancel, and still receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leaders_verdicts_do_not_cancel_live_consumers() {
    let nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    ch1.queue_declare(
        "cut-q".into(),
        durable_queue(),
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("declare");

    // The leader, a consumer on the next node, a publisher on the third.
    let leader = leader_of(&nodes, "cut-q").await;
    let on = (leader + 1) % 3;
    let from = (leader + 2) % 3;
    let (_cc, consuming) = channel(&nodes.uri(on)).await;
    consuming
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = super::remote_queues::consumer(&consuming, "cut-q", "live", false).await;
    let (cp, _) = channel(&nodes.uri(from)).await;
    let publishing = confirming(&cp).await;
    publish_acked(
        &publishing,
        "",
        "cut-q",
        b"before",
        BasicProperties::default(),
    )
    .await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"before");
    d.ack(BasicAckOptions::default()).await.expect("ack");

    // Long enough for the isolated leader's consumer checks (every 3 s) to miss twice.
    nodes.cut(leader);
    tokio::time::sleep(Duration::from_secs(12)).await;
    nodes.heal().await;
    // Long enough for a verdict written while cut off to be forwarded and applied.
    tokio::time::sleep(Duration::from_secs(4)).await;

    publish_acked(
        &publishing,
        "",
        "cut-q",
        b"after",
        BasicProperties::default(),
    )
    .await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(
        d.data,
        b"after",
        "the consumer on n{} is still served",
        on + 1
    );
    d.ack(BasicAckOptions::default()).await.expect("ack");
}

/// The 0-based index of the node leading quorum queue `queue`, as n1's API says.
async fn leader_of(nodes: &Nodes, queue: &str) -> usize {
    for _ in 0..100 {
        let body = nodes
            .api(0)
            .get(&format!("/api/queues/%2f/{queue}"))
            .await
            .body;
        let leader = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["leader"].as_str().map(str::to_owned))
            .and_then(|name| name.strip_prefix("warren@n")?.parse::<usize>().ok());
        if let Some(n @ 1..=3) = leader {
            return n - 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("quorum queue {queue} has no leader");
}

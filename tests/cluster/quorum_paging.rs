//! A quorum queue holding more messages than each member keeps in memory
//! (`--quorum-window`): the rest wait in every member's spill files, and all of them are
//! delivered, in order, across the death of the group's leader; drained, the spill files
//! are gone.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicQosOptions};

use super::common::lapin::confirming;
use super::quorum_members::{index_of, queue_json};
use super::{channel, durable_queue, table, text};
use crate::nodes::Nodes;

const MESSAGES: u32 = 400;

fn body(n: u32) -> Vec<u8> {
    let mut body = n.to_be_bytes().to_vec();
    body.resize(1024, (n % 251) as u8);
    body
}

/// Spill files under a node's `quorum-bodies/`.
fn spill_files(dir: &std::path::Path) -> usize {
    let Ok(groups) = std::fs::read_dir(dir.join("quorum-bodies")) else {
        return 0;
    };
    groups
        .filter_map(Result::ok)
        .filter_map(|g| std::fs::read_dir(g.path()).ok())
        .map(|files| files.count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_past_its_window_is_delivered_whole_across_a_leader_kill() {
    let mut nodes = Nodes::start_with(vec![vec!["--quorum-window".into(), "20".into()]; 3]).await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare(
        "paged".into(),
        durable_queue(),
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("declare");
    let mut confirms = Vec::new();
    for n in 0..MESSAGES {
        confirms.push(
            ch1.basic_publish(
                "".into(),
                "paged".into(),
                Default::default(),
                &body(n),
                BasicProperties::default(),
            )
            .await
            .expect("publish"),
        );
    }
    for confirm in confirms {
        assert!(confirm.await.expect("confirm").is_ack());
    }
    for i in 0..3 {
        let paged =
            super::common::eventually(true, async || spill_files(&nodes.data_dir(i)) > 0).await;
        assert!(paged, "node {i} pages what is past its window");
    }

    let leader = queue_json(&nodes, 0, "paged").await["leader"]
        .as_str()
        .map(index_of)
        .expect("a leader");
    drop(ch1);
    drop(c1);
    nodes.kill(leader);
    let reader = (leader + 1) % 3;
    let (_c, ch) = channel(&nodes.uri(reader)).await;
    ch.basic_qos(50, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = super::remote_queues::consumer(&ch, "paged", "c", false).await;
    for expected in 0..MESSAGES {
        let d = tokio::time::timeout(
            Duration::from_secs(20),
            futures_util::StreamExt::next(&mut consumer),
        )
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery");
        assert_eq!(
            d.data,
            body(expected),
            "message {expected} whole and in order"
        );
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    for i in (0..3).filter(|&i| i != leader) {
        let drained = super::common::eventually(0, async || spill_files(&nodes.data_dir(i))).await;
        assert_eq!(drained, 0, "node {i} deleted its spill files once drained");
    }
}

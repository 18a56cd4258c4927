//! Shovels in a cluster (issue 18): a shovel declared through any node is known to every
//! node and runs on one, the metadata leader; when that node dies the next leader runs it
//! and messages keep moving. Deleted through another node, it is gone everywhere.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::BasicAckOptions;

use super::common::lapin::{confirming, next_delivery};
use super::{channel, durable_queue, publish_numbers, table, text, within};
use crate::nodes::Nodes;

/// Whether node `i` lists the shovel parameter `move`.
async fn knows(nodes: &Nodes, i: usize) -> bool {
    let r = nodes.api(i).get("/api/parameters/shovel/%2F").await;
    r.status == 200
        && r.json()
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["name"] == "move"))
}

/// The nodes (of `alive`) whose `/api/shovels` lists `move` running.
async fn running_on(nodes: &Nodes, alive: &[usize]) -> Vec<usize> {
    let mut on = Vec::new();
    for &i in alive {
        let all = nodes.api(i).get("/api/shovels/%2F").await.json();
        let running = all.as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s["name"] == "move" && s["state"] == "running")
        });
        if running {
            on.push(i);
        }
    }
    on
}

/// The index of the metadata leader as node `i` sees it.
async fn leader_seen_by(nodes: &Nodes, i: usize) -> Option<usize> {
    let listed = nodes.listed_on(i).await?;
    listed
        .iter()
        .find(|(_, _, leader)| *leader)
        .map(|(name, _, _)| super::quorum_members::index_of(name))
}

/// Takes deliveries until every number of `want` was seen (duplicates allowed: a shovel
/// whose node died may move what it had not acked again).
async fn receive_all(consumer: &mut lapin::Consumer, want: std::ops::Range<u32>) {
    let mut missing: BTreeSet<u32> = want.collect();
    while !missing.is_empty() {
        let d = next_delivery(consumer).await;
        let n = u32::from_be_bytes(d.data.as_slice().try_into().expect("4 bytes"));
        missing.remove(&n);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shovel_runs_once_in_the_cluster_and_moves_to_the_next_leader() {
    let mut nodes = Nodes::start().await;
    let (c2, _) = channel(&nodes.uri(1)).await;
    let ch2 = confirming(&c2).await;
    for queue in ["from", "to"] {
        ch2.queue_declare(
            queue.into(),
            durable_queue(),
            table(&[("x-queue-type", text("quorum"))]),
        )
        .await
        .expect("declare");
    }
    let value = serde_json::json!({"value": {"src-uri": "amqp://", "src-queue": "from",
        "dest-uri": "amqp://", "dest-queue": "to"}});
    let put = nodes
        .api(1)
        .put("/api/parameters/shovel/%2F/move", &value.to_string())
        .await;
    assert_eq!(put.status, 201, "{}", put.body);

    // Every node knows it; exactly one runs it: the metadata leader.
    for i in 0..3 {
        assert!(
            within(Duration::from_secs(10), true, async || knows(&nodes, i)
                .await)
            .await,
            "n{} lists the shovel",
            i + 1
        );
    }
    let on = within(Duration::from_secs(20), 1, async || {
        running_on(&nodes, &[0, 1, 2]).await.len()
    })
    .await;
    assert_eq!(on, 1, "one node runs the shovel");
    let runner = running_on(&nodes, &[0, 1, 2]).await[0];
    assert_eq!(leader_seen_by(&nodes, runner).await, Some(runner));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_on(&nodes, &[0, 1, 2]).await,
        vec![runner],
        "still one runner"
    );

    let alive: Vec<usize> = (0..3).filter(|&i| i != runner).collect();
    let (cp, _) = channel(&nodes.uri(alive[0])).await;
    let chp = confirming(&cp).await;
    let (_cc, chc) = channel(&nodes.uri(alive[1])).await;
    let mut consumer = super::remote_queues::consumer(&chc, "to", "c", false).await;
    publish_numbers(&chp, "from", 0..10).await;
    receive_all(&mut consumer, 0..10).await;

    // The runner's node dies: the next metadata leader runs the shovel.
    nodes.kill(runner);
    publish_numbers(&chp, "from", 10..20).await;
    receive_all(&mut consumer, 10..20).await;
    let next = within(Duration::from_secs(20), 1, async || {
        running_on(&nodes, &alive).await.len()
    })
    .await;
    assert_eq!(next, 1, "a surviving node runs the shovel");

    // Deleted through the node that does not run it: gone everywhere, and it stops.
    let runs = running_on(&nodes, &alive).await;
    let other = alive
        .iter()
        .copied()
        .find(|i| !runs.contains(i))
        .unwrap_or(alive[0]);
    let del = nodes
        .api(other)
        .delete("/api/parameters/shovel/%2F/move")
        .await;
    assert_eq!(del.status, 204, "{}", del.body);
    for &i in &alive {
        assert!(
            !within(Duration::from_secs(10), false, async || knows(&nodes, i)
                .await)
            .await,
            "n{} forgot the shovel",
            i + 1
        );
    }
    assert!(running_on(&nodes, &alive).await.is_empty());
}

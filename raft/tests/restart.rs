//! Three nodes with data dirs: stop all, start again on the same dirs and ports, and the
//! group elects a leader, still holds what was written, and takes new writes.

mod common;

use common::{eventually, noop, start_durable_node};

use std::net::SocketAddr;

use warren_raft::{Group, METADATA_GROUP};

async fn leader(groups: &[Group]) -> usize {
    eventually("a leader all nodes agree on", || async {
        let mut seen = None;
        for g in groups {
            let l = g.raft.current_leader().await?;
            if seen.is_some_and(|s| s != l) {
                return None;
            }
            seen = Some(l);
        }
        seen.map(|l| (l - 1) as usize)
    })
    .await
}

async fn applied_everywhere(groups: &[Group], n: u64) {
    eventually(&format!("{n} commands applied everywhere"), || async {
        for g in groups {
            if g.sm.applied_commands().await < n {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_restart_from_their_data_dirs() {
    use openraft::async_runtime::WatchReceiver;

    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");

    // First life: form the group, write three commands, snapshot on one node.
    let mut nodes = Vec::new();
    let mut groups = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let (node, group) = start_durable_node(i as u64 + 1, any, dir.path()).await;
        nodes.push(node);
        groups.push(group);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addr()).collect();
    common::initialize_all(&nodes).await;
    // A loaded machine may let the first leader's lease lapse: retry where a leader serves.
    for n in 1..=3u64 {
        eventually(&format!("write {n} taken"), || async {
            let l = leader(&groups).await;
            groups[l].raft.client_write(noop()).await.ok()
        })
        .await;
    }
    let l = leader(&groups).await;
    applied_everywhere(&groups, 3).await;
    // One node also restarts from a snapshot (the others replay their whole log).
    let snap_node = (l + 1) % 3;
    groups[snap_node]
        .raft
        .trigger()
        .snapshot()
        .await
        .expect("snapshot");
    let applied = groups[snap_node].sm.last_applied().await.expect("applied");
    eventually("the snapshot is built", || async {
        let m = groups[snap_node].raft.metrics().borrow_watched().clone();
        (m.snapshot.map(|s| s.index) >= Some(applied.index)).then_some(())
    })
    .await;
    // Purge its log too, so after the restart only the snapshot can bring the count back.
    groups[snap_node]
        .raft
        .trigger()
        .purge_log(applied.index)
        .await
        .expect("purge");
    eventually("the log is purged", || async {
        let m = groups[snap_node].raft.metrics().borrow_watched().clone();
        (m.purged.map(|p| p.index) >= Some(applied.index)).then_some(())
    })
    .await;
    assert!(
        dirs[snap_node].path().join("snap/0/current.snap").exists(),
        "the snapshot is on disk"
    );
    for node in &nodes {
        node.shutdown().await;
    }
    drop(groups);
    drop(nodes);

    // Second life: same ids, dirs and ports.
    let mut nodes = Vec::new();
    let mut groups = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let (node, group) = start_durable_node(i as u64 + 1, addrs[i], dir.path()).await;
        nodes.push(node);
        groups.push(group);
    }
    applied_everywhere(&groups, 3).await;
    let wal = nodes[snap_node].wal().expect("a WAL");
    assert_eq!(
        wal.log_state(METADATA_GROUP).0.map(|p| p.index),
        Some(applied.index),
        "the purge survived the restart"
    );
    // The saved vote names the old leader at once; retry until a leader really serves.
    let reply = eventually("a leader takes the new write", || async {
        let l = leader(&groups).await;
        groups[l].raft.client_write(noop()).await.ok()
    })
    .await;
    assert_eq!(reply.data.payload.as_ref(), 4u64.to_be_bytes());
    applied_everywhere(&groups, 4).await;
    for node in &nodes {
        node.shutdown().await;
    }
}

//! Three nodes in one process over loopback TCP: election, replication, a cut leader, healing.

mod common;

use common::{eventually, noop};

use std::sync::Arc;

use openraft::BasicNode;
use warren_raft::{CutLinks, Group, METADATA_GROUP, NodeConfig, NodeId, RaftNode};

/// How long a write may be retried until a leader accepts it.
const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

struct Cluster {
    nodes: Vec<RaftNode>,
    groups: Vec<Group>,
    links: Arc<CutLinks>,
}

impl Cluster {
    async fn start() -> Self {
        let links = Arc::new(CutLinks::new());
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let node = RaftNode::start(NodeConfig {
                node_id: id,
                cluster_name: "test".into(),
                bind: "127.0.0.1:0".parse().expect("addr"),
                policy: links.clone(),
                security: Default::default(),
                data_dir: None,
            })
            .await
            .expect("node starts");
            nodes.push(node);
        }
        let mut groups = Vec::new();
        for node in &nodes {
            groups.push(node.create_metadata_group().await.expect("group 0"));
        }
        common::initialize_all(&nodes).await;
        Self {
            nodes,
            groups,
            links,
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id()).collect()
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[(id - 1) as usize]
    }

    fn group(&self, id: NodeId) -> &Group {
        &self.groups[(id - 1) as usize]
    }

    /// The leader the given nodes all agree on right now, if it is one of them.
    async fn leader_among(&self, among: &[NodeId]) -> Option<NodeId> {
        let mut seen = None;
        for &id in among {
            let leader = self.group(id).raft.current_leader().await?;
            if !among.contains(&leader) || seen.is_some_and(|s| s != leader) {
                return None;
            }
            seen = Some(leader);
        }
        seen
    }

    /// Waits for a leader the given nodes agree on.
    async fn agreed_leader(&self, among: &[NodeId]) -> NodeId {
        eventually(&format!("a leader agreed among {among:?}"), || {
            self.leader_among(among)
        })
        .await
    }

    async fn applied_on(&self, nodes: &[NodeId], commands: u64) {
        eventually(
            &format!("{commands} commands applied on {nodes:?}"),
            || async {
                for &id in nodes {
                    if self.group(id).sm.applied_commands().await < commands {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    }

    async fn shutdown(self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_survive_a_cut_leader() {
    let cluster = Cluster::start().await;
    let all = cluster.ids();

    // A leader, and a write through it applied everywhere.
    let leader = cluster.agreed_leader(&all).await;
    let reply = cluster
        .group(leader)
        .raft
        .client_write(noop())
        .await
        .expect("write on the leader");
    assert_eq!(reply.data.payload.as_ref(), 1u64.to_be_bytes());
    cluster.applied_on(&all, 1).await;

    // A follower forwards a write to the leader and hears the leader's reply.
    let follower = all
        .iter()
        .copied()
        .find(|&n| n != leader)
        .expect("a follower");
    let (index, reply) = cluster
        .node(follower)
        .write_anywhere(METADATA_GROUP, noop(), WITHIN)
        .await
        .expect("a write through a follower");
    assert_eq!(reply.payload.as_ref(), 2u64.to_be_bytes());
    assert!(
        index > 1,
        "the forwarded write has a log index after the first"
    );
    cluster.applied_on(&all, 2).await;

    // Cut the leader off: the other two elect one of themselves and commit without it.
    cluster.links.isolate(leader, &all);
    let rest: Vec<NodeId> = all.iter().copied().filter(|&n| n != leader).collect();
    let new_leader = eventually("a new leader among the other two", || async {
        let l = cluster.leader_among(&rest).await?;
        (l != leader).then_some(l)
    })
    .await;
    // Retried until a leader accepts it: leadership may still move between the two.
    cluster
        .node(new_leader)
        .write_anywhere(METADATA_GROUP, noop(), WITHIN)
        .await
        .expect("write on the new leader");
    cluster.applied_on(&rest, 3).await;
    assert_eq!(
        cluster.group(leader).sm.applied_commands().await,
        2,
        "the isolated old leader cannot apply what the majority wrote"
    );

    // Heal: the old leader follows the new one and catches up.
    cluster.links.heal();
    cluster.applied_on(&all, 3).await;
    let after = cluster.agreed_leader(&all).await;
    cluster
        .node(after)
        .write_anywhere(METADATA_GROUP, noop(), WITHIN)
        .await
        .expect("write after healing");
    cluster.applied_on(&all, 4).await;
    let last = cluster.group(after).sm.last_applied().await;
    eventually("every node applied the same last log id", || async {
        for &id in &all {
            if cluster.group(id).sm.last_applied().await != last {
                return None;
            }
        }
        Some(())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_and_a_new_learner_gets_a_snapshot() {
    use openraft::async_runtime::WatchReceiver;

    let cluster = Cluster::start().await;
    let all = cluster.ids();
    let leader = cluster.agreed_leader(&all).await;
    for _ in 0..5 {
        cluster
            .group(leader)
            .raft
            .client_write(noop())
            .await
            .expect("write");
    }
    cluster.applied_on(&all, 5).await;

    // transfer_leader travels as its own RPC; the chosen follower takes over.
    let target = all
        .iter()
        .copied()
        .find(|&n| n != leader)
        .expect("a follower");
    cluster
        .group(leader)
        .raft
        .trigger()
        .transfer_leader(target)
        .await
        .expect("trigger transfer");
    eventually("leadership moved to the chosen node", || async {
        (cluster.leader_among(&all).await? == target).then_some(())
    })
    .await;

    // Snapshot and purge the new leader's log, so a new member can only catch up by snapshot.
    let raft = &cluster.group(target).raft;
    let applied = cluster
        .group(target)
        .sm
        .last_applied()
        .await
        .expect("applied");
    raft.trigger().snapshot().await.expect("trigger snapshot");
    eventually("a snapshot covering what was applied", || async {
        let m = raft.metrics().borrow_watched().clone();
        (m.snapshot.map(|s| s.index) >= Some(applied.index)).then_some(())
    })
    .await;
    raft.trigger()
        .purge_log(applied.index)
        .await
        .expect("trigger purge");
    eventually("the log purged", || async {
        let m = raft.metrics().borrow_watched().clone();
        (m.purged.map(|p| p.index) >= Some(applied.index)).then_some(())
    })
    .await;

    let fourth = RaftNode::start(NodeConfig {
        node_id: 4,
        cluster_name: "test".into(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        policy: cluster.links.clone(),
        security: Default::default(),
        data_dir: None,
    })
    .await
    .expect("node 4 starts");
    let group = fourth
        .create_metadata_group()
        .await
        .expect("group 0 on node 4");
    raft.add_learner(4, BasicNode::new(fourth.local_addr().to_string()), true)
        .await
        .expect("add learner");
    eventually(
        "the learner restored the count from the snapshot",
        || async { (group.sm.applied_commands().await == 5).then_some(()) },
    )
    .await;
    fourth.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_removed_added_and_leadership_moved_from_any_node() {
    use warren_raft::GroupChange;

    let cluster = Cluster::start().await;
    let all = cluster.ids();
    let leader = cluster.agreed_leader(&all).await;
    let followers: Vec<NodeId> = all.iter().copied().filter(|&n| n != leader).collect();
    let (f1, f2) = (followers[0], followers[1]);

    // Leadership moves to f1, asked through f2 (the request finds the leader).
    cluster
        .node(f2)
        .manage(
            METADATA_GROUP,
            GroupChange::TransferLeader { to: f1 },
            WITHIN,
            &[],
        )
        .await
        .expect("transfer through a follower");
    eventually("f1 leads", || async {
        (cluster.leader_among(&all).await? == f1).then_some(())
    })
    .await;

    // f2 is removed, asked through f2 itself.
    let voters = cluster
        .node(f2)
        .manage(
            METADATA_GROUP,
            GroupChange::RemoveVoter { node: f2 },
            WITHIN,
            &[],
        )
        .await
        .expect("remove f2");
    assert!(!voters.contains(&f2), "{voters:?}");
    assert_eq!(voters.len(), 2);

    // Removing the leader (f1) hands leadership over first; the group goes on with one.
    let voters = cluster
        .node(leader)
        .manage(
            METADATA_GROUP,
            GroupChange::RemoveVoter { node: f1 },
            WITHIN,
            &[],
        )
        .await
        .expect("remove the leader");
    assert_eq!(voters, vec![leader]);
    cluster
        .group(leader)
        .raft
        .client_write(noop())
        .await
        .expect("a single voter commits alone");

    // f2 comes back as a voter (a learner first, caught up) and applies what it missed.
    let voters = cluster
        .node(f1)
        .manage(
            METADATA_GROUP,
            GroupChange::AddVoter {
                node: f2,
                addr: cluster.node(f2).local_addr().to_string(),
            },
            WITHIN,
            &[],
        )
        .await
        .expect("add f2 back");
    assert_eq!(voters.len(), 2, "{voters:?}");
    cluster
        .group(leader)
        .raft
        .client_write(noop())
        .await
        .expect("write with two voters");
    cluster.applied_on(&[leader, f2], 2).await;
    cluster.shutdown().await;
}

//! Nodes joining and leaving a running group 0 over transient connections, whatever their
//! ids (the transport's links are dialed by the lower id; join requests are not).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren_raft::{AllowAll, BasicNode, Command, JoinReply, METADATA_GROUP, NodeConfig, RaftNode};

/// Joins and leaves take several Raft round trips each: a longer cap than the others.
const CAP: Duration = Duration::from_secs(15);

async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    common::eventually_within(CAP, what, || {
        let poll = probe();
        async move { poll.await.then_some(()) }
    })
    .await
}

async fn node(id: u64) -> RaftNode {
    let node = RaftNode::start(NodeConfig {
        node_id: id,
        cluster_name: "test".into(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        policy: Arc::new(AllowAll),
        security: Default::default(),
        data_dir: None,
    })
    .await
    .expect("node starts");
    node.set_label(format!("n{id}"));
    node.create_metadata_group().await.expect("group 0");
    node
}

fn cmd(text: &'static str) -> Command {
    Command {
        payload: Bytes::from_static(text.as_bytes()),
    }
}

async fn join_until_accepted(joiner: &RaftNode, seed: &str) {
    for _ in 0..50 {
        match joiner.join(seed, cmd("joined")).await {
            Ok(JoinReply::Accepted { .. }) => return,
            Ok(JoinReply::Redirect {
                leader: Some((_, leader)),
            }) => {
                if let Ok(JoinReply::Accepted { .. }) = joiner.join(&leader, cmd("joined")).await {
                    return;
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("join through {seed} never accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn higher_and_lower_ids_join_then_one_leaves() {
    let seed = node(50).await;
    let high = node(90).await;
    let uninitialized = high
        .join(&seed.local_addr().to_string(), cmd("self"))
        .await
        .expect("answer");
    assert_eq!(
        uninitialized,
        JoinReply::NotInitialized {
            label: "n50".into()
        }
    );
    let me = BTreeMap::from([(50, BasicNode::new(seed.local_addr().to_string()))]);
    seed.initialize(METADATA_GROUP, me).await.expect("init");
    eventually("the seed leads", || async {
        seed.status(METADATA_GROUP).is_some_and(|s| s.is_leader())
    })
    .await;

    // A higher id than the seed's: the seed could never dial it first.
    join_until_accepted(&high, &seed.local_addr().to_string()).await;
    // A lower id asks the follower, which redirects to the leader.
    let low = node(10).await;
    join_until_accepted(&low, &high.local_addr().to_string()).await;

    let nodes = [&seed, &high, &low];
    eventually(
        "three voters everywhere, 2 announcements applied",
        || async {
            nodes.iter().all(|n| {
                n.status(METADATA_GROUP).is_some_and(|s| {
                    s.voters.len() == 3 && s.leader == Some(50) && s.last_applied >= Some(6)
                })
            })
        },
    )
    .await;
    // The announcements are client writes after the membership changes:
    // applied a little later than the last membership entry.
    eventually("both announcements applied on every node", || async {
        for n in nodes {
            let applied = n
                .group(METADATA_GROUP)
                .expect("group")
                .sm
                .applied_commands()
                .await;
            if applied < 2 {
                return false;
            }
        }
        true
    })
    .await;

    // The leader itself leaves: the other two elect a new one.
    let reply = seed.leave_via(None, cmd("left")).await.expect("leave");
    assert!(matches!(reply, JoinReply::Accepted { .. }), "{reply:?}");
    eventually("two voters and a new leader", || async {
        [&high, &low].iter().all(|n| {
            n.status(METADATA_GROUP).is_some_and(|s| {
                s.voters.len() == 2
                    && !s.nodes.contains_key(&50)
                    && s.leader.is_some_and(|l| l != 50)
            })
        })
    })
    .await;
    for n in nodes {
        n.shutdown().await;
    }
}

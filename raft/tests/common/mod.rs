//! What the multi-node tests share: polling with a cap, the command they write, and
//! starting a node on a data dir.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren_raft::{
    AllowAll, BasicNode, Command, Group, METADATA_GROUP, NodeConfig, NodeId, RaftNode,
};

/// The cap of every wait: generous, so slow CI does not flake; polls end as soon as true.
pub const CAP: Duration = Duration::from_secs(10);

/// Polls `probe` every 25 ms until it returns `Some`, failing with `what` after [`CAP`].
pub async fn eventually<F, Fut, T>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(CAP, what, probe).await
}

/// [`eventually`] with a cap of its own.
pub async fn eventually_within<F, Fut, T>(cap: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + cap;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {cap:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The command the tests replicate.
pub fn noop() -> Command {
    Command {
        payload: Bytes::from_static(b"noop"),
    }
}

/// Initializes group 0 on `nodes[0]` with every node as a voter at its
/// listening address.
pub async fn initialize_all(nodes: &[RaftNode]) {
    let members: BTreeMap<NodeId, BasicNode> = nodes
        .iter()
        .map(|n| (n.id(), BasicNode::new(n.local_addr().to_string())))
        .collect();
    nodes[0]
        .initialize(METADATA_GROUP, members)
        .await
        .expect("initialize group 0");
}

/// Starts node `id` on `dir` with its metadata group, retrying while `bind` is
/// still held (a restarted node's old listener may hold its port for a moment).
pub async fn start_durable_node(id: NodeId, bind: SocketAddr, dir: &Path) -> (RaftNode, Group) {
    let config = || NodeConfig {
        node_id: id,
        cluster_name: "test".into(),
        bind,
        policy: Arc::new(AllowAll),
        data_dir: Some(dir.to_path_buf()),
        security: Default::default(),
    };
    let mut tries = 0;
    let node = loop {
        match RaftNode::start(config()).await {
            Ok(node) => break node,
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, "node start retried");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node {id} starts: {e}"),
        }
    };
    let group = node.create_metadata_group().await.expect("group 0");
    (node, group)
}

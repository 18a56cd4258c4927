//! What the multi-node tests share: polling with a cap, and the command they write.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use std::collections::BTreeMap;

use bytes::Bytes;
use warren_raft::{BasicNode, Command, METADATA_GROUP, NodeId, RaftNode};

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

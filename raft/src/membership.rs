//! Joining and leaving the metadata group (group 0) of a running cluster.
//!
//! A joiner sends [`Request::Join`] over a transient connection (any id may dial one) to a
//! seed. A follower redirects it to the leader; the leader answers at once with the members
//! (so the joiner can connect to them whatever the ids), then, in a task, adds it as a learner
//! (waiting until it caught up), promotes it to voter while there are fewer than
//! [`MAX_VOTERS`], and appends the joiner's announcement. A joiner that does not see its
//! announcement applied asks again; every step is idempotent. Leaving appends the farewell,
//! then removes the node (voter, then node) on the leader.

use std::collections::{BTreeMap, BTreeSet};

use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use crate::node::GroupRaft;
use crate::transport::wire::JoinReply;
use crate::types::{Command, NodeId};

/// Voters of group 0 at most; later nodes stay learners (they still get everything).
pub const MAX_VOTERS: usize = 5;

/// What a node knows of group 0 right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    /// This node's id.
    pub id: NodeId,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Voting members.
    pub voters: BTreeSet<NodeId>,
    /// Every member (voters and learners) with its cluster address.
    pub nodes: BTreeMap<NodeId, String>,
    /// The index of the last entry applied here.
    pub last_applied: Option<u64>,
    /// The index of the last entry this node knows committed.
    pub committed: Option<u64>,
}

impl GroupStatus {
    /// The group's status as `raft` sees it.
    pub fn of(raft: &GroupRaft) -> Self {
        let m = raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        Self {
            id: m.id,
            leader: m.current_leader,
            term: m.current_term,
            voters: membership.voter_ids().collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
            last_applied: m.last_applied.map(|l| l.index),
            committed: m.local_committed.map(|l| l.index),
        }
    }

    /// Whether the group has a membership (was initialized or joined).
    pub fn initialized(&self) -> bool {
        !self.voters.is_empty()
    }

    /// Whether this node leads the group.
    pub fn is_leader(&self) -> bool {
        self.leader == Some(self.id)
    }

    fn redirect(&self) -> JoinReply {
        JoinReply::Redirect {
            leader: self
                .leader
                .and_then(|l| self.nodes.get(&l).map(|addr| (l, addr.clone()))),
        }
    }
}

/// The leader's side of a join (see the module doc).
pub(crate) fn handle_join(
    raft: Option<GroupRaft>,
    label: String,
    node_id: NodeId,
    addr: String,
    announce: Command,
) -> JoinReply {
    let Some(raft) = raft else {
        return JoinReply::NotInitialized { label };
    };
    let status = GroupStatus::of(&raft);
    if !status.initialized() {
        return JoinReply::NotInitialized { label };
    }
    if !status.is_leader() {
        return status.redirect();
    }
    if let Some(known) = status.nodes.get(&node_id)
        && *known != addr
    {
        return JoinReply::Refused(format!(
            "node id {node_id} is already a member at {known}, not {addr}"
        ));
    }
    let mut members: Vec<(NodeId, String)> = status
        .nodes
        .iter()
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    if !status.nodes.contains_key(&node_id) {
        members.push((node_id, addr.clone()));
    }
    tokio::spawn(async move {
        // Joins arriving together collide ("already undergoing a configuration change"):
        // each step is retried for a while; all of them are idempotent.
        let learner = retry("add learner", node_id, || {
            raft.add_learner(node_id, BasicNode::new(addr.clone()), true)
        });
        if !learner.await {
            return;
        }
        let status = GroupStatus::of(&raft);
        if !status.voters.contains(&node_id) && status.voters.len() < MAX_VOTERS {
            let promoted = retry("promotion to voter", node_id, || {
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            });
            if !promoted.await {
                return;
            }
        }
        if retry("announcement", node_id, || {
            raft.client_write(announce.clone())
        })
        .await
        {
            tracing::info!(node_id, %addr, "node joined the cluster");
        }
    });
    JoinReply::Accepted { members }
}

/// Runs `step` until it succeeds, for at most [`STEP_ATTEMPTS`] tries 200 ms apart.
async fn retry<F, Fut, T, E>(what: &str, node_id: NodeId, mut step: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    for attempt in 1..=STEP_ATTEMPTS {
        match step().await {
            Ok(_) => return true,
            Err(e) if attempt == STEP_ATTEMPTS => {
                tracing::warn!(node_id, error = %e, "join: {what} failed");
            }
            Err(e) => tracing::debug!(node_id, error = %e, "join: {what} refused; retrying"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// How many times a join step is tried.
const STEP_ATTEMPTS: u32 = 25;

/// The leader's side of a leave: the farewell, then the node out of the membership.
pub(crate) async fn handle_leave(
    raft: Option<GroupRaft>,
    node_id: NodeId,
    announce: Command,
) -> JoinReply {
    let Some(raft) = raft else {
        return JoinReply::Refused("no cluster here".into());
    };
    let status = GroupStatus::of(&raft);
    if !status.is_leader() {
        return status.redirect();
    }
    if !status.nodes.contains_key(&node_id) {
        return JoinReply::Refused(format!("node {node_id} is not a member"));
    }
    if status.nodes.len() == 1 {
        return JoinReply::Refused("the last node of a cluster cannot leave it".into());
    }
    if let Err(e) = raft.client_write(announce).await {
        return JoinReply::Refused(format!("farewell not written: {e}"));
    }
    // `retain = false`: a removed voter does not stay as a learner, so one change removes
    // it entirely (a leader leaving itself steps down once it is committed).
    let ids = BTreeSet::from([node_id]);
    let change = if status.voters.contains(&node_id) {
        ChangeMembers::RemoveVoters(ids)
    } else {
        ChangeMembers::RemoveNodes(ids)
    };
    if let Err(e) = raft.change_membership(change, false).await {
        return JoinReply::Refused(format!("removing the node failed: {e}"));
    }
    let members = GroupStatus::of(&raft).nodes.into_iter().collect();
    JoinReply::Accepted { members }
}

//! Changing a group's members and moving its leadership (operations on quorum queues:
//! add or remove a member, rebalance leaders). Only a group's leader can change it: a
//! request made on any node finds the leader (here, or over the leader's link, as a
//! forwarded write does) and the leader runs the change with openraft's own membership
//! protocol (a learner first, caught up, then a voter; joint consensus for removals).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use crate::membership::GroupStatus;
use crate::node::{Group, GroupRaft, NodeError, RaftNode};
use crate::transport::wire::{Request, Response};
use crate::types::{GroupId, NodeId};

/// A change to one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupChange {
    /// Adds `node` (at cluster address `addr`) as a voter: a learner until it caught up.
    AddVoter {
        /// The new member.
        node: NodeId,
        /// Its cluster address.
        addr: String,
    },
    /// Removes `node` from the voters and the group.
    RemoveVoter {
        /// The member to remove.
        node: NodeId,
    },
    /// Hands leadership to `to`, a voter.
    TransferLeader {
        /// The next leader.
        to: NodeId,
    },
}

/// The answer of a group's leader to a [`GroupChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManageReply {
    /// Done: the voters now.
    Done(Vec<NodeId>),
    /// This node does not lead the group (the leader it knows of, if any).
    NotLeader(Option<NodeId>),
    /// Refused, with why.
    Failed(String),
}

/// Runs `change` on this node, which must lead the group.
pub(crate) async fn on_leader(group: Option<Group>, change: GroupChange) -> ManageReply {
    let Some(g) = group else {
        return ManageReply::NotLeader(None);
    };
    let raft = g.raft;
    let status = GroupStatus::of(&raft);
    if !status.is_leader() {
        return ManageReply::NotLeader(status.leader);
    }
    let result = match change {
        GroupChange::AddVoter { node, addr } => add_voter(&raft, &status, node, addr).await,
        GroupChange::RemoveVoter { node } => remove_voter(&raft, &status, node).await,
        GroupChange::TransferLeader { to } => {
            if to == status.id {
                Ok(())
            } else if !status.voters.contains(&to) {
                Err(format!("node {to} is not a voter of the group"))
            } else {
                transfer(&raft, to).await
            }
        }
    };
    match result {
        Ok(()) => ManageReply::Done(GroupStatus::of(&raft).voters.into_iter().collect()),
        Err(text) if text == NOT_LEADER => ManageReply::NotLeader(None),
        Err(text) => ManageReply::Failed(text),
    }
}

/// Hands leadership to `to` and waits until this node sees it lead: a target that is not
/// caught up yet (a group just formed) lets the request pass, so it is asked again.
async fn transfer(raft: &GroupRaft, to: NodeId) -> Result<(), String> {
    for _ in 0..TRANSFER_TRIES {
        raft.trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + TRANSFER_WAIT;
        while tokio::time::Instant::now() < deadline {
            if GroupStatus::of(raft).leader == Some(to) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Err(format!("node {to} did not take the lead"))
}

/// Transfer requests before giving up, and how long each waits for the new leader.
const TRANSFER_TRIES: usize = 10;
const TRANSFER_WAIT: Duration = Duration::from_millis(1000);

/// What a step answers when leadership moved while it ran (the caller asks the next one).
const NOT_LEADER: &str = "not the leader";

async fn add_voter(
    raft: &GroupRaft,
    status: &GroupStatus,
    node: NodeId,
    addr: String,
) -> Result<(), String> {
    if status.voters.contains(&node) {
        return Ok(());
    }
    raft.add_learner(node, BasicNode::new(addr), true)
        .await
        .map_err(|e| step_error(&e))?;
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node])), false)
        .await
        .map_err(|e| step_error(&e))?;
    Ok(())
}

async fn remove_voter(raft: &GroupRaft, status: &GroupStatus, node: NodeId) -> Result<(), String> {
    if !status.nodes.contains_key(&node) {
        return Ok(());
    }
    if status.voters.len() == 1 && status.voters.contains(&node) {
        return Err("the group's last member cannot be removed".into());
    }
    if node == status.id {
        // The leader hands over first; the next leader removes it.
        let to = status
            .voters
            .iter()
            .copied()
            .find(|&v| v != node)
            .ok_or("no other voter to lead")?;
        raft.trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| e.to_string())?;
        return Err(NOT_LEADER.into());
    }
    if status.voters.contains(&node) {
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node])), false)
            .await
            .map_err(|e| step_error(&e))?;
    }
    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node])), false)
        .await
        .map_err(|e| step_error(&e))?;
    Ok(())
}

/// A failed step: "not the leader" when it was refused for that, else its text.
fn step_error<E: std::fmt::Display>(e: &E) -> String {
    let text = e.to_string();
    if text.contains("ForwardToLeader") || text.contains("has to forward request to") {
        NOT_LEADER.into()
    } else {
        text
    }
}

impl RaftNode {
    /// Applies `change` to `group` on its leader, wherever it is; retried while the
    /// leader is unknown or moves, until `within` passed. A node that does not host the
    /// group asks the nodes of `via` (its members) which one leads. Answers the voters
    /// after the change.
    pub async fn manage(
        &self,
        group: GroupId,
        change: GroupChange,
        within: Duration,
        via: &[NodeId],
    ) -> Result<Vec<NodeId>, NodeError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut told: Option<NodeId> = None;
        let mut asked = 0usize;
        loop {
            let known = self.status(group).and_then(|s| s.leader);
            let target = known.or(told.take()).or_else(|| {
                (!via.is_empty()).then(|| {
                    asked += 1;
                    via[(asked - 1) % via.len()]
                })
            });
            let reply = match target {
                Some(leader) if leader == self.id() => {
                    on_leader(self.group(group), change.clone()).await
                }
                Some(leader) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let req = Request::Manage {
                        group,
                        change: change.clone(),
                    };
                    match self
                        .transport()
                        .request(leader, req, left.max(Duration::from_millis(10)))
                        .await
                    {
                        Ok(Response::Manage(reply)) => reply,
                        Ok(other) => ManageReply::Failed(format!("unexpected answer {other:?}")),
                        Err(e) => ManageReply::Failed(e.to_string()),
                    }
                }
                None => ManageReply::NotLeader(None),
            };
            let last = match reply {
                ManageReply::Done(voters) => return Ok(voters),
                ManageReply::NotLeader(leader) => {
                    told = leader;
                    "no leader".to_string()
                }
                ManageReply::Failed(text) => text,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NotLeader {
                    group,
                    message: last,
                });
            }
            if told.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

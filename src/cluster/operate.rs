//! Operating quorum queues (issue 18, step 10): which node would take quorums down with
//! it (the `node-is-quorum-critical` health check), and spreading the groups' leaders
//! over the nodes (RabbitMQ's `rebalance`), by leadership transfers on each group.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warren_raft::GroupChange;

use super::Cluster;
use super::proxy::{ProxyAnswer, ProxyMessage, encode, read_answer};
use crate::broker::Broker;

/// How long one leadership transfer may take.
const TRANSFER_WITHIN: Duration = Duration::from_secs(20);

/// Times a rebalance asks again for groups whose leader is not known yet.
const LEADERLESS_RETRIES: usize = 10;

/// A quorum queue's group as a node hosting it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// The queue's vhost.
    pub vhost: String,
    /// The queue.
    pub queue: String,
    /// Its Raft group.
    pub group: u64,
    /// Its leader, if known.
    pub leader: Option<u64>,
    /// Its voters.
    pub voters: Vec<u64>,
}

/// A quorum queue this node's loss would leave without a majority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Critical {
    /// The queue's vhost.
    pub vhost: String,
    /// The queue.
    pub queue: String,
}

/// A leadership move of a rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The queue's vhost.
    pub vhost: String,
    /// The queue.
    pub queue: String,
    /// The leader before.
    pub from: u64,
    /// The leader after.
    pub to: u64,
}

impl Cluster {
    /// The quorum queues' groups hosted here.
    pub fn hosted_groups(&self, broker: &Broker) -> Vec<GroupView> {
        let mut groups = Vec::new();
        for vhost in broker.vhosts() {
            for queue in vhost.queues() {
                let Some(quorum) = queue.quorum() else {
                    continue;
                };
                let Some(status) = self.node.status(quorum.group) else {
                    continue;
                };
                groups.push(GroupView {
                    vhost: vhost.name.to_string(),
                    queue: queue.name.to_string(),
                    group: quorum.group,
                    leader: status.leader,
                    voters: status.voters.into_iter().collect(),
                });
            }
        }
        groups
    }

    /// The quorum queues hosted here that would lose their majority if this node stopped:
    /// fewer than a majority of their voters would be left among those this node hears.
    pub fn quorum_critical(&self, broker: &Broker) -> Vec<Critical> {
        let transport = self.node.transport();
        self.hosted_groups(broker)
            .into_iter()
            .filter(|g| {
                let others_up = g
                    .voters
                    .iter()
                    .filter(|&&v| v != self.id() && transport.is_connected(v))
                    .count();
                g.voters.contains(&self.id()) && others_up < g.voters.len() / 2 + 1
            })
            .map(|g| Critical {
                vhost: g.vhost,
                queue: g.queue,
            })
            .collect()
    }

    /// Every quorum queue group of the cluster, as the nodes hosting them see them (each
    /// running node is asked; a group's entry with a known leader wins).
    async fn all_groups(&self, broker: &Broker) -> Vec<GroupView> {
        let mut by_group: BTreeMap<u64, GroupView> = BTreeMap::new();
        let mut add = |views: Vec<GroupView>| {
            for view in views {
                let known = by_group
                    .get(&view.group)
                    .is_some_and(|g| g.leader.is_some());
                if !known {
                    by_group.insert(view.group, view);
                }
            }
        };
        add(self.hosted_groups(broker));
        for node in self.nodes() {
            if node.this_node || !node.running {
                continue;
            }
            let Some(payload) = encode(&ProxyMessage::Groups) else {
                continue;
            };
            let Ok(response) = self.node.send_app(node.id, payload).await else {
                continue;
            };
            if let Some(ProxyAnswer::Groups(views)) = read_answer(response).await {
                add(views);
            }
        }
        by_group.into_values().collect()
    }

    /// Spreads the quorum queues' leaders over the running nodes, as evenly as their
    /// members allow, moving as few as it can; answers the moves made.
    pub async fn rebalance(&self, broker: &Broker) -> Vec<Move> {
        let running: Vec<u64> = self
            .nodes()
            .into_iter()
            .filter(|n| n.running)
            .map(|n| n.id)
            .collect();
        let mut groups = self.all_groups(broker).await;
        // A group just formed may not have elected yet: ask again, for a few seconds.
        for _ in 0..LEADERLESS_RETRIES {
            if groups.iter().all(|g| g.leader.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            groups = self.all_groups(broker).await;
        }
        tracing::debug!(
            groups = groups.len(),
            nodes = running.len(),
            "rebalancing quorum queue leaders"
        );
        // The most constrained groups choose first.
        groups.sort_by(|a, b| {
            (a.voters.len(), &a.vhost, &a.queue).cmp(&(b.voters.len(), &b.vhost, &b.queue))
        });
        let mut led: HashMap<u64, usize> = running.iter().map(|&n| (n, 0)).collect();
        let mut moves = Vec::new();
        for g in groups {
            let Some(leader) = g.leader else {
                continue;
            };
            let candidates: Vec<u64> = g
                .voters
                .iter()
                .copied()
                .filter(|v| running.contains(v))
                .collect();
            let fewest = candidates
                .iter()
                .map(|c| led.get(c).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            // The current leader keeps it when it is among the least loaded.
            let target = if candidates.contains(&leader) && led.get(&leader) == Some(&fewest) {
                leader
            } else {
                match candidates
                    .iter()
                    .copied()
                    .filter(|c| led.get(c).copied().unwrap_or(0) == fewest)
                    .min()
                {
                    Some(t) => t,
                    None => continue,
                }
            };
            *led.entry(target).or_default() += 1;
            if target == leader {
                continue;
            }
            let change = GroupChange::TransferLeader { to: target };
            match self
                .node
                .manage(g.group, change, TRANSFER_WITHIN, &g.voters)
                .await
            {
                Ok(_) => moves.push(Move {
                    vhost: g.vhost,
                    queue: g.queue,
                    from: leader,
                    to: target,
                }),
                Err(error) => {
                    tracing::warn!(queue = %g.queue, group = g.group, %error, "leader not moved");
                }
            }
        }
        moves
    }
}

/// Keeps the cluster alive for a rebalance run in the background.
pub fn rebalance_in_background(cluster: Arc<Cluster>, broker: Arc<Broker>) {
    tokio::spawn(async move {
        let moves = cluster.rebalance(&broker).await;
        tracing::info!(moved = moves.len(), "quorum queue leaders rebalanced");
    });
}

/// Why a member could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// No queue of the name in the vhost.
    #[error("no queue '{0}' in vhost '{1}'")]
    NoQueue(String, String),
    /// The queue is not a quorum queue.
    #[error("queue '{0}' is not a quorum queue")]
    NotQuorum(String),
    /// No cluster node of the name.
    #[error("no cluster node '{0}'")]
    NoNode(String),
    /// The node is not running (it could not take the queue's log).
    #[error("node '{0}' is not running")]
    NotRunning(String),
    /// Adding a member it has already.
    #[error("node '{0}' is already a member of queue '{1}'")]
    Already(String, String),
    /// Removing a node that is not a member.
    #[error("node '{0}' is not a member of queue '{1}'")]
    NotMember(String, String),
    /// Removing the last member.
    #[error("queue '{0}' has one member left; delete the queue instead")]
    LastMember(String),
    /// The change did not go through (no leader, no majority, a timeout).
    #[error("{0}")]
    Failed(String),
}

/// Logs quorum queue `queue`'s (store id `id`) members as `members` on every node.
async fn set_members(
    vhost: &Arc<crate::vhost::VHost>,
    queue: &str,
    id: u64,
    members: &[crate::meta::NodeId],
) -> Result<(), MemberError> {
    let op = crate::meta::DefinitionOp::QueueMembers {
        name: queue.to_owned(),
        id,
        members: members.to_vec(),
    };
    vhost
        .change(op, crate::names::ConnectionId(0))
        .await
        .map(|_| ())
        .map_err(|e| MemberError::Failed(e.to_string()))
}

/// How long adding a member may take (it catches up with the queue's log first).
const ADD_WITHIN: Duration = Duration::from_secs(60);

/// How long removing a member may take.
const REMOVE_WITHIN: Duration = Duration::from_secs(30);

impl Cluster {
    /// The cluster node named `name`.
    fn node_named(&self, name: &str) -> Result<super::NodeView, MemberError> {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| MemberError::NoNode(name.to_owned()))
    }

    /// Adds node `node` (by name) to quorum queue `queue` of `vhost`, or removes it
    /// (`add` false); answers the members' names after. An added node first hosts the
    /// queue (through the metadata log), then joins its group (a learner until caught up,
    /// then a voter); a removed one leaves the group first, then stops hosting it.
    pub async fn change_members(
        &self,
        vhost: &Arc<crate::vhost::VHost>,
        queue: &str,
        node: &str,
        add: bool,
    ) -> Result<Vec<String>, MemberError> {
        use crate::meta::NodeId;

        let target = self.node_named(node)?;
        let (id, members) = if let Some(q) = vhost.queue(queue) {
            let quorum = q
                .quorum()
                .ok_or_else(|| MemberError::NotQuorum(queue.to_owned()))?;
            (q.store_id, quorum.placement().members)
        } else if let Some(r) = vhost.remote_queue(queue) {
            if r.members.is_empty() {
                return Err(MemberError::NotQuorum(queue.to_owned()));
            }
            (r.id, r.members.clone())
        } else {
            return Err(MemberError::NoQueue(
                queue.to_owned(),
                vhost.name.to_string(),
            ));
        };
        let via: Vec<u64> = members.iter().map(|m| m.0).collect();
        let it = NodeId(target.id);
        let failed = |e: &dyn std::fmt::Display| MemberError::Failed(e.to_string());
        let after: Vec<NodeId> = if add {
            if members.contains(&it) {
                return Err(MemberError::Already(node.to_owned(), queue.to_owned()));
            }
            if !target.running {
                return Err(MemberError::NotRunning(node.to_owned()));
            }
            let mut after = members.clone();
            after.push(it);
            set_members(vhost, queue, id, &after).await?;
            let change = GroupChange::AddVoter {
                node: target.id,
                addr: target.cluster_addr.clone(),
            };
            self.node
                .manage(id, change, ADD_WITHIN, &via)
                .await
                .map_err(|e| failed(&e))?;
            after
        } else {
            if !members.contains(&it) {
                return Err(MemberError::NotMember(node.to_owned(), queue.to_owned()));
            }
            if members.len() == 1 {
                return Err(MemberError::LastMember(queue.to_owned()));
            }
            let change = GroupChange::RemoveVoter { node: target.id };
            self.node
                .manage(id, change, REMOVE_WITHIN, &via)
                .await
                .map_err(|e| failed(&e))?;
            let after: Vec<NodeId> = members.iter().copied().filter(|&m| m != it).collect();
            set_members(vhost, queue, id, &after).await?;
            after
        };
        let names = self.nodes();
        Ok(after
            .iter()
            .map(|m| {
                names
                    .iter()
                    .find(|n| n.id == m.0)
                    .map_or_else(|| m.to_string(), |n| n.name.clone())
            })
            .collect())
    }
}

/// Which quorum queues `grow` adds a node to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowStrategy {
    /// Every matching queue the node is not a member of.
    All,
    /// Only those with an even number of members (to make it odd).
    Even,
}

impl Cluster {
    /// The quorum queues of vhosts matching `vhosts` and names matching `queues`, with
    /// their members (local or a record).
    pub(super) fn quorum_queues(
        broker: &Broker,
        vhosts: &regex::Regex,
        queues: &regex::Regex,
    ) -> Vec<(Arc<crate::vhost::VHost>, String, Vec<crate::meta::NodeId>)> {
        let mut found = Vec::new();
        for vhost in broker.vhosts() {
            if !vhosts.is_match(&vhost.name) {
                continue;
            }
            for queue in vhost.queues() {
                if let Some(quorum) = queue.quorum()
                    && queues.is_match(&queue.name)
                {
                    found.push((
                        vhost.clone(),
                        queue.name.to_string(),
                        quorum.placement().members,
                    ));
                }
            }
            for record in vhost.remote_queues() {
                if !record.members.is_empty() && queues.is_match(&record.name) {
                    found.push((vhost.clone(), record.name.clone(), record.members.clone()));
                }
            }
        }
        found.sort_by(|a, b| (&a.0.name, &a.1).cmp(&(&b.0.name, &b.1)));
        found
    }

    /// RabbitMQ's `grow`: adds node `node` to the matching quorum queues; answers how many
    /// grew and the failures (queue, why).
    pub async fn grow(
        &self,
        broker: &Broker,
        node: &str,
        strategy: GrowStrategy,
        vhosts: &regex::Regex,
        queues: &regex::Regex,
    ) -> Result<(usize, Vec<(String, String)>), MemberError> {
        let id = crate::meta::NodeId(self.node_named(node)?.id);
        let (mut grown, mut failed) = (0, Vec::new());
        for (vhost, queue, members) in Self::quorum_queues(broker, vhosts, queues) {
            if members.contains(&id) || (strategy == GrowStrategy::Even && members.len() % 2 == 1) {
                continue;
            }
            match self.change_members(&vhost, &queue, node, true).await {
                Ok(_) => grown += 1,
                Err(error) => failed.push((queue, error.to_string())),
            }
        }
        Ok((grown, failed))
    }

    /// RabbitMQ's `shrink`: removes node `node` from every quorum queue it is a member of
    /// (not the last member); answers how many shrank and the failures (queue, why).
    pub async fn shrink(
        &self,
        broker: &Broker,
        node: &str,
    ) -> Result<(usize, Vec<(String, String)>), MemberError> {
        let id = crate::meta::NodeId(self.node_named(node)?.id);
        let any = regex::Regex::new(".*").map_err(|e| MemberError::Failed(e.to_string()))?;
        let (mut shrunk, mut failed) = (0, Vec::new());
        for (vhost, queue, members) in Self::quorum_queues(broker, &any, &any) {
            if !members.contains(&id) || members.len() == 1 {
                continue;
            }
            match self.change_members(&vhost, &queue, node, false).await {
                Ok(_) => shrunk += 1,
                Err(error) => failed.push((queue, error.to_string())),
            }
        }
        Ok((shrunk, failed))
    }
}

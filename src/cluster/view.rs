//! What the management API shows of the cluster: every node with its state.
//!
//! A node is `running` when it is this node, or when the link to it is up (the transport
//! keeps one to every member and drops it when the peer stops answering). The metadata
//! leader is the leader of group 0 as this node knows it.

use serde::Serialize;
use warren_raft::METADATA_GROUP;

use super::{CLUSTER_NAME, Cluster};

/// One node as `/api/nodes` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Its Raft id (a string in JSON: ids use all 64 bits, beyond JavaScript's integers).
    #[serde(serialize_with = "as_text")]
    pub id: u64,
    /// This node, or linked to this node.
    pub running: bool,
    /// Whether it leads group 0 (as this node knows).
    pub metadata_leader: bool,
    /// A voter of group 0 (else a learner).
    pub voter: bool,
    /// Whether it is the node answering.
    pub this_node: bool,
    /// Its cluster address.
    pub cluster_addr: String,
    /// Its AMQP listener.
    pub amqp_addr: String,
    /// Its management API.
    pub mgmt_addr: Option<String>,
}

/// The answer of `/api/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster_name: String,
    /// The node answering.
    pub node: String,
    /// Its Raft id (a string in JSON).
    #[serde(serialize_with = "as_text")]
    pub node_id: u64,
    /// `forming` (joining or bootstrapping), `member`, or `left`.
    pub state: &'static str,
    /// The metadata leader's name, if known.
    pub metadata_leader: Option<String>,
    /// The metadata group's term.
    pub term: u64,
    /// The last metadata entry applied here.
    pub last_applied: Option<u64>,
    /// The seeds this node asks when it has no cluster.
    pub seeds: Vec<String>,
    /// Every node.
    pub nodes: Vec<NodeView>,
}

fn as_text<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

impl Cluster {
    /// Every node the metadata knows (this one included even while it is still forming),
    /// by name.
    pub fn nodes(&self) -> Vec<NodeView> {
        let status = self.node.status(METADATA_GROUP).unwrap_or_default();
        let mut members = self.meta.members();
        if !self.left() {
            members
                .entry(self.id())
                .or_insert_with(|| self.info.clone());
        }
        let mut nodes: Vec<NodeView> = members
            .into_values()
            .map(|info| {
                let this_node = info.id == self.id();
                NodeView {
                    running: if this_node {
                        !self.left()
                    } else {
                        !self.left() && self.node.transport().is_connected(info.id)
                    },
                    metadata_leader: status.leader == Some(info.id),
                    voter: status.voters.contains(&info.id),
                    this_node,
                    name: info.name,
                    id: info.id,
                    cluster_addr: info.cluster_addr,
                    amqp_addr: info.amqp_addr,
                    mgmt_addr: info.mgmt_addr,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let status = self.node.status(METADATA_GROUP).unwrap_or_default();
        let nodes = self.nodes();
        let leader = status
            .leader
            .and_then(|l| nodes.iter().find(|n| n.id == l).map(|n| n.name.clone()));
        ClusterStatus {
            cluster_name: CLUSTER_NAME.to_owned(),
            node: self.name().to_owned(),
            node_id: self.id(),
            state: if self.left() {
                "left"
            } else if self.formed() {
                "member"
            } else {
                "forming"
            },
            metadata_leader: leader,
            term: status.term,
            last_applied: status.last_applied,
            seeds: self.seeds.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            nodes,
        }
    }
}

//! Quorum queue membership upkeep: forgetting a node that is down (RabbitMQ's
//! `forget_cluster_node`), taking departed nodes out of quorum queues' groups (RabbitMQ's
//! `shrink_all` on a forgotten node), and, with `quorum_target_group_size` set, growing
//! queues with fewer members onto running nodes (RabbitMQ 4's continuous membership
//! reconciliation, off by default there too).
//!
//! A node that left or was forgotten is in group 0's departed set (`meta.rs`); its id never
//! comes back (a node joining again does so under a new id). Every few seconds each node
//! looks at the quorum queues whose group it leads and removes departed members from the
//! group (openraft's joint consensus: the rest must still hold a majority) and then from
//! the queue's members record; then, below the target size, it adds the running node that
//! hosts the fewest quorum queues. Only a group's leader acts, so each group is changed
//! once; a leader change or a failed step is picked up by the next sweep.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use warren_raft::GroupChange;

use super::Cluster;
use crate::broker::Broker;
use crate::meta::{DefinitionOp, NodeId};

/// How often each node looks for departed members in the groups it leads.
const SWEEP_EVERY: Duration = Duration::from_secs(3);

/// How long removing one member may take.
const REMOVE_WITHIN: Duration = Duration::from_secs(30);

impl Cluster {
    /// Forgets node `name`, which must not be running: group 0's leader appends its
    /// departure and removes it from the metadata group, and the quorum queues' leaders
    /// then remove it from their groups. The forgotten node must not start again on its
    /// data directory (wipe it; it would join afresh under a new id).
    pub async fn forget(&self, name: &str) -> Result<(), String> {
        if self.left() {
            return Err("this node already left its cluster".into());
        }
        let node = self
            .nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| format!("no cluster node '{name}'"))?;
        if node.this_node {
            return Err(format!(
                "node '{name}' is the node asked; run `cluster leave` on it instead"
            ));
        }
        if node.running {
            return Err(format!(
                "node '{name}' is running; stop it first, or run `cluster leave` on it"
            ));
        }
        self.ask_removal(node.id).await?;
        tracing::info!(node = name, id = node.id, "node forgotten");
        Ok(())
    }

    /// Removes departed nodes from the quorum queue groups this node leads, and from those
    /// queues' members records; answers how many queues changed.
    async fn drop_departed(&self, broker: &Broker) -> usize {
        let departed = self.meta.departed();
        if departed.is_empty() {
            return 0;
        }
        let mut changed = 0;
        for (vhost, queue, group, status) in self.led_quorum_queues(broker) {
            let members = queue
                .quorum()
                .map(|q| q.placement().members)
                .unwrap_or_default();
            let gone: BTreeSet<u64> = status
                .nodes
                .keys()
                .copied()
                .chain(members.iter().map(|m| m.0))
                .filter(|id| departed.contains(id))
                .collect();
            if gone.is_empty() {
                continue;
            }
            if let Err(error) = self.remove_departed(&vhost, &queue, &gone, &members).await {
                tracing::warn!(queue = %queue.name, group, %error,
                    "departed member not removed yet");
                continue;
            }
            tracing::info!(queue = %queue.name, group, removed = ?gone,
                "departed nodes removed from a quorum queue");
            changed += 1;
        }
        changed
    }

    /// The local quorum queues whose Raft group this node leads, with their vhost, group
    /// and the group's status.
    fn led_quorum_queues(
        &self,
        broker: &Broker,
    ) -> Vec<(
        Arc<crate::vhost::VHost>,
        Arc<crate::queue::Queue>,
        u64,
        warren_raft::GroupStatus,
    )> {
        let mut led = Vec::new();
        for vhost in broker.vhosts() {
            for queue in vhost.queues() {
                let Some(group) = queue.quorum().map(|q| q.group) else {
                    continue;
                };
                if let Some(status) = self.node.status(group)
                    && status.leader == Some(self.id())
                {
                    led.push((vhost.clone(), queue, group, status));
                }
            }
        }
        led
    }

    /// Removes `gone` from queue `queue`'s group (this node leads it), then from its
    /// members record.
    async fn remove_departed(
        &self,
        vhost: &Arc<crate::vhost::VHost>,
        queue: &crate::queue::Queue,
        gone: &BTreeSet<u64>,
        members: &[NodeId],
    ) -> Result<(), String> {
        let Some(quorum) = queue.quorum() else {
            return Ok(());
        };
        for &node in gone {
            self.node
                .manage(
                    quorum.group,
                    GroupChange::RemoveVoter { node },
                    REMOVE_WITHIN,
                    &[self.id()],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        let after: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|m| !gone.contains(&m.0))
            .collect();
        if after.len() == members.len() || after.is_empty() {
            return Ok(());
        }
        let op = DefinitionOp::QueueMembers {
            name: queue.name.to_string(),
            id: queue.store_id,
            members: after,
        };
        vhost
            .change(op, crate::names::ConnectionId(0))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl Cluster {
    /// Grows the quorum queues this node leads that have fewer than `target` members
    /// onto running nodes, one member per queue per sweep, the node hosting the fewest
    /// quorum queues first; answers how many grew.
    async fn grow_to_target(&self, broker: &Broker, target: usize) -> usize {
        let running: Vec<super::NodeView> =
            self.nodes().into_iter().filter(|n| n.running).collect();
        let any = match regex::Regex::new(".*") {
            Ok(any) => any,
            Err(_) => return 0,
        };
        // How many quorum queues each node hosts, as this node knows the records.
        let mut hosted: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (_, _, members) in Self::quorum_queues(broker, &any, &any) {
            for m in members {
                *hosted.entry(m.0).or_default() += 1;
            }
        }
        let mut grown = 0;
        for (vhost, queue, _, _) in self.led_quorum_queues(broker) {
            let members = queue
                .quorum()
                .map(|q| q.placement().members)
                .unwrap_or_default();
            if members.len() >= target {
                continue;
            }
            let Some(pick) = running
                .iter()
                .filter(|n| !members.contains(&NodeId(n.id)))
                .min_by_key(|n| (hosted.get(&n.id).copied().unwrap_or(0), n.id))
            else {
                continue;
            };
            match self
                .change_members(&vhost, &queue.name, &pick.name, true)
                .await
            {
                Ok(_) => {
                    *hosted.entry(pick.id).or_default() += 1;
                    grown += 1;
                    tracing::info!(queue = %queue.name, node = %pick.name, target,
                        "quorum queue grown toward its target size");
                }
                Err(error) => {
                    tracing::warn!(queue = %queue.name, node = %pick.name, %error,
                        "quorum queue not grown yet");
                }
            }
        }
        grown
    }
}

/// Sweeps for departed members every [`SWEEP_EVERY`] while the cluster service runs.
pub(super) async fn sweep(cluster: Weak<Cluster>, broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let (Some(c), Some(b)) = (cluster.upgrade(), broker.upgrade()) else {
            return;
        };
        if c.stop.is_cancelled() || c.left() {
            return;
        }
        c.drop_departed(&b).await;
        if let Some(target) = b.config.quorum_target_group_size {
            c.grow_to_target(&b, target).await;
        }
    }
}

//! Quorum queues' Raft groups on this node (issue 18, step 7): the queue room's
//! [`QuorumLog`] over the node's multi-Raft, each member's group started with the queue's
//! state machine, the declaring node initialising it with the members the declare named,
//! and a member's chores (returning what its consumers of an earlier run held; the
//! leader's clock ticks for TTLs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use warren_raft::{Command, GroupKind, Machine, NodeError, Reply};

use super::Cluster;
use super::proxy::{ProxyAnswer, ProxyMessage, encode, read_answer};
use crate::names::NodeId;
use crate::queue::quorum::live::{QuorumLog, QuorumQueue, Written};
use crate::queue::remote::SinkKey;

/// How long a quorum queue write may look for its group's leader (an election after a
/// leader's loss takes 2.5 to 5 s).
const WRITE_WITHIN: Duration = Duration::from_secs(15);

/// How often a member looks at its queue's clock.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The quorum queues' Raft groups, for the queue room.
#[derive(Debug)]
pub struct ClusterQuorum {
    cluster: Weak<Cluster>,
}

impl ClusterQuorum {
    /// Over `cluster`'s Raft node.
    pub fn new(cluster: Weak<Cluster>) -> Self {
        Self { cluster }
    }
}

impl QuorumLog for ClusterQuorum {
    fn write(&self, group: u64, command: Bytes) -> Written {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let cluster = cluster.upgrade().ok_or("the cluster service stopped")?;
            let (index, reply) = cluster
                .node
                .write_anywhere(group, Command { payload: command }, WRITE_WITHIN)
                .await
                .map_err(|e| e.to_string())?;
            Ok((index, reply.payload))
        })
    }

    fn write_as_leader(&self, group: u64, command: Bytes) -> Written {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let cluster = cluster.upgrade().ok_or("the cluster service stopped")?;
            let (index, reply) = tokio::time::timeout(
                WRITE_WITHIN,
                cluster.node.write_here(group, Command { payload: command }),
            )
            .await
            .map_err(|_| "not committed in time".to_string())?
            .map_err(|e| e.to_string())?;
            Ok((index, reply.payload))
        })
    }

    fn leader(&self, group: u64) -> (Option<NodeId>, Vec<NodeId>) {
        let Some(c) = self.cluster.upgrade() else {
            return (None, Vec::new());
        };
        let Some(status) = c.node.status(group) else {
            return (None, Vec::new());
        };
        let transport = c.node.transport();
        let online = status
            .voters
            .iter()
            .filter(|&&id| id == c.id() || transport.is_connected(id))
            .map(|&id| NodeId(id))
            .collect();
        (status.leader.map(NodeId), online)
    }

    fn remove(&self, group: u64) {
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Some(c) = cluster.upgrade() {
                let _ = c.node.remove_group(group).await;
            }
        });
    }

    fn leads(&self, group: u64) -> bool {
        self.cluster.upgrade().is_some_and(|c| {
            c.node
                .status(group)
                .is_some_and(|s| s.leader == Some(c.id()))
        })
    }
}

/// A quorum queue as its group's state machine.
struct QueueMachine(Weak<QuorumQueue>);

impl Machine for QueueMachine {
    fn apply(&self, index: u64, command: &Command) -> Reply {
        let payload = match self.0.upgrade() {
            Some(queue) => queue.apply(index, &command.payload),
            None => Vec::new(),
        };
        Reply {
            payload: Bytes::from(payload),
        }
    }

    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<(), std::io::Error> {
        match self.0.upgrade() {
            Some(queue) => queue.snapshot(out),
            // A queue deleted meanwhile: its group goes too, the snapshot is never read.
            None => Ok(()),
        }
    }

    fn restore(&self, input: &mut dyn std::io::Read) -> Result<(), std::io::Error> {
        match self.0.upgrade() {
            Some(queue) => queue.restore(input),
            None => Ok(()),
        }
    }
}

/// Starts `queue`'s group on this node, initialises it on its home, then runs the
/// member's chores while the queue lives.
pub async fn host(cluster: Weak<Cluster>, queue: Arc<QuorumQueue>) {
    let Some(c) = cluster.upgrade() else {
        return;
    };
    let machine: Arc<dyn Machine> = Arc::new(QueueMachine(Arc::downgrade(&queue)));
    match c
        .node
        .create_group_with(queue.group, GroupKind::Queue, Some(machine))
        .await
    {
        Ok(_) | Err(NodeError::GroupExists(_)) => {}
        Err(error) => {
            tracing::error!(group = queue.group, %error, "a quorum queue's group could not start");
            return;
        }
    }
    if queue.deleted() {
        // Deleted while its group was starting (a replay of declare then delete).
        let _ = c.node.remove_group(queue.group).await;
        return;
    }
    let placement = queue.placement();
    if placement.home.0 == c.id() && !placement.added {
        let members = c.members();
        let voters: BTreeMap<u64, warren_raft::BasicNode> = placement
            .members
            .iter()
            .filter_map(|m| {
                members
                    .get(&m.0)
                    .map(|info| (m.0, warren_raft::BasicNode::new(info.cluster_addr.clone())))
            })
            .collect();
        // Refused when it was initialised before (a replay after a restart): fine.
        if let Err(error) = c.node.initialize(queue.group, voters).await {
            tracing::debug!(group = queue.group, %error, "quorum group initialise");
        }
    }
    drop(c);
    let weak = Arc::downgrade(&queue);
    drop(queue);
    tokio::spawn(chores(cluster, weak));
}

/// Once this member has caught up with its group, returns what consumers of its earlier
/// runs held; then, every second, the leader appends a tick when a TTL may have passed,
/// and every few seconds asks the nodes of other consumers whether their channels are
/// still there (what a gone channel or node had out returns).
async fn chores(cluster: Weak<Cluster>, queue: Weak<QuorumQueue>) {
    let mut caught_up = false;
    let mut round = 0u32;
    let mut misses: HashMap<u64, u32> = HashMap::new();
    let mut orphans = HashSet::new();
    loop {
        tokio::time::sleep(TICK_EVERY).await;
        round = round.wrapping_add(1);
        let (Some(c), Some(q)) = (cluster.upgrade(), queue.upgrade()) else {
            return;
        };
        if !caught_up {
            let Some(status) = c.node.status(q.group) else {
                continue;
            };
            if status.leader.is_some() && status.last_applied >= status.committed {
                caught_up = true;
                q.return_stale_consumers();
            }
            continue;
        }
        q.tick();
        if q.wants_snapshot()
            && let Some(group) = c.node.group(q.group)
        {
            // Each member compacts its own log: the snapshot holds what the queue holds,
            // and the entries before it are purged (the group keeps none past it).
            if let Err(error) = group.raft.trigger().snapshot().await {
                tracing::debug!(group = q.group, %error, "quorum queue snapshot");
            }
        }
        if round.is_multiple_of(CHECK_EVERY_TICKS) {
            // Every member looks after its own consumers; the leader after the others'.
            q.return_stale_consumers();
            q.return_orphans(&mut orphans);
            if q.leader() == Some(NodeId(c.id())) {
                check_consumers(&c, &q, &mut misses).await;
            }
        }
    }
}

/// Ticks between two checks of other nodes' consumers.
const CHECK_EVERY_TICKS: u32 = 3;

/// Unanswered checks before a node is taken for down.
const DOWN_AFTER: u32 = 2;

/// Asks each node with consumers of the queue whether their channels' connections are
/// still open in the run that registered them; returns what a closed one had out, and
/// everything of a node that did not answer twice in a row.
async fn check_consumers(c: &Cluster, q: &QuorumQueue, misses: &mut HashMap<u64, u32>) {
    let mut unanswered: HashSet<u64> = HashSet::new();
    for (node, connection, channel) in q.consumer_channels_elsewhere() {
        if unanswered.contains(&node) {
            continue;
        }
        let sink = SinkKey {
            connection: connection & 0xffff_ffff,
            channel,
        };
        let answer = match encode(&ProxyMessage::Alive { sink }) {
            Some(payload) => match c.node.send_app(node, payload).await {
                Ok(response) => read_answer(response).await,
                Err(_) => None,
            },
            None => continue,
        };
        match answer {
            Some(ProxyAnswer::Alive { boot, open }) => {
                misses.remove(&node);
                if boot & 0xffff_ffff != connection >> 32 || !open {
                    q.channel_down(node, connection, channel);
                }
            }
            _ => {
                unanswered.insert(node);
                let missed = misses.entry(node).or_default();
                *missed += 1;
                if *missed >= DOWN_AFTER {
                    tracing::info!(
                        group = q.group,
                        node,
                        "a consumer's node is down; its deliveries return"
                    );
                    q.node_down(node);
                    misses.remove(&node);
                }
            }
        }
    }
}

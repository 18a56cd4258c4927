//! Forming the cluster: bootstrap, join through seeds, rejoin after a restart, leave.
//!
//! The loop runs until this node's own `NodeJoined` is applied here:
//! - group 0 initialized (restart, or the join went through) and this node leads: it
//!   appends its announcement itself (retried: right after a restart `client_write` may be
//!   refused while the old leader is still named);
//! - initialized with a known leader: a `Join` to the leader (idempotent) re-announces it;
//! - not initialized: each seed is asked to add this node; a follower seed redirects to the
//!   leader. With no seeds it initializes a one-node cluster at once. With seeds, it does
//!   so only when, for a few rounds, no seed is in a cluster, a majority of the nodes named
//!   (itself and its seeds) answered "not initialized", and its name sorts before each of
//!   theirs: two majorities of one seed list always share a node, so nodes started with the
//!   same list never form two clusters. Otherwise it waits (backoff 200 ms to 2 s, a log
//!   line every 10 s); `warrenctl cluster join` adds a seed to ask.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_raft::{JoinReply, METADATA_GROUP};

use super::Cluster;
use super::meta::MetaCommand;

/// Rounds in which no seed had a cluster before a node first by name bootstraps.
const ROUNDS_BEFORE_BOOTSTRAP: u32 = 3;

/// Forms or rejoins the cluster, then returns.
pub(super) async fn run(cluster: Arc<Cluster>) {
    let mut backoff = Duration::from_millis(200);
    let mut lonely_rounds = 0u32;
    let mut last_log = Instant::now();
    let announce = MetaCommand::NodeJoined(cluster.info.clone()).encode();
    while !cluster.formed() && !cluster.stop.is_cancelled() {
        let status = cluster.node.status(METADATA_GROUP).unwrap_or_default();
        if status.initialized() {
            if status.is_leader() {
                if let Err(e) = cluster.node.write(METADATA_GROUP, announce.clone()).await {
                    tracing::debug!(error = %e, "announcement not accepted yet");
                }
            } else if let Some(addr) = status.leader.and_then(|l| status.nodes.get(&l)) {
                if let Err(e) = cluster.node.join(addr, announce.clone()).await {
                    tracing::debug!(%addr, error = %e, "re-announcement to the leader failed");
                }
                wait_formed(&cluster, Duration::from_secs(3)).await;
            }
        } else {
            let seeds = cluster
                .seeds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match ask_seeds(&cluster, &seeds, &announce).await {
                SeedAnswer::Joined => {
                    wait_formed(&cluster, Duration::from_secs(6)).await;
                    lonely_rounds = 0;
                }
                SeedAnswer::ClusterExists => lonely_rounds = 0,
                SeedAnswer::NoCluster { labels } => {
                    lonely_rounds += 1;
                    let first = labels.iter().all(|l| cluster.identity.name < *l);
                    let majority = (labels.len() + 1) * 2 > seeds.len() + 1;
                    if seeds.is_empty()
                        || (first && majority && lonely_rounds >= ROUNDS_BEFORE_BOOTSTRAP)
                    {
                        bootstrap(&cluster).await;
                        wait_formed(&cluster, Duration::from_secs(2)).await;
                        continue;
                    }
                }
            }
            if last_log.elapsed() >= Duration::from_secs(10) {
                tracing::info!(seeds = ?seeds, "waiting to join a cluster through the seeds");
                last_log = Instant::now();
            }
        }
        tokio::select! {
            _ = cluster.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    if cluster.formed() {
        tracing::info!(node = %cluster.identity.name, "member of the cluster");
    }
}

/// What the seeds said in one round.
enum SeedAnswer {
    /// A leader accepted this node.
    Joined,
    /// Some seed is in a cluster, but did not take this node yet (no leader, refused).
    ClusterExists,
    /// No seed is in a cluster; these are the names of those that answered.
    NoCluster { labels: Vec<String> },
}

async fn ask_seeds(
    cluster: &Cluster,
    seeds: &[String],
    announce: &warren_raft::Command,
) -> SeedAnswer {
    let mut labels = Vec::new();
    let mut exists = false;
    for seed in seeds {
        let mut addr = seed.clone();
        // A follower names the leader; follow at most two redirects.
        for _ in 0..3 {
            match cluster.node.join(&addr, announce.clone()).await {
                Ok(JoinReply::Accepted { members }) => {
                    tracing::info!(%addr, members = members.len(), "join accepted");
                    return SeedAnswer::Joined;
                }
                Ok(JoinReply::Redirect {
                    leader: Some((_, leader)),
                }) => {
                    exists = true;
                    addr = leader;
                    continue;
                }
                Ok(JoinReply::Redirect { leader: None }) => exists = true,
                Ok(JoinReply::NotInitialized { label }) => labels.push(label),
                Ok(JoinReply::Refused(why)) => {
                    exists = true;
                    tracing::warn!(%addr, %why, "join refused");
                }
                // A seed with another secret or CA: the operator must hear of it.
                Err(e) if e.is_security() => {
                    tracing::warn!(%addr, error = %e, "seed refused this node's link")
                }
                Err(e) => tracing::debug!(%addr, error = %e, "seed unreachable"),
            }
            break;
        }
    }
    if exists {
        SeedAnswer::ClusterExists
    } else {
        SeedAnswer::NoCluster { labels }
    }
}

/// Initializes a one-node group 0 and announces this node (the loop retries the latter).
async fn bootstrap(cluster: &Cluster) {
    let me = BTreeMap::from([(
        cluster.identity.id,
        warren_raft::BasicNode::new(cluster.info.cluster_addr.clone()),
    )]);
    match cluster.node.initialize(METADATA_GROUP, me).await {
        Ok(()) => tracing::info!(node = %cluster.identity.name, "initialized a new cluster"),
        Err(e) => tracing::warn!(error = %e, "initialize refused"),
    }
}

/// Waits until this node's announcement is applied here, for at most `cap`.
async fn wait_formed(cluster: &Cluster, cap: Duration) {
    let deadline = Instant::now() + cap;
    while !cluster.formed() && Instant::now() < deadline && !cluster.stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Cluster {
    /// Leaves the cluster: the leader appends `NodeLeft` and removes this node from group
    /// 0; then this node stops its cluster service and deletes its Raft directory (a restart
    /// with seeds joins afresh under a new id).
    pub async fn leave(&self) -> Result<(), String> {
        if self.left() {
            return Err("this node already left its cluster".into());
        }
        self.ask_removal(self.id()).await?;
        self.left.store(true, std::sync::atomic::Ordering::Relaxed);
        self.stop.cancel();
        self.node.shutdown().await;
        let dir = self.raft_dir.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await {
            tracing::warn!(error = %e, "raft directory not removed");
        }
        tracing::info!(node = %self.identity.name, "left the cluster");
        Ok(())
    }

    /// Asks group 0's leader, wherever it is, to append `NodeLeft` for node `id` and remove
    /// it from the group (this node leaving, or a node forgotten); retried for about 5 s
    /// while no leader is known or the request fails.
    pub(super) async fn ask_removal(&self, id: u64) -> Result<(), String> {
        let farewell = MetaCommand::NodeLeft { id }.encode();
        let mut reply = Err("no leader known".to_owned());
        for _ in 0..20 {
            let status = self.node.status(METADATA_GROUP).unwrap_or_default();
            let via = if status.is_leader() {
                None
            } else {
                match status.leader.and_then(|l| status.nodes.get(&l)) {
                    Some(addr) => Some(addr.clone()),
                    None => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                }
            };
            reply = match self
                .node
                .remove_via(via.as_deref(), id, farewell.clone())
                .await
            {
                Ok(JoinReply::Accepted { .. }) => Ok(()),
                Ok(JoinReply::Refused(why)) => return Err(why),
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            };
            if reply.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        reply
    }
}

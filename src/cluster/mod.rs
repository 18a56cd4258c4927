//! The `cluster` room: this broker as a node of a Warren cluster (issue 18).
//!
//! Started only when cluster keys are set (`Config::cluster()` is `Some`); without them
//! nothing here runs and the broker is the single node it always was. It owns the node's
//! [`warren_raft::RaftNode`] (`<data_dir>/raft`) and group 0, whose state machine
//! ([`meta::MetaState`]) knows, for now, only the cluster's nodes. The room sits above the
//! broker-level rooms (it reads `config`; later steps apply definitions to `broker`, `vhost`
//! and `queue`); `mgmt` reads it for `/api/nodes` and `/api/cluster/*`.
//!
//! - `identity.rs`: the node file (stable id, name, cluster name).
//! - `meta.rs`: the metadata commands and state machine.
//! - `form.rs`: first start (bootstrap or join through seeds), rejoin, leave.
//! - `reconcile.rs`: forgetting a node that is down; quorum queue members kept right
//!   (departed nodes removed, queues grown to `quorum_target_group_size`).
//! - `shovels.rs`: the metadata leader runs the cluster's shovels.
//! - `view.rs`: what `/api/nodes` shows of every node.

pub mod apply;
mod consume;
mod deliver;
mod form;
pub mod identity;
pub mod meta;
pub mod operate;
pub mod proxy;
pub mod quorum;
mod reconcile;
mod serve_quorum;
mod shovels;
mod sink;
pub mod submit;
mod view;

pub use view::NodeView;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_raft::{GroupKind, METADATA_GROUP, NodeConfig, RaftNode};

use crate::broker::Broker;
use crate::config::{ClusterConfig, Config};
use identity::Identity;
use meta::{MetaState, NodeInfo};

/// The cluster's name (one per deployment for now; peers of another are refused).
pub const CLUSTER_NAME: &str = "warren";

/// Why the cluster service did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node file or raft directory.
    #[error("cluster data: {0}")]
    Io(#[from] std::io::Error),
    /// The Raft node.
    #[error(transparent)]
    Node(#[from] warren_raft::NodeError),
    /// The link's secret or TLS files.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Where this node's own listeners are, for its `NodeJoined` announcement.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The AMQP listener.
    pub amqp: SocketAddr,
    /// The management API, if on.
    pub mgmt: Option<SocketAddr>,
}

/// This broker's cluster service.
pub struct Cluster {
    identity: Identity,
    raft_dir: PathBuf,
    node: RaftNode,
    meta: MetaState,
    info: NodeInfo,
    /// Seeds from the config plus those given to `cluster join`.
    seeds: Mutex<Vec<String>>,
    /// Set once this node left the cluster (the service is stopped).
    left: std::sync::atomic::AtomicBool,
    stop: CancellationToken,
}

impl Cluster {
    /// Starts the node: node file, Raft node on the cluster port, group 0, then forms or
    /// rejoins the cluster in the background.
    pub async fn start(
        broker: &Arc<Broker>,
        cluster: &ClusterConfig,
        listeners: Listeners,
    ) -> Result<Arc<Self>, ClusterError> {
        shovels::attach(broker);
        let config = &broker.config;
        let raft_dir = config.data_dir.join("raft");
        let identity = Identity::load_or_create(&raft_dir, &cluster.node_name, CLUSTER_NAME)?;
        let security = config.cluster_security()?;
        log_security(&security, cluster.port);
        let node = RaftNode::start(NodeConfig {
            node_id: identity.id,
            cluster_name: identity.cluster.clone(),
            bind: SocketAddr::new(config.bind, cluster.port),
            // AllowAll unless a test sets WARREN_TEST_LINK_FAULTS (the fault test's cuts).
            policy: warren_raft::transport::policy::from_env(),
            security,
            data_dir: Some(raft_dir.clone()),
        })
        .await?;
        node.set_label(identity.name.clone());
        let meta = MetaState::default();
        // Before group 0 exists: its snapshot and log are applied to the broker from the start.
        meta.applier.attach(
            Arc::downgrade(broker),
            crate::meta::NodeId(identity.id),
            broker.clean_start,
        );
        let info = NodeInfo {
            id: identity.id,
            name: identity.name.clone(),
            cluster_addr: advertised(config, cluster.port),
            amqp_addr: listeners.amqp.to_string(),
            mgmt_addr: listeners.mgmt.map(|a| a.to_string()),
        };
        let seeds = cluster
            .seeds
            .iter()
            .map(|(host, port)| seed_addr(host, *port))
            .collect();
        let this = Arc::new(Self {
            identity,
            raft_dir,
            node,
            meta,
            info,
            seeds: Mutex::new(seeds),
            left: Default::default(),
            stop: CancellationToken::new(),
        });
        let homes = consume::Homes::new(Arc::downgrade(&this), Arc::downgrade(broker));
        let boot = homes.boot;
        this.node.set_app_handler(Arc::new(proxy::ProxyHandler::new(
            Arc::downgrade(broker),
            homes,
        )));
        broker.set_meta(submit::ClusterMeta::new(&this, boot));
        // After the broker has its metadata log: replaying group 0 declares quorum queues,
        // whose groups start through it.
        this.node
            .create_group_with(
                METADATA_GROUP,
                GroupKind::Metadata,
                Some(Arc::new(this.meta.clone())),
            )
            .await?;
        tracing::info!(node = %this.identity.name, id = this.identity.id,
            addr = %this.node.local_addr(), "cluster node started");
        tokio::spawn(form::run(this.clone()));
        tokio::spawn(keep_peers(this.clone()));
        tokio::spawn(watch_homes(Arc::downgrade(&this), Arc::downgrade(broker)));
        tokio::spawn(reconcile::sweep(
            Arc::downgrade(&this),
            Arc::downgrade(broker),
        ));
        tokio::spawn(shovels::follow_leader(
            Arc::downgrade(&this),
            Arc::downgrade(broker),
        ));
        Ok(this)
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        self.identity.id
    }

    /// The nodes as applied here.
    pub fn members(&self) -> meta::Members {
        self.meta.members()
    }

    /// Adds a seed to try (`warrenctl cluster join`); only a node that has not joined a
    /// cluster yet can use it.
    pub fn add_seed(&self, addr: String) -> Result<(), String> {
        if self.left() {
            return Err("this node left its cluster; restart it to join another".into());
        }
        if self.formed() {
            return Err(format!(
                "{} is already a member of a cluster; `cluster leave` first \
                 (a node cannot merge two clusters)",
                self.identity.name
            ));
        }
        let mut seeds = self.seeds.lock().unwrap_or_else(|p| p.into_inner());
        if !seeds.contains(&addr) {
            seeds.push(addr);
        }
        Ok(())
    }

    /// Whether this node is a member of a cluster (its own announcement applied here).
    pub fn formed(&self) -> bool {
        self.meta.has(self.identity.id)
    }

    /// Whether this node left its cluster.
    pub fn left(&self) -> bool {
        self.left.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (at most `within`) until this node applied what its log had committed when it
    /// started and, once a leader is known (a restarted node hears it within a heartbeat),
    /// what the leader has committed since, so clients connecting next see every
    /// definition; then removes the queues living here that a restart ends (non-durable,
    /// exclusive), as RabbitMQ does.
    pub async fn wait_replayed(&self, broker: &Broker, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let at_start = self
            .node
            .status(METADATA_GROUP)
            .and_then(|s| s.committed)
            .unwrap_or(0);
        // A node that is a member waits a little for its leader's news; a new one does not.
        let member = at_start > 0;
        let leader_by = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.node.status(METADATA_GROUP);
            let applied = status.as_ref().and_then(|s| s.last_applied).unwrap_or(0);
            let committed = status.as_ref().and_then(|s| s.committed).unwrap_or(0);
            let leader = status.as_ref().is_some_and(|s| s.leader.is_some());
            let now = tokio::time::Instant::now();
            let caught_up = applied >= committed.max(at_start);
            if caught_up && (leader || !member || now >= leader_by) {
                break;
            }
            if now >= deadline {
                tracing::warn!(
                    applied,
                    committed,
                    "metadata log not replayed in time; serving anyway"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for vhost in broker.vhosts() {
            for queue in vhost.queues() {
                if !queue.spec.durable || queue.spec.exclusive_owner.is_some() {
                    vhost.retire_queue(&queue);
                }
            }
        }
    }

    /// Waits (at most `within`) until this node is a member of a cluster.
    pub async fn wait_formed(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.formed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the cluster service (broker shutdown).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.node.shutdown().await;
    }
}

/// Says at start how the cluster links are secured, and warns when they are not.
fn log_security(security: &warren_raft::LinkSecurity, port: u16) {
    match (&security.secret, &security.tls) {
        (None, None) => tracing::warn!(
            port,
            "cluster links are neither authenticated nor encrypted: any host that reaches \
             the cluster port can join; set cluster_secret_file (and cluster_tls_*) unless \
             the network is trusted"
        ),
        (secret, tls) => tracing::info!(
            secret = secret.is_some(),
            tls = tls.is_some(),
            "cluster links secured"
        ),
    }
    // A short secret could be guessed offline from one handshake seen on the network.
    if let Some(secret) = &security.secret
        && secret.len() < 16
    {
        tracing::warn!(
            bytes = secret.len(),
            "the cluster secret is short; use 16 bytes or more (e.g. openssl rand -hex 32)"
        );
    }
}

/// The address peers dial for this node: the bind address, or loopback for a wildcard bind.
fn advertised(config: &Config, port: u16) -> String {
    let ip = if config.bind.is_unspecified() {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        config.bind
    };
    SocketAddr::new(ip, port).to_string()
}

/// `host:port`, with brackets for an IPv6 host.
fn seed_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Keeps a link to every member (the lower id dials), so every node sees every other.
/// Checks of a node's link, a second apart, that must fail before the queues it serves
/// to this node count as down.
const HOME_DOWN_AFTER: u32 = 2;

/// Cancels this node's consumers of queues served by a node whose link stays down (the
/// clients get basic.cancel and may consume again, from another member of a quorum queue).
async fn watch_homes(cluster: std::sync::Weak<Cluster>, broker: std::sync::Weak<Broker>) {
    let mut misses: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Some(c), Some(b)) = (cluster.upgrade(), broker.upgrade()) else {
            return;
        };
        if c.stop.is_cancelled() {
            return;
        }
        for (id, _) in c.meta.members() {
            if id == c.id() || c.node.transport().is_connected(id) {
                misses.remove(&id);
                continue;
            }
            let missed = misses.entry(id).or_default();
            *missed += 1;
            if *missed != HOME_DOWN_AFTER {
                continue;
            }
            let consumers: Vec<_> = b
                .vhosts()
                .iter()
                .flat_map(|v| v.drop_remote_handles_at(crate::names::NodeId(id)))
                .collect();
            if !consumers.is_empty() {
                tracing::info!(
                    node = id,
                    consumers = consumers.len(),
                    "a queue's node is down; its consumers here are cancelled"
                );
                tokio::spawn(async move { crate::queue::notify_cancelled(&consumers).await });
            }
        }
    }
}

async fn keep_peers(cluster: Arc<Cluster>) {
    loop {
        cluster.node.sync_peers();
        for (id, info) in cluster.meta.members() {
            cluster.node.add_peer(id, info.cluster_addr);
        }
        tokio::select! {
            _ = cluster.stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

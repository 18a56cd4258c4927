//! A cluster node: the transport listener plus every Raft group this node is a member of.
//!
//! Each group is one `openraft::Raft` sharing the node's [`Router`] (so one TCP link per
//! peer carries all groups). Incoming Raft RPCs are dispatched by group id to the local
//! `Raft`; a request for a group this node does not host is answered with an error, which
//! the sender treats as unreachable and retries later (the group may be still starting).
//! Groups host [`NoopSm`] for now. A node with a data dir keeps every group's log in its one
//! shared [`Wal`] (`<data_dir>/wal/`) and snapshots under `<data_dir>/snap/<group>/`, so it
//! restarts with its state; a node without one uses [`MemLog`] (pure in-memory tests).
//! A group may host an application [`Machine`] (the broker's metadata); join and leave
//! requests are answered from group 0 ([`crate::membership`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::BasicNode;
use openraft::ConfigError;
use openraft::error::{Fatal, InitializeError, RaftError};

use crate::group_config::GroupKind;
use crate::machine::Machine;
use crate::mem_log::MemLog;
use crate::membership::{self, GroupStatus};
use crate::noop_sm::NoopSm;
use crate::receive::{Receiving, dispatch};
use crate::router::{NetworkFactory, Router};
use crate::snapshot::SnapshotStore;
use crate::transport::policy::LinkPolicy;
use crate::transport::wire::{JoinReply, Request, Response, WriteReply};
use crate::transport::{
    Handler, HandlerFuture, LinkSecurity, Transport, TransportConfig, TransportError,
};
use crate::types::{Command, GroupId, METADATA_GROUP, NodeId, Reply, Wr};
use crate::wal::{Wal, WalError};
use crate::wal_log::WalLog;

/// A Raft group as hosted in step 1.
pub type GroupRaft = openraft::Raft<Wr, NoopSm>;

/// How a node starts.
pub struct NodeConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// The cluster's name; peers with another are refused, and openraft logs it.
    pub cluster_name: String,
    /// The cluster listen address (port 0 picks one).
    pub bind: SocketAddr,
    /// Which links may carry traffic (`AllowAll` outside tests).
    pub policy: Arc<dyn LinkPolicy>,
    /// The cluster secret and TLS of the node's links (default: neither).
    pub security: LinkSecurity,
    /// The node's Raft directory (`<data_dir>/wal/`, `<data_dir>/snap/<group>/`; the broker
    /// will pass its `<data dir>/raft`); `None` keeps every log in memory (tests only).
    pub data_dir: Option<PathBuf>,
}

/// Why a node or group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listener could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// openraft refused the group config.
    #[error("raft config: {0}")]
    Config(#[from] ConfigError),
    /// The group's Raft stopped.
    #[error("raft group {group}: {message}")]
    Fatal {
        /// The group.
        group: GroupId,
        /// openraft's error text.
        message: String,
    },
    /// `initialize` was refused (already initialized, or this node not in the members).
    #[error("initialize group {group}: {message}")]
    Initialize {
        /// The group.
        group: GroupId,
        /// openraft's error text.
        message: String,
    },
    /// This node could not append (not the leader, or the group is changing).
    #[error("group {group}: write refused: {message}")]
    NotLeader {
        /// The group.
        group: GroupId,
        /// openraft's error text.
        message: String,
    },
    /// The group is already hosted here.
    #[error("group {0} already exists on this node")]
    GroupExists(GroupId),
    /// The group is not hosted here.
    #[error("group {0} is not on this node")]
    NoSuchGroup(GroupId),
    /// The WAL could not be opened.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The group's state machine could not restore its snapshot.
    #[error("group {group} snapshot: {source}")]
    Snapshot {
        /// The group.
        group: GroupId,
        /// The error.
        source: std::io::Error,
    },
}

/// A group hosted on this node: its Raft handle and its state machine.
#[derive(Clone)]
pub struct Group {
    /// The group's Raft.
    pub raft: GroupRaft,
    /// The group's state machine (shared with the Raft).
    pub sm: NoopSm,
    /// The snapshot arriving in chunks, if any.
    pub(crate) receiving: Arc<std::sync::Mutex<Receiving>>,
}

/// What a node does with [`Request::App`] messages: the application's own protocol.
pub trait AppHandler: Send + Sync + 'static {
    /// Takes one message from node `from`. Called in the order the messages came on
    /// the link; whatever must keep that order happens before this returns, the answer
    /// may come later.
    fn handle(
        &self,
        from: NodeId,
        payload: bytes::Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bytes::Bytes, String>> + Send>>;
}

/// The groups of a node, by id; also the handler of incoming requests.
#[derive(Default)]
struct Groups {
    map: RwLock<HashMap<GroupId, Group>>,
    /// The application's handler of [`Request::App`].
    app: std::sync::OnceLock<Arc<dyn AppHandler>>,
    /// The node's name for people, told to joiners while no cluster exists.
    label: RwLock<String>,
}

impl Groups {
    fn get(&self, group: GroupId) -> Option<Group> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group)
            .cloned()
    }
}

impl Handler for Groups {
    fn handle(&self, from: NodeId, req: Request) -> HandlerFuture {
        match req {
            Request::Ping => Box::pin(async { Response::Pong }),
            Request::Raft { group, rpc } => match self.get(group) {
                None => Box::pin(async move {
                    Response::Raft(Err(format!("group {group} is not on this node")))
                }),
                Some(g) => Box::pin(async move { Response::Raft(dispatch(g, rpc).await) }),
            },
            Request::Join {
                node_id,
                addr,
                announce,
            } => {
                let label = self.label.read().unwrap_or_else(|p| p.into_inner()).clone();
                let raft = self.get(METADATA_GROUP).map(|g| g.raft);
                let reply = membership::handle_join(raft, label, node_id, addr, announce);
                Box::pin(async move { Response::Join(reply) })
            }
            Request::App(payload) => match self.app.get() {
                Some(app) => {
                    let answer = app.handle(from, payload);
                    Box::pin(async move { Response::App(answer.await) })
                }
                None => Box::pin(async { Response::App(Err("no application handler".into())) }),
            },
            Request::Write { group, command } => {
                let g = self.get(group);
                Box::pin(async move { Response::Write(leader_write(g, command).await) })
            }
            Request::Manage { group, change } => {
                let g = self.get(group);
                Box::pin(async move { Response::Manage(crate::manage::on_leader(g, change).await) })
            }
            Request::Leave { node_id, announce } => {
                let raft = self.get(METADATA_GROUP).map(|g| g.raft);
                Box::pin(async move {
                    Response::Leave(membership::handle_leave(raft, node_id, announce).await)
                })
            }
        }
    }
}

/// A client write on this node, which must lead the group.
async fn leader_write(group: Option<Group>, command: Command) -> WriteReply {
    let Some(g) = group else {
        return WriteReply::NotLeader(None);
    };
    match g.raft.client_write(command).await {
        Ok(resp) => WriteReply::Done {
            index: resp.log_id.index,
            reply: resp.data,
        },
        Err(e) => match e.forward_to_leader() {
            Some(forward) => WriteReply::NotLeader(forward.leader_id),
            None => WriteReply::Failed(e.to_string()),
        },
    }
}

/// A node: one listener, one router, many groups.
pub struct RaftNode {
    id: NodeId,
    cluster_name: String,
    router: Router,
    groups: Arc<Groups>,
    wal: Option<Arc<Wal>>,
    data_dir: Option<PathBuf>,
}

impl RaftNode {
    /// Binds the cluster listener; no group exists yet.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let wal = match &config.data_dir {
            Some(dir) => {
                let dir = dir.join("wal");
                let wal = tokio::task::spawn_blocking(move || Wal::open(&dir))
                    .await
                    .map_err(|e| NodeError::Fatal {
                        group: METADATA_GROUP,
                        message: format!("WAL open task: {e}"),
                    })??;
                Some(Arc::new(wal))
            }
            None => None,
        };
        let groups = Arc::new(Groups::default());
        let transport = Transport::bind(
            TransportConfig {
                node_id: config.node_id,
                cluster_name: config.cluster_name.clone(),
                bind: config.bind,
                connect_timeout: Duration::from_secs(2),
                policy: config.policy,
                security: config.security,
            },
            groups.clone(),
        )
        .await?;
        Ok(Self {
            id: config.node_id,
            cluster_name: config.cluster_name,
            router: Router::new(transport),
            groups,
            wal,
            data_dir: config.data_dir,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address peers dial (put it in `BasicNode::addr`).
    pub fn local_addr(&self) -> SocketAddr {
        self.router.transport().local_addr()
    }

    /// The node's transport.
    pub fn transport(&self) -> &Transport {
        self.router.transport()
    }

    /// Tells the transport where a peer listens.
    pub fn add_peer(&self, id: NodeId, addr: impl Into<String>) {
        self.router.transport().add_peer(id, addr);
    }

    /// Starts hosting `group` with a fresh log and state machine.
    pub async fn create_group(&self, group: GroupId, kind: GroupKind) -> Result<Group, NodeError> {
        self.create_group_with(group, kind, None).await
    }

    /// Starts hosting `group`, its application commands applied by `machine` (if any).
    pub async fn create_group_with(
        &self,
        group: GroupId,
        kind: GroupKind,
        machine: Option<Arc<dyn Machine>>,
    ) -> Result<Group, NodeError> {
        if self.groups.get(group).is_some() {
            return Err(NodeError::GroupExists(group));
        }
        let config = kind.config(&self.cluster_name)?;
        let network = NetworkFactory::new(self.router.clone(), group);
        let fatal = |e: Fatal<Wr>| NodeError::Fatal {
            group,
            message: e.to_string(),
        };
        let (raft, sm, store) = match (&self.wal, &self.data_dir) {
            (Some(wal), Some(dir)) => {
                let store = SnapshotStore::new(dir.join("snap").join(group.to_string()));
                let sm = NoopSm::open_with(Some(store.clone()), machine)
                    .map_err(|source| NodeError::Snapshot { group, source })?;
                let log = WalLog::new(wal.clone(), group);
                let raft = GroupRaft::new(self.id, config, network, log, sm.clone()).await;
                (raft.map_err(fatal)?, sm, Some(store))
            }
            _ => {
                let sm = NoopSm::open_with(None, machine)
                    .map_err(|source| NodeError::Snapshot { group, source })?;
                let raft =
                    GroupRaft::new(self.id, config, network, MemLog::new(), sm.clone()).await;
                (raft.map_err(fatal)?, sm, None)
            }
        };
        let hosted = Group {
            raft,
            sm,
            receiving: Arc::new(std::sync::Mutex::new(Receiving::new(store))),
        };
        let mut map = self.groups.map.write().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&group) {
            return Err(NodeError::GroupExists(group));
        }
        map.insert(group, hosted.clone());
        tracing::info!(node = self.id, group, ?kind, "raft group started");
        Ok(hosted)
    }

    /// Starts hosting the metadata group (group 0).
    pub async fn create_metadata_group(&self) -> Result<Group, NodeError> {
        self.create_group(METADATA_GROUP, GroupKind::Metadata).await
    }

    /// The node's WAL, if it has a data dir.
    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.wal.as_ref()
    }

    /// A hosted group.
    pub fn group(&self, group: GroupId) -> Option<Group> {
        self.groups.get(group)
    }

    /// Initializes `group` with `members` as its first voters (once, on one node).
    pub async fn initialize(
        &self,
        group: GroupId,
        members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<(), NodeError> {
        let g = self.group(group).ok_or(NodeError::NoSuchGroup(group))?;
        g.raft
            .initialize(members)
            .await
            .map_err(
                |e: RaftError<Wr, InitializeError<Wr>>| NodeError::Initialize {
                    group,
                    message: e.to_string(),
                },
            )
    }

    /// Sets the name joiners are told while this node has no cluster (the broker's node name).
    pub fn set_label(&self, label: impl Into<String>) {
        *self.groups.label.write().unwrap_or_else(|p| p.into_inner()) = label.into();
    }

    /// What this node knows of `group` (`None`: not hosted here).
    pub fn status(&self, group: GroupId) -> Option<GroupStatus> {
        self.group(group).map(|g| GroupStatus::of(&g.raft))
    }

    /// Tells the transport the address of every member of group 0 (idempotent).
    pub fn sync_peers(&self) {
        if let Some(status) = self.status(METADATA_GROUP) {
            for (id, addr) in status.nodes {
                self.add_peer(id, addr);
            }
        }
    }

    /// Appends `command` to `group` through this node, which must lead it (a follower
    /// answers with [`NodeError::NotLeader`]; callers retry).
    pub async fn write(&self, group: GroupId, command: Command) -> Result<Reply, NodeError> {
        let g = self.group(group).ok_or(NodeError::NoSuchGroup(group))?;
        match g.raft.client_write(command).await {
            Ok(resp) => Ok(resp.data),
            Err(e) => Err(NodeError::NotLeader {
                group,
                message: e.to_string(),
            }),
        }
    }

    /// Appends `command` to `group` if this node leads it now: its index and reply. Unlike
    /// [`RaftNode::write_anywhere`] it is never forwarded, so it commits only in the term
    /// this node leads (a deposed leader's entry is overwritten by the new leader's log).
    pub async fn write_here(
        &self,
        group: GroupId,
        command: Command,
    ) -> Result<(u64, Reply), NodeError> {
        match leader_write(self.group(group), command).await {
            WriteReply::Done { index, reply } => Ok((index, reply)),
            WriteReply::NotLeader(_) => Err(NodeError::NotLeader {
                group,
                message: "this node does not lead the group".into(),
            }),
            WriteReply::Failed(message) => Err(NodeError::NotLeader { group, message }),
        }
    }

    /// Sets the handler of application messages ([`RaftNode::send_app`]); once.
    pub fn set_app_handler(&self, handler: Arc<dyn AppHandler>) {
        let _ = self.groups.app.set(handler);
    }

    /// Sends an application message to node `to` on the pair's link, in order after
    /// those sent before; resolves with where its answer comes.
    pub async fn send_app(
        &self,
        to: NodeId,
        payload: bytes::Bytes,
    ) -> Result<tokio::sync::oneshot::Receiver<Response>, TransportError> {
        self.transport()
            .send_request(to, Request::App(payload))
            .await
    }

    /// Appends `command` to `group` wherever its leader is: here, or forwarded over the
    /// leader's link; retried while the leader is unknown or moves, until `within` passed.
    /// Answers the entry's log index and the leader's reply. A forwarded write whose answer
    /// was lost may still commit (the caller's command must bear being applied once more).
    pub async fn write_anywhere(
        &self,
        group: GroupId,
        command: Command,
        within: Duration,
    ) -> Result<(u64, Reply), NodeError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let leader = self.group(group).and_then(|g| {
                let status = GroupStatus::of(&g.raft);
                status.leader
            });
            let reply = match leader {
                Some(leader) if leader == self.id => {
                    leader_write(self.group(group), command.clone()).await
                }
                Some(leader) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let req = Request::Write {
                        group,
                        command: command.clone(),
                    };
                    match self
                        .transport()
                        .request(leader, req, left.max(Duration::from_millis(10)))
                        .await
                    {
                        Ok(Response::Write(reply)) => reply,
                        Ok(other) => WriteReply::Failed(format!("unexpected answer {other:?}")),
                        Err(e) => WriteReply::Failed(e.to_string()),
                    }
                }
                None => WriteReply::NotLeader(None),
            };
            let last = match reply {
                WriteReply::Done { index, reply } => return Ok((index, reply)),
                WriteReply::NotLeader(_) => "no leader".to_string(),
                WriteReply::Failed(text) => text,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NotLeader {
                    group,
                    message: last,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the node at `addr` (a seed) to add this node to group 0; on
    /// [`JoinReply::Accepted`] every member becomes a known peer.
    pub async fn join(&self, addr: &str, announce: Command) -> Result<JoinReply, TransportError> {
        let req = Request::Join {
            node_id: self.id,
            addr: self.local_addr().to_string(),
            announce,
        };
        let resp = self
            .transport()
            .call_addr(addr, req, Duration::from_secs(5))
            .await?;
        let reply = match resp {
            Response::Join(reply) => reply,
            other => JoinReply::Refused(format!("unexpected answer {other:?}")),
        };
        if let JoinReply::Accepted { members } = &reply {
            for (id, addr) in members {
                self.add_peer(*id, addr.clone());
            }
        }
        Ok(reply)
    }

    /// Asks the leader of group 0 (this node, or the one at `addr`) to remove this node,
    /// after appending `announce`.
    pub async fn leave_via(
        &self,
        addr: Option<&str>,
        announce: Command,
    ) -> Result<JoinReply, TransportError> {
        self.remove_via(addr, self.id, announce).await
    }

    /// Asks the leader of group 0 (this node, or the one at `addr`) to remove node
    /// `node_id` (this one leaving, or another that is gone for good), after appending
    /// `announce`.
    pub async fn remove_via(
        &self,
        addr: Option<&str>,
        node_id: NodeId,
        announce: Command,
    ) -> Result<JoinReply, TransportError> {
        let Some(addr) = addr else {
            let raft = self.group(METADATA_GROUP).map(|g| g.raft);
            return Ok(membership::handle_leave(raft, node_id, announce).await);
        };
        let req = Request::Leave { node_id, announce };
        let resp = self
            .transport()
            .call_addr(addr, req, Duration::from_secs(10))
            .await?;
        Ok(match resp {
            Response::Leave(reply) => reply,
            other => JoinReply::Refused(format!("unexpected answer {other:?}")),
        })
    }

    /// Stops hosting `group` for good (its queue was deleted): its Raft stops, its log
    /// entries are purged (so the WAL files they pinned can go) and its snapshots removed.
    pub async fn remove_group(&self, group: GroupId) -> Result<(), NodeError> {
        let removed = self
            .groups
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
        let Some(g) = removed else {
            return Err(NodeError::NoSuchGroup(group));
        };
        if let Err(e) = g.raft.shutdown().await {
            tracing::warn!(node = self.id, group, error = %e, "raft group did not stop cleanly");
        }
        if let Some(wal) = &self.wal
            && let (_, Some(last)) = wal.log_state(group)
            && let Err(e) = wal.purge(group, last).await
        {
            tracing::warn!(node = self.id, group, error = %e, "a removed group's log was not purged");
        }
        if let Some(dir) = &self.data_dir {
            let snaps = dir.join("snap").join(group.to_string());
            if let Err(e) = std::fs::remove_dir_all(&snaps)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(node = self.id, group, error = %e, "a removed group's snapshots stayed");
            }
        }
        tracing::info!(node = self.id, group, "raft group removed");
        Ok(())
    }

    /// Stops every group and the transport.
    pub async fn shutdown(&self) {
        let groups: Vec<(GroupId, Group)> = self
            .groups
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (group, g) in groups {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(node = self.id, group, error = %e, "raft group did not stop cleanly");
            }
        }
        self.router.transport().shutdown();
    }
}

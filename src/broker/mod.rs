//! The broker's shared state: configuration, users and permissions, vhosts,
//! the registry of live connections, the store and the resource alarms.
//! Opened once at start (recovering what the store holds) and shared by every
//! connection, the management API and the listener in `server.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::alarms::Alarms;
use crate::auth::{Registry, VHostDef};
use crate::config::Config;
use crate::durable::Storage;
use crate::meta::MetaLog;
use crate::names::ConnectionId;
use crate::policy::{Policies, PolicyDef, PolicyKind};
use crate::queue::CoarseClock;
use crate::recovery;
use crate::shovel::Shovels;
use crate::stats::{ChannelCounters, History};
use crate::vhost::VHost;
use connections::LiveConnection;
use warren_storage::StorageError;

pub mod admission;
mod changes;
pub mod connections;
pub mod stats;
pub mod timeouts;

/// State shared by every connection of one broker.
#[derive(Debug)]
pub struct Broker {
    /// The validated configuration.
    pub config: Config,
    /// Users, vhost records and permissions.
    pub auth: Arc<Registry>,
    /// Policies and operator policies (change them through
    /// [`Broker::put_policy`] and [`Broker::delete_policy`], which apply them).
    pub policies: Arc<Policies>,
    /// Name reported as `cluster_name` in connection.start.
    pub cluster_name: String,
    vhosts: DashMap<String, Arc<VHost>>,
    /// Connections admitted at connection.open, not yet registered (see
    /// [`admission`]).
    pub admissions: Arc<admission::Admissions>,
    /// Live connections by id (see [`connections`]).
    pub connections: DashMap<ConnectionId, Arc<LiveConnection>>,
    next_connection_id: AtomicU64,
    /// The store of durable state.
    pub storage: Arc<Storage>,
    /// Memory and disk alarms (blocking publishers).
    pub alarms: Alarms,
    /// Seconds since start, advanced by [`timeouts::run`]; deliveries are
    /// stamped with it.
    pub clock: Arc<CoarseClock>,
    /// Dynamic shovels: their parameters and workers.
    pub shovels: Arc<Shovels>,
    /// The counts of closed connections (what the overview keeps of them).
    pub retired: ChannelCounters,
    /// Broker-wide counts no object owns (`/metrics` global counters).
    pub global: Arc<crate::stats::GlobalCounters>,
    /// Samples of the overview: every channel's counts summed, then the
    /// queues' lengths (see [`stats`]).
    pub history: History,
    /// The last run shut down cleanly (read at open).
    pub clean_start: bool,
    /// In a cluster: the metadata log every vhost's definition changes go through.
    meta: std::sync::OnceLock<Arc<dyn MetaLog>>,
}

impl Broker {
    /// Opens the store in the configured data directory and recovers what it
    /// holds; a fresh broker gets the configured default user and vhost.
    pub fn open(config: Config) -> Result<Arc<Self>, StorageError> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let engine = config
            .storage_engine()
            .map_err(|e| StorageError::Engine(e.to_string()))?;
        let storage = Storage::open(&config.data_dir, config.storage_cache_bytes(), engine)?;
        storage.set_transient_window(config.transient_window);
        storage.set_quorum_window(config.quorum_window);
        if matches!(config.cluster(), Ok(Some(_))) {
            storage.refuse_single_node_definitions()?;
            storage.replicate_definitions();
        }
        let vhosts = DashMap::new();
        storage.save_vhost(&config.default_vhost);
        vhosts.insert(
            config.default_vhost.clone(),
            VHost::new(&config.default_vhost, storage.clone()),
        );
        let clean_start = recovery::recover(&storage, &vhosts)?;
        let auth = Registry::from_config(&config);
        match storage.load_auth()? {
            Some(stored) => {
                if let Err(error) = auth.restore(&stored) {
                    tracing::error!(%error, "stored users and permissions are invalid; using the configured defaults");
                }
                // A stored vhost record without live state (an older store): create it.
                for vhost in auth.vhosts() {
                    vhosts
                        .entry(vhost.name.clone())
                        .or_insert_with(|| VHost::new(&vhost.name, storage.clone()));
                }
            }
            None => storage.save_auth(&auth.export()),
        }
        {
            let storage = storage.clone();
            auth.on_change(Box::new(move |defs| storage.save_auth(defs)));
        }
        let policies = Arc::new(Policies::default());
        if let Some(stored) = storage.load_policies()? {
            policies.restore(&stored);
        }
        {
            let storage = storage.clone();
            policies.on_change(Box::new(move |all| storage.save_policies(all)));
        }
        let shovels = Shovels::open(storage.clone(), auth.internal_secret().to_owned())?;
        // validate() checked both limits.
        let alarms = Alarms::new(
            config.memory_limit_bytes().unwrap_or(u64::MAX),
            config.memory_paging_ratio,
            config.disk_free_limit_bytes().unwrap_or(0),
            config.data_dir.clone(),
        );
        let broker = Arc::new(Broker {
            alarms,
            auth,
            policies,
            connections: DashMap::new(),
            admissions: Arc::default(),
            // A cluster node is known by its node name; a single node as before.
            cluster_name: match config.cluster() {
                Ok(Some(cluster)) => cluster.node_name,
                _ => format!("warren@{host}"),
            },
            vhosts,
            next_connection_id: AtomicU64::new(1),
            config,
            storage,
            clock: Arc::default(),
            shovels,
            retired: ChannelCounters::default(),
            global: Arc::default(),
            history: History::default(),
            clean_start,
            meta: std::sync::OnceLock::new(),
        });
        crate::stats::set_counting(broker.config.counting());
        broker.apply_vhost_limits();
        let stored_delayed =
            crate::delayed::stored_exchanges(&broker.storage).unwrap_or_else(|error| {
                tracing::error!(%error, "cannot list stored delayed messages");
                Vec::new()
            });
        for vhost in broker.vhosts() {
            broker.apply_policies(&vhost.name);
            if !broker.storage.definitions_replicated() {
                // A cluster node's delayed exchanges come back with the metadata log.
                vhost.forget_orphan_delayed(&stored_delayed);
            }
            vhost.start_all_delayed();
        }
        Ok(broker)
    }

    /// Gives a live vhost its policies as they are now, applying them to its
    /// queues and exchanges.
    pub fn apply_policies(&self, vhost: &str) {
        if let Some(v) = self.vhost(vhost) {
            v.set_policies(self.policies.for_vhost(vhost));
        }
    }

    /// Sets a policy (parsed and checked) and applies it at once; returns
    /// whether it is new.
    pub fn put_policy(
        &self,
        kind: PolicyKind,
        def: PolicyDef,
    ) -> Result<bool, crate::policy::PolicyError> {
        let vhost = def.vhost.clone();
        let new = self.policies.put(kind, def)?;
        self.apply_policies(&vhost);
        Ok(new)
    }

    /// Removes a policy and applies what is left; returns whether it existed.
    pub fn delete_policy(&self, kind: PolicyKind, vhost: &str, name: &str) -> bool {
        let removed = self.policies.delete(kind, vhost, name);
        if removed {
            self.apply_policies(vhost);
        }
        removed
    }

    /// Gives every live vhost the `max-queues` limit its record has now
    /// (after a start, a limit change or a definitions import).
    pub fn apply_vhost_limits(&self) {
        for vhost in self.vhosts.iter() {
            vhost.set_queue_limit(
                self.auth
                    .vhost_limit(&vhost.name, crate::auth::limits::MAX_QUEUES),
            );
        }
    }

    /// After the last connection closed: records which stored messages were
    /// delivered before, then marks the shutdown clean (so the next start does
    /// not treat every message as possibly delivered).
    pub fn close(&self) {
        for vhost in self.vhosts.iter() {
            for queue in vhost.queues() {
                if queue.keeps_persistent() {
                    queue.save_redelivered();
                }
            }
        }
        if let Err(error) = self.storage.mark_clean_shutdown() {
            tracing::error!(%error, "cannot mark a clean shutdown");
        }
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// Every live vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<_> = self.vhosts.iter().map(|v| v.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Makes this broker a cluster node: every vhost's definition changes go through
    /// `meta` from now on.
    pub fn set_meta(&self, meta: Arc<dyn MetaLog>) {
        for vhost in self.vhosts() {
            vhost.set_meta(meta.clone());
        }
        let _ = self.meta.set(meta);
    }

    /// Creates a vhost (record and live state) unless it exists, else updates
    /// its record; returns whether it is new.
    pub fn add_vhost(&self, def: VHostDef) -> bool {
        self.vhosts.entry(def.name.clone()).or_insert_with(|| {
            let vhost = VHost::new(&def.name, self.storage.clone());
            if let Some(meta) = self.meta.get() {
                vhost.set_meta(meta.clone());
            }
            vhost
        });
        self.storage.save_vhost(&def.name);
        self.auth.put_vhost(def)
    }

    /// Deletes a vhost: its connections are closed (320), its queues deleted
    /// (consumers told), its record and permissions removed.
    pub async fn delete_vhost(&self, name: &str) -> bool {
        match self.remove_vhost(name) {
            Some(consumers) => {
                crate::queue::notify_cancelled(&consumers).await;
                true
            }
            None => false,
        }
    }

    /// [`Broker::delete_vhost`] but for telling the consumers of its queues, which it
    /// returns (`None`: no such vhost).
    pub fn remove_vhost(&self, name: &str) -> Option<Vec<Arc<crate::queue::Consumer>>> {
        let (_, vhost) = self.vhosts.remove(name)?;
        for conn in self.connections.iter().filter(|c| c.vhost == name) {
            conn.force_close(&format!("vhost '{name}' is deleted"));
        }
        vhost.forget_all_delayed();
        let mut consumers = Vec::new();
        for queue in vhost.queues() {
            consumers.extend(vhost.remove_queue(&queue).consumers);
        }
        self.shovels.delete_vhost(name);
        // Stored deduplication ids go with their exchanges.
        for x in vhost.exchanges() {
            if let Some(dedup) = &x.dedup {
                dedup.forget_all();
            }
        }
        self.storage.forget_vhost(name);
        self.auth.delete_vhost(name);
        self.policies.delete_vhost(name);
        Some(consumers)
    }

    /// A fresh connection id (owner key of exclusive queues).
    pub fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection_id.fetch_add(1, Ordering::Relaxed))
    }
}

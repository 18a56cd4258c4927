//! The broker's side of durability: what it writes to the store
//! (`warren-storage`) and when.
//!
//! - Durable exchanges, durable non-exclusive queues and the bindings between
//!   them are written when declared and removed when deleted; the channel
//!   waits for a group commit before it answers declare-ok / bind-ok.
//! - Persistent messages routed to such queues are written by the queue
//!   (`queue/backlog/`); the publisher's confirm waits for a group commit.
//! - `records.rs`: the byte layout of every record.
//!
//! This room stores plain records and knows nothing of vhosts, exchanges or
//! queues as live objects; rebuilding them at start is `crate::recovery`.

pub mod records;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use warren_storage::{Engine, FlushHook, GroupCommit, Kind, QueueId, StorageError, Store};

use crate::auth::AuthDefinitions;
use crate::error::AmqpError;
use crate::names::Destination;
use crate::policy::StoredPolicies;
use records::{BindingRecord, ExchangeRecord, QueueRecord, resource_key};

/// The meta record written at a clean shutdown and removed at start: without it
/// the broker crashed, and every recovered message may have been delivered.
const CLEAN_SHUTDOWN: &[u8] = b"clean-shutdown";

/// The default of [`Storage::transient_window`] (the `transient_window` setting).
pub const DEFAULT_TRANSIENT_WINDOW: usize = 16_384;

/// The key of the auth record (users, vhost records, permissions as JSON).
const AUTH_KEY: &[u8] = b"definitions";
/// Policies and operator policies, beside the users (the same key space).
const POLICIES_KEY: &[u8] = b"policies";

/// The store and its group commit.
#[derive(Debug)]
pub struct Storage {
    store: Arc<dyn Store>,
    commit: GroupCommit,
    /// Definition writes so far: a channel commits only when it wrote.
    writes: AtomicU64,
    /// Memory is past the paging threshold: queues page transient messages
    /// out too (set by the alarms' check).
    memory_pressure: AtomicBool,
    /// Transient messages a queue keeps in memory before newer ones page out
    /// without memory pressure (0: only under pressure); see `queue/backlog/`.
    transient_window: AtomicUsize,
    /// Bodies a quorum queue member keeps in memory (the `quorum_window` setting).
    quorum_window: AtomicUsize,
    /// The data directory (streams keep their logs under `streams/`).
    dir: PathBuf,
    /// A cluster node: exchange, queue and binding records live in the metadata log, not
    /// here (messages still do).
    replicated_definitions: AtomicBool,
}

impl Storage {
    /// Opens the store of `engine` in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64, engine: Engine) -> Result<Arc<Self>, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Engine(format!("cannot create {}: {e}", dir.display())))?;
        let store = warren_storage::open_engine(dir, cache_bytes, engine)?;
        // Quorum queues' spill files are scratch: their bodies come back from the Raft
        // snapshots and logs (`quorum_bodies`).
        let _ = std::fs::remove_dir_all(dir.join("quorum-bodies"));
        Ok(Arc::new(Storage {
            commit: GroupCommit::start(store.clone()),
            store,
            writes: AtomicU64::new(0),
            memory_pressure: AtomicBool::new(false),
            transient_window: AtomicUsize::new(DEFAULT_TRANSIENT_WINDOW),
            quorum_window: AtomicUsize::new(DEFAULT_TRANSIENT_WINDOW),
            dir: dir.to_path_buf(),
            replicated_definitions: AtomicBool::new(false),
        }))
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Asks for everything written so far to be made durable; see [`Storage::wait`].
    pub fn request(&self) -> u64 {
        self.commit.request()
    }

    /// Waits for a [`Storage::request`]; a failed flush is 541 INTERNAL_ERROR.
    pub async fn wait(&self, generation: u64) -> Result<(), AmqpError> {
        self.commit.wait(generation).await.map_err(internal)
    }

    /// Makes everything written so far durable.
    pub async fn commit(&self) -> Result<(), AmqpError> {
        self.wait(self.request()).await
    }

    /// The directory of the stream queue whose id is `id`.
    pub fn stream_dir(&self, id: QueueId) -> PathBuf {
        self.dir.join("streams").join(id.to_string())
    }

    /// Asks for group commits without keeping the store open (what a flush
    /// hook holds).
    pub fn requester(&self) -> warren_storage::CommitRequester {
        self.commit.requester()
    }

    /// The store, shared (what a flush hook holds).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Flushes `hook` in every group commit from now on, until it is dropped.
    pub fn add_flush_hook(&self, hook: std::sync::Weak<dyn FlushHook>) {
        self.commit.add_hook(hook);
    }

    /// How many definition writes there were (compare before and after an operation).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    fn wrote(&self, result: Result<(), StorageError>) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Err(error) = result {
            // The commit that follows fails the same way and the client hears of it.
            tracing::error!(%error, "cannot write a definition");
        }
    }

    /// Whether queues should page transient messages out (memory is short).
    pub fn memory_pressure(&self) -> bool {
        self.memory_pressure.load(Ordering::Relaxed)
    }

    /// Sets [`Storage::memory_pressure`].
    pub fn set_memory_pressure(&self, on: bool) {
        self.memory_pressure.store(on, Ordering::Relaxed);
    }

    /// Transient messages a queue keeps in memory before newer ones page to
    /// disk even without memory pressure (0: only under pressure).
    pub fn transient_window(&self) -> usize {
        self.transient_window.load(Ordering::Relaxed)
    }

    /// Sets [`Storage::transient_window`] (the `transient_window` setting).
    pub fn set_transient_window(&self, messages: usize) {
        self.transient_window.store(messages, Ordering::Relaxed);
    }

    /// Sets the `quorum_window` setting.
    pub fn set_quorum_window(&self, messages: usize) {
        self.quorum_window.store(messages, Ordering::Relaxed);
    }

    /// Where quorum queue group `group`'s scratch spill files go on this member, and the
    /// `quorum_window` (bodies kept in memory per quorum queue).
    pub fn quorum_bodies_at(&self, group: u64) -> (std::path::PathBuf, usize) {
        (
            self.dir.join("quorum-bodies").join(group.to_string()),
            self.quorum_window.load(Ordering::Relaxed),
        )
    }

    /// From now on exchange, queue and binding records are not written here (a cluster
    /// node: the metadata log keeps them).
    pub fn replicate_definitions(&self) {
        self.replicated_definitions.store(true, Ordering::Relaxed);
    }

    /// A cluster node must not start on a single node's data: that node's queues and
    /// exchanges are not in the metadata log, so the cluster would not see them (and
    /// their messages would sit unreachable). Cluster nodes keep no such records here.
    pub fn refuse_single_node_definitions(&self) -> Result<(), StorageError> {
        let queues = self.store.definitions(Kind::Queue)?.len();
        let exchanges = self.store.definitions(Kind::Exchange)?.len();
        if queues + exchanges == 0 {
            return Ok(());
        }
        Err(StorageError::Refused(format!(
            "this data directory holds a single node's definitions ({queues} durable queues, \
             {exchanges} durable exchanges) that a cluster node would not see: start cluster \
             nodes on a fresh --data-dir, and move definitions with an export from the single \
             node and an import through the cluster"
        )))
    }

    /// Whether exchange, queue and binding records live in the metadata log.
    pub fn definitions_replicated(&self) -> bool {
        self.replicated_definitions.load(Ordering::Relaxed)
    }

    /// A fresh id for a queue's messages.
    pub fn new_queue_id(&self) -> Result<QueueId, AmqpError> {
        self.store.new_queue_id().map_err(internal)
    }

    /// Records a vhost.
    pub fn save_vhost(&self, name: &str) {
        self.wrote(self.store.put_definition(Kind::VHost, name.as_bytes(), b""));
    }

    /// Forgets a vhost (its queues and exchanges were deleted one by one).
    pub fn forget_vhost(&self, name: &str) {
        self.wrote(self.store.remove_definition(Kind::VHost, name.as_bytes()));
    }

    /// Records users, vhost records and permissions (after every change), and
    /// asks for a flush at once.
    pub fn save_auth(&self, defs: &AuthDefinitions) {
        match serde_json::to_vec(defs) {
            Ok(json) => {
                self.wrote(self.store.put_definition(Kind::Auth, AUTH_KEY, &json));
                self.request();
            }
            Err(error) => tracing::error!(%error, "cannot encode users and permissions"),
        }
    }

    /// The users, vhost records and permissions stored, if any.
    pub fn load_auth(&self) -> Result<Option<AuthDefinitions>, StorageError> {
        let stored = self.store.definitions(Kind::Auth)?;
        let Some((_, json)) = stored.into_iter().find(|(k, _)| k == AUTH_KEY) else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| StorageError::Engine(format!("stored users and permissions: {e}")))
    }

    /// Records every policy and operator policy (after each change), and asks
    /// for a flush at once.
    pub fn save_policies(&self, policies: &StoredPolicies) {
        match serde_json::to_vec(policies) {
            Ok(json) => {
                self.wrote(self.store.put_definition(Kind::Auth, POLICIES_KEY, &json));
                self.request();
            }
            Err(error) => tracing::error!(%error, "cannot encode policies"),
        }
    }

    /// The policies stored, if any.
    pub fn load_policies(&self) -> Result<Option<StoredPolicies>, StorageError> {
        let stored = self.store.definitions(Kind::Auth)?;
        let Some((_, json)) = stored.into_iter().find(|(k, _)| k == POLICIES_KEY) else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| StorageError::Engine(format!("stored policies: {e}")))
    }

    /// Records a durable exchange.
    pub fn save_exchange(&self, vhost: &str, name: &str, record: &ExchangeRecord) {
        if self.definitions_replicated() {
            return;
        }
        if let Some(value) = record.encode() {
            self.wrote(self.store.put_definition(
                Kind::Exchange,
                &resource_key(vhost, name),
                &value,
            ));
        }
    }

    /// Forgets an exchange and the stored bindings from or to it.
    pub fn forget_exchange(&self, vhost: &str, name: &str) {
        if self.definitions_replicated() {
            return;
        }
        self.wrote(
            self.store
                .remove_definition(Kind::Exchange, &resource_key(vhost, name)),
        );
        self.forget_bindings(|b| {
            b.vhost == vhost
                && (b.source == name || b.destination == Destination::Exchange(name.into()))
        });
    }

    /// Records a durable queue.
    pub fn save_queue(&self, vhost: &str, name: &str, record: &QueueRecord) {
        if self.definitions_replicated() {
            return;
        }
        if let Some(value) = record.encode() {
            self.wrote(
                self.store
                    .put_definition(Kind::Queue, &resource_key(vhost, name), &value),
            );
        }
    }

    /// Forgets a queue: its record, the stored bindings to it, its messages.
    pub fn forget_queue(&self, vhost: &str, name: &str, id: QueueId, durable: bool) {
        if durable && !self.definitions_replicated() {
            self.wrote(
                self.store
                    .remove_definition(Kind::Queue, &resource_key(vhost, name)),
            );
            self.forget_bindings(|b| {
                b.vhost == vhost && b.destination == Destination::Queue(name.into())
            });
        }
        if let Err(error) = self.store.drop_queue(id) {
            tracing::error!(%error, queue = name, "cannot drop a deleted queue's messages");
        }
    }

    /// Records a binding between durable things.
    pub fn save_binding(&self, binding: &BindingRecord) {
        if self.definitions_replicated() {
            return;
        }
        if let Some(key) = binding.key() {
            self.wrote(self.store.put_definition(Kind::Binding, &key, b""));
        }
    }

    /// Forgets a binding.
    pub fn forget_binding(&self, binding: &BindingRecord) {
        if self.definitions_replicated() {
            return;
        }
        if let Some(key) = binding.key() {
            self.wrote(self.store.remove_definition(Kind::Binding, &key));
        }
    }

    fn forget_bindings(&self, matches: impl Fn(&BindingRecord) -> bool) {
        let all = match self.store.definitions(Kind::Binding) {
            Ok(all) => all,
            Err(error) => {
                tracing::error!(%error, "cannot read stored bindings");
                return;
            }
        };
        for (key, _) in all {
            if BindingRecord::decode(&key).is_some_and(|b| matches(&b)) {
                self.wrote(self.store.remove_definition(Kind::Binding, &key));
            }
        }
    }

    /// Records a runtime parameter (`component`, vhost, name) as `json`, and
    /// asks for a flush at once.
    pub fn save_parameter(&self, component: &str, vhost: &str, name: &str, json: &[u8]) {
        let key = parameter_key(component, vhost, name);
        self.wrote(self.store.put_definition(Kind::Parameter, &key, json));
        self.request();
    }

    /// Forgets a runtime parameter.
    pub fn forget_parameter(&self, component: &str, vhost: &str, name: &str) {
        let key = parameter_key(component, vhost, name);
        self.wrote(self.store.remove_definition(Kind::Parameter, &key));
        self.request();
    }

    /// Every stored runtime parameter, as it was saved.
    pub fn load_parameters(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        Ok(self
            .store
            .definitions(Kind::Parameter)?
            .into_iter()
            .map(|(_, json)| json)
            .collect())
    }

    /// Whether the last run ended with a clean shutdown; forgets the marker,
    /// so that a crash of this run is seen as one.
    pub fn take_clean_shutdown(&self) -> Result<bool, StorageError> {
        let clean = self
            .store
            .definitions(Kind::Meta)?
            .iter()
            .any(|(k, _)| k == CLEAN_SHUTDOWN);
        if clean {
            self.store.remove_definition(Kind::Meta, CLEAN_SHUTDOWN)?;
            self.store.flush()?;
        }
        Ok(clean)
    }

    /// Marks a clean shutdown, after everything else was flushed.
    pub fn mark_clean_shutdown(&self) -> Result<(), StorageError> {
        self.store.flush()?;
        self.store.put_definition(Kind::Meta, CLEAN_SHUTDOWN, b"")?;
        self.store.flush()
    }
}

/// The key of a runtime parameter: component, vhost and name, NUL-separated
/// (no name holds a NUL: they come from URL paths and JSON strings checked
/// by the API).
fn parameter_key(component: &str, vhost: &str, name: &str) -> Vec<u8> {
    [component, vhost, name].join("\0").into_bytes()
}

/// 541 for a store that failed.
fn internal(error: StorageError) -> AmqpError {
    AmqpError::internal_error(format!("storage: {error}"))
}

//! Dynamic shovels, RabbitMQ's model: a `shovel` runtime parameter
//! (`PUT /api/parameters/shovel/{vhost}/{name}`) names a source and a
//! destination by AMQP URI; a worker task consumes from the source as an
//! AMQP 0-9-1 client (lapin) and republishes to the destination, acking the
//! source once the destination confirmed (`on-confirm`), reconnecting after
//! `reconnect-delay` when either side drops.
//!
//! - `params.rs`: the definition, validated as RabbitMQ does ([`ShovelDef`]).
//! - `uri.rs`: AMQP URIs with the amqps query options, and the host-less
//!   `amqp://` that means this node.
//! - `connect.rs`: opening the client connections (TCP, TLS, this node).
//! - `worker.rs`: one shovel's loop: connect, declare, move, reconnect.
//! - this file: [`Shovels`], the registry of parameters (stored durably as
//!   `warren_storage::Kind::Parameter` records) and of their workers' state.
//!
//! This room imports `durable` (the records) and `error` only; the broker
//! owns the registry, `server` starts it once the listeners are up (a
//! shovel may target this node), `mgmt` serves it.

pub mod connect;
pub mod params;
pub mod uri;
mod worker;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warren_storage::StorageError;

use crate::durable::Storage;
pub use params::{AckMode, DeleteAfter, Dest, ParamError, ShovelDef, Source};

/// The runtime-parameter component of shovels.
pub const COMPONENT: &str = "shovel";

/// How long shutdown waits for shovels to close their connections.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A shovel parameter as stored and listed: RabbitMQ's
/// `{"vhost", "component", "name", "value"}`, plus who declared it (the
/// login of a host-less URI, see `connect.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShovelParam {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The definition as given.
    pub value: Value,
    /// The user who declared it.
    pub user: String,
}

/// A shovel worker's state, as `rabbitmq_shovel_management` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connecting and declaring.
    Starting,
    /// Moving messages.
    Running,
    /// Stopped by an error (it starts again after `reconnect-delay`).
    Terminated,
}

impl State {
    /// RabbitMQ's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Terminated => "terminated",
        }
    }
}

/// What a worker reports about itself.
#[derive(Debug, Clone)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Why it terminated.
    pub reason: Option<String>,
    /// When the state last changed.
    pub since: SystemTime,
    /// The source URI connected to (redacted), once connected.
    pub src_uri: Option<String>,
    /// The destination URI connected to (redacted), once connected.
    pub dest_uri: Option<String>,
    /// Messages moved by this worker since it started.
    pub forwarded: u64,
}

impl Status {
    fn new() -> Self {
        Status {
            state: State::Starting,
            reason: None,
            since: SystemTime::now(),
            src_uri: None,
            dest_uri: None,
            forwarded: 0,
        }
    }
}

/// One shovel as `/api/shovels` lists it.
#[derive(Debug, Clone)]
pub struct ShovelStatus {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Its definition.
    pub def: Arc<ShovelDef>,
    /// Its worker's state.
    pub status: Status,
}

/// A registered shovel: its parameter, definition, and worker.
struct Entry {
    param: ShovelParam,
    def: Arc<ShovelDef>,
    status: Arc<Mutex<Status>>,
    /// Which start this is: a worker that finishes removes its parameter
    /// only if it was not replaced meanwhile.
    generation: u64,
    worker: Option<(CancellationToken, JoinHandle<()>)>,
}

struct Inner {
    shovels: BTreeMap<(String, String), Entry>,
    /// The node's AMQP listener, once up: workers run only from then on.
    local: Option<SocketAddr>,
    generation: u64,
    /// Whether this node runs the shovels: always on a single node; in a cluster only
    /// on the metadata leader, so that each shovel runs once (see `cluster/shovels.rs`).
    active: bool,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            shovels: BTreeMap::new(),
            local: None,
            generation: 0,
            active: true,
        }
    }
}

/// Called when a shovel deleted itself (`src-delete-after`), with its vhost and name: in
/// a cluster, the deletion goes through the metadata log so no other node restarts it.
pub type FinishHook = Box<dyn Fn(&str, &str) + Send + Sync>;

/// The registry of shovel parameters and their workers.
pub struct Shovels {
    inner: Mutex<Inner>,
    storage: Arc<Storage>,
    secret: String,
    me: Weak<Shovels>,
    on_finished: std::sync::OnceLock<FinishHook>,
}

impl std::fmt::Debug for Shovels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shovels").finish_non_exhaustive()
    }
}

impl Shovels {
    /// The registry with the parameters `storage` holds (not started yet);
    /// `secret` is the internal login for this node (see `connect.rs`).
    pub fn open(storage: Arc<Storage>, secret: String) -> Result<Arc<Self>, StorageError> {
        let stored = storage.load_parameters()?;
        let shovels = Arc::new_cyclic(|me| Shovels {
            inner: Mutex::new(Inner::default()),
            storage,
            secret,
            me: me.clone(),
            on_finished: std::sync::OnceLock::new(),
        });
        for json in stored {
            let param: ShovelParam = match serde_json::from_slice(&json) {
                Ok(param) => param,
                Err(error) => {
                    tracing::error!(%error, "a stored runtime parameter is unreadable; skipped");
                    continue;
                }
            };
            match ShovelDef::parse(&param.name, &param.value) {
                Ok(def) => shovels.register(param, def),
                Err(error) => {
                    tracing::error!(vhost = %param.vhost, name = %param.name, %error, "a stored shovel is invalid; skipped");
                }
            }
        }
        Ok(shovels)
    }

    /// Validates the shovel `name` of `vhost` as [`Shovels::put`] will.
    pub fn check(vhost: &str, name: &str, value: &Value) -> Result<ShovelDef, ParamError> {
        if name.is_empty() || name.contains('\0') || vhost.contains('\0') {
            return Err(ParamError("a shovel needs a name without NUL".into()));
        }
        ShovelDef::parse(name, value)
    }

    /// Validates and stores the shovel `name` of `vhost`, replacing (and
    /// restarting) one of that name; returns whether it is new.
    pub fn put(
        &self,
        vhost: &str,
        name: &str,
        value: Value,
        user: &str,
    ) -> Result<bool, ParamError> {
        let def = Self::check(vhost, name, &value)?;
        let param = ShovelParam {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            value,
            user: user.to_owned(),
        };
        // The same definition again (a re-import): nothing to restart.
        if self
            .inner
            .lock()
            .shovels
            .get(&key(vhost, name))
            .is_some_and(|e| e.param == param)
        {
            return Ok(false);
        }
        match serde_json::to_vec(&param) {
            Ok(json) => self.storage.save_parameter(COMPONENT, vhost, name, &json),
            Err(error) => return Err(ParamError(format!("cannot encode the shovel: {error}"))),
        }
        let old = self.inner.lock().shovels.remove(&key(vhost, name));
        let existed = old.is_some();
        if let Some(old) = old {
            stop(old);
        }
        self.register(param, def);
        Ok(!existed)
    }

    /// Stops and forgets the shovel `name` of `vhost`; false if there is none.
    pub fn delete(&self, vhost: &str, name: &str) -> bool {
        let Some(entry) = self.inner.lock().shovels.remove(&key(vhost, name)) else {
            return false;
        };
        self.storage.forget_parameter(COMPONENT, vhost, name);
        stop(entry);
        true
    }

    /// Stops and forgets every shovel of `vhost` (the vhost is deleted).
    pub fn delete_vhost(&self, vhost: &str) {
        let names: Vec<String> = self
            .inner
            .lock()
            .shovels
            .keys()
            .filter(|(v, _)| v == vhost)
            .map(|(_, n)| n.clone())
            .collect();
        for name in names {
            self.delete(vhost, &name);
        }
    }

    /// Restarts the worker of a shovel; false if there is none.
    pub fn restart(&self, vhost: &str, name: &str) -> bool {
        let mut inner = self.inner.lock();
        let local = inner.local;
        let active = inner.active;
        inner.generation += 1;
        let generation = inner.generation;
        let Some(entry) = inner.shovels.get_mut(&key(vhost, name)) else {
            return false;
        };
        if let Some((cancel, _)) = entry.worker.take() {
            cancel.cancel();
        }
        entry.generation = generation;
        *entry.status.lock() = Status::new();
        if let Some(local) = local.filter(|_| active) {
            entry.worker = Some(self.spawn(entry, local));
        }
        true
    }

    /// Every shovel parameter, by vhost and name.
    pub fn params(&self) -> Vec<ShovelParam> {
        let inner = self.inner.lock();
        inner.shovels.values().map(|e| e.param.clone()).collect()
    }

    /// Every shovel's state, by vhost and name (none where this node does not run them).
    pub fn statuses(&self) -> Vec<ShovelStatus> {
        let inner = self.inner.lock();
        if !inner.active {
            return Vec::new();
        }
        inner
            .shovels
            .values()
            .map(|e| ShovelStatus {
                vhost: e.param.vhost.clone(),
                name: e.param.name.clone(),
                def: e.def.clone(),
                status: e.status.lock().clone(),
            })
            .collect()
    }

    /// Starts every shovel once the node's AMQP listener is up at `local`
    /// (later ones start as they are declared).
    pub fn start(&self, local: SocketAddr) {
        let mut inner = self.inner.lock();
        inner.local = Some(local);
        if !inner.active {
            return;
        }
        for entry in inner.shovels.values_mut() {
            if entry.worker.is_none() {
                entry.worker = Some(self.spawn(entry, local));
            }
        }
    }

    /// Whether this node runs the shovels (a cluster's metadata leader does): turned on,
    /// every shovel starts (once the listener is up); turned off, every worker stops and
    /// what it held unacked goes back to its source.
    pub fn set_active(&self, active: bool) {
        let mut inner = self.inner.lock();
        if inner.active == active {
            return;
        }
        inner.active = active;
        let local = inner.local;
        for entry in inner.shovels.values_mut() {
            if let Some((cancel, _)) = entry.worker.take() {
                cancel.cancel();
            }
            *entry.status.lock() = Status::new();
            if let Some(local) = local.filter(|_| active) {
                entry.worker = Some(self.spawn(entry, local));
            }
        }
        tracing::info!(
            active,
            "shovels {}",
            if active {
                "run on this node"
            } else {
                "stopped on this node"
            }
        );
    }

    /// Sets what happens when a shovel deleted itself (once, at start).
    pub fn on_finished(&self, hook: FinishHook) {
        let _ = self.on_finished.set(hook);
    }

    /// Stops every worker (the node shuts down) and waits a little for them
    /// to close their connections, so unacked messages go back to their
    /// source at once.
    pub async fn stop_all(&self) {
        let workers: Vec<_> = {
            let mut inner = self.inner.lock();
            inner.local = None;
            inner
                .shovels
                .values_mut()
                .filter_map(|e| e.worker.take())
                .collect()
        };
        for (cancel, _) in &workers {
            cancel.cancel();
        }
        let all = futures_util::future::join_all(workers.into_iter().map(|(_, task)| task));
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            tracing::warn!("some shovels did not stop in time");
        }
    }

    /// Adds a validated shovel and starts it if the node is up.
    fn register(&self, param: ShovelParam, def: ShovelDef) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        let mut entry = Entry {
            def: Arc::new(def),
            status: Arc::new(Mutex::new(Status::new())),
            generation: inner.generation,
            worker: None,
            param,
        };
        if let Some(local) = inner.local.filter(|_| inner.active) {
            entry.worker = Some(self.spawn(&entry, local));
        }
        let k = key(&entry.param.vhost, &entry.param.name);
        inner.shovels.insert(k, entry);
    }

    fn spawn(&self, entry: &Entry, local: SocketAddr) -> (CancellationToken, JoinHandle<()>) {
        let cancel = CancellationToken::new();
        let job = worker::Job {
            vhost: entry.param.vhost.clone(),
            name: entry.param.name.clone(),
            user: entry.param.user.clone(),
            def: entry.def.clone(),
            status: entry.status.clone(),
            local: connect::LocalNode {
                addr: local,
                secret: self.secret.clone(),
            },
            generation: entry.generation,
            registry: self.me.clone(),
            cancel: cancel.clone(),
        };
        (cancel, tokio::spawn(worker::run(job)))
    }

    /// A worker moved its `src-delete-after` count: the shovel deletes
    /// itself, as RabbitMQ's does (unless it was replaced meanwhile).
    fn finished(&self, vhost: &str, name: &str, generation: u64) {
        let mut inner = self.inner.lock();
        let k = key(vhost, name);
        if inner
            .shovels
            .get(&k)
            .is_some_and(|e| e.generation == generation)
        {
            inner.shovels.remove(&k);
            drop(inner);
            self.storage.forget_parameter(COMPONENT, vhost, name);
            tracing::info!(
                vhost,
                name,
                "shovel finished its src-delete-after count; deleted"
            );
            if let Some(hook) = self.on_finished.get() {
                hook(vhost, name);
            }
        }
    }
}

fn key(vhost: &str, name: &str) -> (String, String) {
    (vhost.to_owned(), name.to_owned())
}

/// Tells an entry's worker to stop (it closes its connections itself).
fn stop(entry: Entry) {
    if let Some((cancel, _)) = entry.worker {
        cancel.cancel();
    }
}

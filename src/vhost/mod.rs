//! A vhost: its exchanges, queues and bindings, RabbitMQ's rules for declaring and
//! deleting them, and routing.
//!
//! The registries are `DashMap`s, so the publish path takes no global lock: it
//! reads one exchange's bindings under that exchange's short read lock.

pub use crate::equivalence;
mod bindings;
mod bound;
mod delayed;
pub mod exchanges;
pub mod explain;
mod inspect;
mod members;
mod policies;
pub mod publish;
mod remote;
pub mod replicated;
pub mod replies;
mod restore;

pub use remote::RemoteQueue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::RwLock;
use warren_codec::types::FieldTable;

use crate::durable::Storage;
use crate::durable::records::QueueRecord;
use crate::error::AmqpError;
use crate::queue::{Consumer, Queue, QueueArgs, QueueHost, QueueSpec, QueueType, args};
pub use exchanges::{Bound, Destination, ExchangeEntry, ExchangeSpec};
use warren_storage::QueueId;

pub use crate::names::resource;
use crate::names::{ConnectionId, ExchangeName, QueueName, VHostName};
use crate::policy::VHostPolicies;

/// A queue.declare request.
#[derive(Debug, Clone)]
pub struct QueueDeclare {
    /// The queue name (already expanded if the client left it empty).
    pub name: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Durable.
    pub durable: bool,
    /// Exclusive to the declaring connection.
    pub exclusive: bool,
    /// Auto-delete.
    pub auto_delete: bool,
    /// Declare arguments.
    pub arguments: FieldTable,
    /// The broker chose the name (`amq.gen-...`), so the reserved prefix is fine.
    pub server_named: bool,
    /// In a cluster, a quorum queue's placement: this node runs it as a member.
    pub quorum: Option<crate::queue::quorum::live::Placement>,
}

/// What deleting a queue left to do: tell its consumers.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Ready messages the queue had.
    pub message_count: u32,
    /// Consumers that were attached.
    pub consumers: Vec<Arc<Consumer>>,
}

/// A vhost's registry by name, looked up on every publish. Foldhash, seeded
/// at random per map (clients choose the names): SipHash was 3% of a
/// delivery's instructions.
type Names<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// One virtual host.
#[derive(Debug)]
pub struct VHost {
    /// Its name.
    pub name: VHostName,
    exchanges: Names<ExchangeName, Arc<ExchangeEntry>>,
    queues: Names<QueueName, Arc<Queue>>,
    /// In a cluster: the queues living on other nodes (`remote.rs`).
    remote: Names<QueueName, Arc<RemoteQueue>>,
    /// This node's handles of remote queues its channels consume from (`remote.rs`).
    proxies: Names<QueueName, Arc<Queue>>,
    /// In a cluster: the metadata log definition changes go through (`replicated.rs`).
    meta: std::sync::OnceLock<Arc<dyn crate::meta::MetaLog>>,
    /// Live direct reply-to consumers by address.
    pub replies: replies::Registry,
    /// Where its durable things are written.
    pub storage: Arc<Storage>,
    /// The `max-queues` limit in force (`u64::MAX`: none), set by the broker
    /// from the vhost's limits.
    queue_limit: AtomicU64,
    /// Queues in `queues` plus those being created: what `max-queues` counts.
    queue_count: AtomicU64,
    /// This vhost's policies, set by the broker (see `policies.rs`).
    policies: RwLock<Arc<VHostPolicies>>,
    /// Deleted delayed exchanges whose waiting messages are still being
    /// removed (in the background; see `delayed.rs`).
    delayed_clearing: Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
    /// The default exchange (also in `exchanges` under ""), at hand for the
    /// counters of every publish to it.
    default_exchange: Arc<ExchangeEntry>,
    /// Queues declared, created and deleted (`/metrics` churn counters).
    pub queue_churn: crate::stats::QueueChurn,
}

impl VHost {
    /// A vhost with the default and `amq.*` exchanges.
    pub fn new(name: &str, storage: Arc<Storage>) -> Arc<Self> {
        let exchanges = Names::default();
        let mut default_exchange = None;
        for (x, spec) in exchanges::predeclared() {
            let entry = ExchangeEntry::new(x, spec);
            if x.is_empty() {
                default_exchange = Some(entry.clone());
            }
            exchanges.insert(x.into(), entry);
        }
        // `predeclared` always has "": this fallback only keeps the type total.
        let default_exchange = default_exchange.unwrap_or_else(|| {
            let (name, spec) = exchanges::predeclared().swap_remove(0);
            ExchangeEntry::new(name, spec)
        });
        Arc::new(VHost {
            name: name.into(),
            exchanges,
            queues: Names::default(),
            remote: Names::default(),
            proxies: Names::default(),
            meta: std::sync::OnceLock::new(),
            replies: replies::Registry::default(),
            storage,
            queue_limit: AtomicU64::new(u64::MAX),
            queue_count: AtomicU64::new(0),
            policies: RwLock::default(),
            delayed_clearing: Arc::default(),
            default_exchange,
            queue_churn: Default::default(),
        })
    }

    /// Sets the `max-queues` limit in force (none: no limit; 0: no new queue).
    pub fn set_queue_limit(&self, limit: Option<u64>) {
        self.queue_limit
            .store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The `max-queues` limit in force.
    pub fn queue_limit(&self) -> Option<u64> {
        Some(self.queue_limit.load(Ordering::Relaxed)).filter(|l| *l != u64::MAX)
    }

    /// An exchange by name.
    pub fn exchange(&self, name: &str) -> Option<Arc<ExchangeEntry>> {
        self.exchanges.get(name).map(|x| x.clone())
    }

    /// A queue by name.
    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.get(name).map(|q| q.clone())
    }

    /// 404 for a missing exchange.
    pub fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no {}", resource("exchange", name, &self.name)))
    }

    /// 404 for a missing queue.
    pub fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no {}", resource("queue", name, &self.name)))
    }

    /// An existing exchange or 404.
    pub fn exchange_or_404(&self, name: &str) -> Result<Arc<ExchangeEntry>, AmqpError> {
        self.exchange(name).ok_or_else(|| self.no_exchange(name))
    }

    /// An existing queue (usable by `connection`) or 404 / 405.
    pub fn queue_for(&self, name: &str, connection: ConnectionId) -> Result<Arc<Queue>, AmqpError> {
        let queue = self
            .queue(name)
            .ok_or_else(|| match self.remote_queue(name) {
                Some(remote) => self.elsewhere(&remote, "consuming, getting or purging"),
                None => self.no_queue(name),
            })?;
        queue.check_exclusive(connection)?;
        Ok(queue)
    }

    /// exchange.declare.
    #[allow(clippy::too_many_arguments)]
    pub fn declare_exchange(
        self: &Arc<Self>,
        name: &str,
        type_name: &str,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        if passive {
            exchanges::check_not_default(name)?;
            return self.exchange_or_404(name).map(|_| ());
        }
        let (kind, delayed) = exchanges::parse_type(type_name, arguments)?;
        exchanges::check_not_default(name)?;
        exchanges::check_kind_arguments(kind, arguments)?;
        let wanted = ExchangeSpec {
            kind,
            durable,
            auto_delete,
            internal,
            arguments: arguments.clone(),
            delayed,
        };
        let existing = match self.exchanges.entry(name.into()) {
            Entry::Occupied(x) => x.get().clone(),
            Entry::Vacant(slot) => {
                check_reserved("exchange", name)?;
                exchanges::check_alternate_exchange_arg(arguments, name, &self.name)?;
                let dedup = exchanges::dedup_args(kind, arguments)?;
                if wanted.durable {
                    self.storage
                        .save_exchange(&self.name, name, &wanted.record());
                }
                let dedup = dedup.map(|args| self.exchange_dedup(args, name, wanted.durable));
                let x = self.new_exchange(name, wanted, true, dedup)?;
                self.apply_exchange_policy(&x);
                slot.insert(x.clone());
                self.start_delayed(&x);
                return Ok(());
            }
        };
        existing.assert_equivalent(&wanted, &self.name)
    }

    /// exchange.delete. Deleting a missing exchange is fine, as in RabbitMQ.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        exchanges::check_not_default(name)?;
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system {} not allowed",
                resource("exchange", name, &self.name)
            )));
        }
        let Some(x) = self.exchange(name) else {
            return Ok(());
        };
        if if_unused && !x.routes.read().is_empty() {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                resource("exchange", name, &self.name)
            )));
        }
        // Only the exchange looked at: not one redeclared under its name since.
        if self
            .exchanges
            .remove_if(name, |_, now| Arc::ptr_eq(now, &x))
            .is_some()
        {
            if x.spec.durable {
                self.storage.forget_exchange(&self.name, name);
            }
            self.forget_delayed(&x);
            if let Some(dedup) = &x.dedup {
                dedup.forget_all();
            }
            self.remove_bindings_to(&Destination::Exchange(name.into()));
        }
        Ok(())
    }

    /// queue.declare for `connection`. Returns the queue and whether it is new.
    pub fn declare_queue(
        self: &Arc<Self>,
        req: &QueueDeclare,
        connection: ConnectionId,
    ) -> Result<(Arc<Queue>, bool), AmqpError> {
        self.declare_queue_with_id(req, connection, None)
    }

    /// queue.declare with the store id a new queue gets (`None`: a fresh one).
    fn declare_queue_with_id(
        self: &Arc<Self>,
        req: &QueueDeclare,
        connection: ConnectionId,
        id: Option<QueueId>,
    ) -> Result<(Arc<Queue>, bool), AmqpError> {
        self.queue_churn.declared.incr_concurrent();
        let describe = resource("queue", &req.name, &self.name);
        if req.passive {
            let queue = self.queue_for(&req.name, connection)?;
            queue.touch();
            return Ok((queue, false));
        }
        let existing = match self.queues.entry(req.name.as_str().into()) {
            Entry::Occupied(q) => q.get().clone(),
            Entry::Vacant(slot) => {
                if !req.server_named {
                    check_reserved("queue", &req.name)?;
                }
                // Only a new queue is refused, as RabbitMQ enforces max-queues.
                self.reserve_queue_slot(&req.name)?;
                let queue = match self.create_queue(req, connection, &describe, id) {
                    Ok(queue) => queue,
                    Err(error) => {
                        self.queue_count.fetch_sub(1, Ordering::AcqRel);
                        return Err(error);
                    }
                };
                slot.insert(queue.clone());
                self.queue_churn.created.incr_concurrent();
                return Ok((queue, true));
            }
        };
        // A different exclusive flag is 405 even for the owner, as in RabbitMQ.
        existing.check_exclusive_strict(req.exclusive.then_some(connection))?;
        let spec = &existing.spec;
        for (arg, now, wanted) in [
            ("durable", spec.durable, req.durable),
            ("auto_delete", spec.auto_delete, req.auto_delete),
        ] {
            if now != wanted {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for {describe}: received '{wanted}' but current is '{now}'"
                )));
            }
        }
        args::assert_equivalent(&spec.arguments, &req.arguments, &describe)?;
        existing.touch();
        Ok((existing, false))
    }

    /// Counts a new queue in, or refuses it when the vhost's `max-queues` is
    /// reached. The count is an atomic taken before the queue is visible, so
    /// concurrent declares of different names cannot both take the last slot.
    fn reserve_queue_slot(&self, name: &str) -> Result<(), AmqpError> {
        let before = self.queue_count.fetch_add(1, Ordering::AcqRel);
        match self.queue_limit() {
            Some(limit) if before >= limit => {
                self.queue_count.fetch_sub(1, Ordering::AcqRel);
                Err(AmqpError::precondition_failed(format!(
                    "cannot declare queue '{name}': queue limit in vhost '{}' ({limit}) is reached",
                    self.name
                )))
            }
            _ => Ok(()),
        }
    }

    /// A new queue for a declare: arguments checked, id taken, record stored.
    fn create_queue(
        self: &Arc<Self>,
        req: &QueueDeclare,
        connection: ConnectionId,
        describe: &str,
        id: Option<QueueId>,
    ) -> Result<Arc<Queue>, AmqpError> {
        let spec = QueueSpec {
            durable: req.durable,
            exclusive_owner: req.exclusive.then_some(connection),
            auto_delete: req.auto_delete,
            args: self.validate_new_queue(req, describe)?,
            arguments: req.arguments.clone(),
        };
        let id = match id {
            Some(id) => id,
            None => self.storage.new_queue_id()?,
        };
        let record = QueueRecord {
            id,
            auto_delete: spec.auto_delete,
            arguments: spec.arguments.clone(),
        };
        let queue = match &req.quorum {
            Some(placement) => self.new_quorum_queue(&req.name, spec, id, placement)?,
            None => self.new_queue(&req.name, spec, id)?,
        };
        if queue.keeps_persistent() {
            self.storage.save_queue(&self.name, &req.name, &record);
        }
        Ok(queue)
    }

    /// The checks of a new queue's declare past its name and the vhost's limit: the
    /// arguments, a stream's properties. Every node of a cluster runs them alike.
    fn validate_new_queue(
        &self,
        req: &QueueDeclare,
        describe: &str,
    ) -> Result<QueueArgs, AmqpError> {
        let args = QueueArgs::parse(&req.arguments, describe)?;
        if args.queue_type == QueueType::Stream {
            stream_properties(req, describe)?;
        }
        if args.queue_type == QueueType::Quorum && self.meta().is_some() {
            // A replicated queue: RabbitMQ's checks, in its order.
            for (bad, property) in [
                (req.auto_delete, "auto-delete"),
                (req.exclusive, "exclusive-owner"),
                (!req.durable, "non-durable"),
            ] {
                if bad {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid property '{property}' for {describe}"
                    )));
                }
            }
        } else if args.queue_type == QueueType::Quorum {
            // Applications that declare quorum queues keep running, but
            // nothing is replicated: say so where operators look.
            tracing::warn!(
                queue = %req.name,
                vhost = %self.name,
                "x-queue-type 'quorum' declared: Warren has no replicated queues yet; this is a durable single-node classic queue"
            );
        }
        Ok(args)
    }

    /// A queue living in this vhost (its host for dead-lettering and expiry).
    fn new_queue(
        self: &Arc<Self>,
        name: &str,
        spec: QueueSpec,
        id: QueueId,
    ) -> Result<Arc<Queue>, AmqpError> {
        let host: Weak<dyn QueueHost> = Arc::downgrade(self) as Weak<VHost>;
        let queue = Queue::new(
            name.into(),
            self.name.clone(),
            host,
            self.storage.clone(),
            spec,
            id,
        )?;
        self.apply_queue_policy(&queue);
        Ok(queue)
    }

    /// A quorum queue this node is a member of: its engine, and its Raft group started
    /// through the cluster.
    fn new_quorum_queue(
        self: &Arc<Self>,
        name: &str,
        spec: QueueSpec,
        id: QueueId,
        placement: &crate::queue::quorum::live::Placement,
    ) -> Result<Arc<Queue>, AmqpError> {
        let Some(meta) = self.meta() else {
            return self.new_queue(name, spec, id);
        };
        let quorum = crate::queue::quorum::live::QuorumQueue::new(
            id,
            placement.clone(),
            meta.node(),
            meta.run(),
            meta.quorum_log(),
            crate::queue::quorum::fifo_config(&spec.args),
            {
                let (dir, messages) = self.storage.quorum_bodies_at(id);
                let window = crate::queue::quorum::bodies::Window {
                    messages,
                    ..Default::default()
                };
                crate::queue::quorum::bodies::Bodies::paged(dir, window)
            },
        );
        let host: Weak<dyn QueueHost> = Arc::downgrade(self) as Weak<VHost>;
        let queue =
            Queue::quorum_backed(name.into(), self.name.clone(), host, spec, quorum.clone());
        meta.host_quorum(quorum);
        self.apply_queue_policy(&queue);
        Ok(queue)
    }

    /// queue.delete. A missing queue deletes nothing (count 0), as in RabbitMQ.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: ConnectionId,
    ) -> Result<Deleted, AmqpError> {
        let Some(queue) = self.queue(name) else {
            return Ok(Deleted::default());
        };
        queue.check_exclusive(connection)?;
        queue.check_deletable(if_unused, if_empty)?;
        Ok(self.remove_queue(&queue))
    }

    /// Removes a queue from the vhost with its bindings (deletion, auto-delete,
    /// exclusive owner gone).
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> Deleted {
        // Before it leaves the table: no binding's handle reaches it after.
        queue.unlist();
        if self
            .queues
            .remove_if(&queue.name, |_, q| Arc::ptr_eq(q, queue))
            .is_some()
        {
            self.queue_count.fetch_sub(1, Ordering::AcqRel);
            self.queue_churn.deleted.incr_concurrent();
        }
        self.remove_bindings_to(&Destination::Queue(queue.name.clone()));
        let (message_count, consumers) = queue.delete();
        self.storage.forget_queue(
            &self.name,
            &queue.name,
            queue.store_id,
            queue.keeps_persistent(),
        );
        Deleted {
            message_count,
            consumers,
        }
    }

    /// Queues owned (exclusive) by a connection.
    pub fn exclusive_queues_of(&self, connection: ConnectionId) -> Vec<Arc<Queue>> {
        self.queues
            .iter()
            .filter(|q| q.spec.exclusive_owner == Some(connection))
            .map(|q| q.clone())
            .collect()
    }
}

/// A stream is durable, shared and named by its client: RabbitMQ's 406s, one
/// property reported, auto-delete before exclusive before non-durable.
fn stream_properties(req: &QueueDeclare, describe: &str) -> Result<(), AmqpError> {
    if req.server_named {
        return Err(AmqpError::precondition_failed(
            "Cannot declare a server-named queue for type rabbit_stream_queue",
        ));
    }
    let refused = if req.auto_delete {
        "auto-delete"
    } else if req.exclusive {
        "exclusive-owner"
    } else if !req.durable {
        "non-durable"
    } else {
        return Ok(());
    };
    Err(AmqpError::precondition_failed(format!(
        "invalid property '{refused}' for {describe}"
    )))
}

/// 403 for a new exchange or queue whose name starts with `amq.`.
fn check_reserved(kind: &str, name: &str) -> Result<(), AmqpError> {
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "{kind} name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    Ok(())
}

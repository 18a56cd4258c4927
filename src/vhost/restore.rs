//! Recovery's side of a vhost: putting back the exchanges, queues and bindings
//! read from the store at start, without writing them again.

use std::sync::Arc;

use super::{Bound, Destination, ExchangeSpec, VHost, resource};
use crate::dedup::{DedupArgs, ExchangeDedup, StoredEntry};
use crate::durable::records::{BindingRecord, QueueRecord};
use crate::queue::{QueueArgs, QueueSpec};

impl VHost {
    /// Puts back a binding read from the store at start (both ends exist).
    pub fn restore_binding(&self, record: BindingRecord) {
        let Some(x) = self.exchange(&record.source) else {
            return;
        };
        let bound = match &record.destination {
            Destination::Queue(q) => self.queue(q).map(|q| Bound::to_queue(&q)),
            Destination::Exchange(d) => self
                .exchange(d)
                .map(|_| Bound::named(record.destination.clone())),
        };
        let Some(bound) = bound else {
            self.storage.forget_binding(&record);
            return;
        };
        let _ = x
            .routes
            .write()
            .bind(bound, &record.routing_key, &record.arguments);
    }

    /// Puts back an exchange read from the store at start.
    pub fn restore_exchange(self: &Arc<Self>, name: &str, spec: ExchangeSpec) {
        let dedup = match super::exchanges::dedup_args(spec.kind, &spec.arguments) {
            Ok(args) => args.map(|args| self.exchange_dedup(args, name, spec.durable)),
            Err(error) => {
                tracing::error!(%error, exchange = name, "stored exchange has invalid deduplication arguments");
                None
            }
        };
        let x = match self.new_exchange(name, spec, false, dedup) {
            Ok(x) => x,
            Err(error) => {
                tracing::error!(%error, exchange = name, "cannot restore a delayed exchange");
                return;
            }
        };
        self.apply_exchange_policy(&x);
        self.exchanges.insert(name.into(), x);
    }

    /// Puts back a durable queue read from the store at start, with its messages.
    pub fn restore_queue(self: &Arc<Self>, name: &str, record: QueueRecord, clean: bool) {
        let describe = resource("queue", name, &self.name);
        let args = match QueueArgs::parse(&record.arguments, &describe) {
            Ok(args) => args,
            Err(error) => {
                tracing::error!(%error, queue = name, "stored queue has invalid arguments");
                return;
            }
        };
        let spec = QueueSpec {
            durable: true,
            exclusive_owner: None,
            auto_delete: record.auto_delete,
            args,
            arguments: record.arguments,
        };
        let queue = match self.new_queue(name, spec, record.id) {
            Ok(queue) => queue,
            Err(error) => {
                tracing::error!(%error, queue = name, "cannot recover a queue");
                return;
            }
        };
        queue.recover(clean);
        // A queue it replaces keeps no binding's handle valid.
        if let Some(old) = self.queues.get(name) {
            old.unlist();
        }
        if self.queues.insert(name.into(), queue).is_none() {
            self.queue_count
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// A deduplication cache for the exchange `name`, kept in the store if
    /// the exchange is durable.
    pub(super) fn exchange_dedup(
        &self,
        args: DedupArgs,
        name: &str,
        durable: bool,
    ) -> Arc<ExchangeDedup> {
        let storage = durable.then(|| self.storage.clone());
        ExchangeDedup::new(args, &self.name, name, storage)
    }

    /// Puts back a deduplication id read from the store at start (oldest
    /// first); false if its exchange is gone or no longer deduplicates (the
    /// caller removes the record).
    pub fn restore_dedup_entry(&self, entry: StoredEntry, now_ms: u64) -> bool {
        match self.exchange(&entry.exchange).and_then(|x| x.dedup.clone()) {
            Some(dedup) => {
                dedup.restore(entry, now_ms);
                true
            }
            None => false,
        }
    }
}

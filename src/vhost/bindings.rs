//! Bindings of a vhost: exchange.bind / queue.bind and their unbinds with RabbitMQ's
//! rules, and what a removed destination takes with it (its bindings, then the
//! auto-delete exchanges left without one).

use warren_codec::types::FieldTable;

use super::{Bound, Destination, ExchangeEntry, VHost, exchanges};
use crate::durable::records::BindingRecord;
use crate::error::AmqpError;
use crate::names::ConnectionId;

impl VHost {
    /// exchange.bind / queue.bind.
    pub fn bind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<(), AmqpError> {
        check_not_default(source, &destination)?;
        // As RabbitMQ: the source is looked up first, so it is the one named
        // when both ends are missing; exclusivity is checked last.
        let x = self.exchange_or_404(source)?;
        let (durable_destination, bound) = match &destination {
            // A queue on another node: its exclusivity was checked by the caller.
            Destination::Queue(q) => match self.remote_queue(q) {
                Some(remote) => (remote.durable, Bound::named(destination.clone())),
                None => {
                    let queue = self.queue_for(q, connection)?;
                    (queue.keeps_persistent(), Bound::to_queue(&queue))
                }
            },
            Destination::Exchange(d) => (
                self.exchange_or_404(d)?.spec.durable,
                Bound::named(destination.clone()),
            ),
        };
        let record = (x.spec.durable && durable_destination).then(|| BindingRecord {
            vhost: self.name.to_string(),
            source: source.to_owned(),
            destination,
            routing_key: routing_key.to_owned(),
            arguments: arguments.clone(),
        });
        let added = x
            .routes
            .write()
            .bind(bound, routing_key, arguments)
            .map_err(|e| AmqpError::precondition_failed(e.to_string()))?;
        if let Some(record) = record
            && added
        {
            self.storage.save_binding(&record);
        }
        Ok(())
    }

    /// exchange.unbind / queue.unbind. Idempotent, as in RabbitMQ since 3.2: a
    /// binding that does not exist, even for want of its source or destination,
    /// is fine. Only a binding that exists checks the queue's exclusivity.
    pub fn unbind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<(), AmqpError> {
        check_not_default(source, &destination)?;
        let Some(x) = self.exchange(source) else {
            return Ok(());
        };
        if let Destination::Queue(q) = &destination
            && let Some(queue) = self.queue(q)
            && let Err(locked) = queue.check_exclusive(connection)
        {
            return refused_if_bound(&x, &destination, routing_key, arguments, locked);
        }
        if x.spec.durable {
            // Forgetting a binding that was never stored is harmless.
            self.storage.forget_binding(&BindingRecord {
                vhost: self.name.to_string(),
                source: source.to_owned(),
                destination: destination.clone(),
                routing_key: routing_key.to_owned(),
                arguments: arguments.clone(),
            });
        }
        let now_empty = {
            let mut routes = x.routes.write();
            routes.unbind(&Bound::named(destination), routing_key, arguments) && routes.is_empty()
        };
        if now_empty && x.spec.auto_delete {
            self.auto_delete_exchange(&x.name);
        }
        Ok(())
    }

    /// Removes every binding leading to `destination`, then auto-deletes source
    /// exchanges left without bindings.
    pub(super) fn remove_bindings_to(&self, destination: &Destination) {
        let destination = &Bound::named(destination.clone());
        let mut emptied = Vec::new();
        for x in self.exchanges.iter() {
            let mut routes = x.routes.write();
            if routes.remove_destination(destination) > 0 && routes.is_empty() && x.spec.auto_delete
            {
                emptied.push(x.name.clone());
            }
        }
        for name in emptied {
            self.auto_delete_exchange(&name);
        }
    }

    pub(super) fn auto_delete_exchange(&self, name: &str) {
        let removed = self.exchanges.remove_if(name, |_, x| {
            x.spec.auto_delete && x.routes.read().is_empty()
        });
        if let Some((_, x)) = &removed {
            if x.spec.durable {
                self.storage.forget_exchange(&self.name, name);
            }
            self.forget_delayed(x);
        }
        if let Some(dedup) = removed.as_ref().and_then(|(_, x)| x.dedup.as_ref()) {
            dedup.forget_all();
        }
        if removed.is_some() {
            self.remove_bindings_to(&Destination::Exchange(name.into()));
        }
    }
}

/// An unbind from a queue the requester may not use: refused with `locked` only if the
/// binding exists (else there is nothing to do), as RabbitMQ does.
pub(super) fn refused_if_bound(
    x: &ExchangeEntry,
    destination: &Destination,
    routing_key: &str,
    arguments: &FieldTable,
    locked: AmqpError,
) -> Result<(), AmqpError> {
    let bound = x
        .routes
        .read()
        .bindings()
        .any(|(d, k, a)| **d == *destination && k == routing_key && a == arguments);
    if bound { Err(locked) } else { Ok(()) }
}

/// 403 when either end of a binding is the default exchange (destination first,
/// as RabbitMQ checks them).
pub(super) fn check_not_default(source: &str, destination: &Destination) -> Result<(), AmqpError> {
    if let Destination::Exchange(d) = destination {
        exchanges::check_not_default(d)?;
    }
    exchanges::check_not_default(source)
}

//! Permission checks on AMQP operations, where and in the order RabbitMQ's
//! `rabbit_channel` makes them (`check_configure_permitted`,
//! `check_write_permitted`, `check_read_permitted`), with its reply text:
//! `ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'bob'`.
//!
//! A permission is a regular expression matched (unanchored, as Erlang's
//! `re:run`) against the resource name; the empty pattern matches nothing but
//! the empty name, as RabbitMQ reads it as `^$`.

use std::sync::Arc;

use warren_codec::types::{AMQPValue, FieldTable};

use super::pattern::Compiled;
pub use super::pattern::Permission;
use super::registry::Registry;
use crate::error::AmqpError;
use crate::names::resource;

/// What a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An exchange (the default exchange is `amq.default`).
    Exchange,
    /// A queue.
    Queue,
}

impl Registry {
    /// A permission checker for `user` in `vhost`.
    pub fn access(self: &Arc<Self>, user: &str, vhost: &str) -> UserAccess {
        UserAccess::new(self.clone(), user, vhost)
    }
}

/// One connection's user in its vhost, checking permissions. Each channel has
/// its own copy, which caches the user's compiled entry until the registry
/// changes, so the publish path takes no lock.
#[derive(Debug, Clone)]
pub struct UserAccess {
    registry: Arc<Registry>,
    user: Arc<str>,
    vhost: Arc<str>,
    cached: Option<(u64, Option<Arc<Compiled>>)>,
    /// The last check that passed, with the registry's generation then: a publisher
    /// names the same exchange message after message, and the regex need not run again.
    last_allowed: Option<(u64, Permission, Kind, Box<str>)>,
}

impl UserAccess {
    /// A checker for `user` in `vhost`.
    pub fn new(registry: Arc<Registry>, user: &str, vhost: &str) -> Self {
        UserAccess {
            registry,
            user: Arc::from(user),
            vhost: Arc::from(vhost),
            cached: None,
            last_allowed: None,
        }
    }

    /// 403 unless the user has `permission` on the `kind` called `name`.
    pub fn check(
        &mut self,
        permission: Permission,
        kind: Kind,
        name: &str,
    ) -> Result<(), AmqpError> {
        let name = match (kind, name) {
            (Kind::Exchange, "") => "amq.default",
            _ => name,
        };
        let generation = self.registry.generation();
        if let Some((seen, p, k, n)) = &self.last_allowed
            && *seen == generation
            && *p == permission
            && *k == kind
            && **n == *name
        {
            return Ok(());
        }
        let entry = match &self.cached {
            Some((seen, entry)) if *seen == generation => entry.clone(),
            _ => {
                let entry = self.registry.compiled(&self.vhost, &self.user);
                self.cached = Some((generation, entry.clone()));
                entry
            }
        };
        if entry.is_some_and(|e| e.allows(permission, name)) {
            self.last_allowed = Some((generation, permission, kind, Box::from(name)));
            return Ok(());
        }
        let kind = match kind {
            Kind::Exchange => "exchange",
            Kind::Queue => "queue",
        };
        Err(AmqpError::access_refused(format!(
            "access to {} refused for user '{}'",
            resource(kind, name, &self.vhost),
            self.user
        )))
    }

    /// exchange.declare (not passive): configure on the exchange; a new one
    /// with an alternate exchange also needs read on itself and write on the
    /// alternate. The default exchange and unknown types are left to the
    /// vhost's own checks, which RabbitMQ makes first.
    pub fn exchange_declare(
        &mut self,
        exists: bool,
        name: &str,
        type_name: &str,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        if name.is_empty() || type_name.parse::<warren_exchanges::ExchangeKind>().is_err() {
            return Ok(());
        }
        self.check(Permission::Configure, Kind::Exchange, name)?;
        if !exists && let Some(alternate) = string_arg(arguments, "alternate-exchange") {
            self.check(Permission::Read, Kind::Exchange, name)?;
            self.check(Permission::Write, Kind::Exchange, &alternate)?;
        }
        Ok(())
    }

    /// exchange.delete: configure, after the vhost's refusal of the default
    /// and `amq.*` exchanges (RabbitMQ checks those first).
    pub fn exchange_delete(&mut self, name: &str) -> Result<(), AmqpError> {
        if name.is_empty() || name.starts_with("amq.") {
            return Ok(());
        }
        self.check(Permission::Configure, Kind::Exchange, name)
    }

    /// queue.declare (not passive): configure on the queue; a new one with a
    /// dead-letter exchange also needs read on itself and write on the DLX.
    pub fn queue_declare(
        &mut self,
        exists: bool,
        name: &str,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        self.check(Permission::Configure, Kind::Queue, name)?;
        if !exists && let Some(dlx) = string_arg(arguments, "x-dead-letter-exchange") {
            self.check(Permission::Read, Kind::Queue, name)?;
            self.check(Permission::Write, Kind::Exchange, &dlx)?;
        }
        Ok(())
    }

    /// queue.bind/unbind, exchange.bind/unbind: write on the destination, then
    /// read on the source (a default-exchange source is refused by the vhost).
    pub fn binding(
        &mut self,
        destination: Kind,
        name: &str,
        source: &str,
    ) -> Result<(), AmqpError> {
        self.check(Permission::Write, destination, name)?;
        if source.is_empty() {
            return Ok(());
        }
        self.check(Permission::Read, Kind::Exchange, source)
    }
}

fn string_arg(arguments: &FieldTable, key: &str) -> Option<String> {
    match arguments.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::registry::PermissionDef;
    use crate::config::Config;

    fn def(configure: &str, write: &str, read: &str) -> PermissionDef {
        PermissionDef {
            user: "guest".into(),
            vhost: "/".into(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        }
    }

    #[test]
    fn refusal_text_and_default_exchange_name() {
        let registry = Registry::from_config(&Config::default());
        let mut access = registry.access("guest", "/");
        assert!(access.check(Permission::Write, Kind::Exchange, "").is_ok());
        registry
            .set_permissions(def("", "^w", ""))
            .expect("set permissions");
        let e = access
            .check(Permission::Write, Kind::Exchange, "")
            .expect_err("refused after the change");
        assert_eq!(
            e.reply_text(),
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'guest'"
        );
        assert!(access.check(Permission::Write, Kind::Queue, "wq").is_ok());
        registry.clear_permissions("/", "guest");
        assert!(access.check(Permission::Write, Kind::Queue, "wq").is_err());
    }
}

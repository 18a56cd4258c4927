//! Exchanges of a vhost and RabbitMQ's rules for declaring, deleting and binding them.
//!
//! Reply texts were checked against RabbitMQ 3.10 (e.g. `ACCESS_REFUSED -
//! exchange name 'amq.foo' contains reserved prefix 'amq.*'`).

use std::sync::Arc;

use parking_lot::RwLock;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::{Exchange, ExchangeKind, type_name};

pub use super::bound::Bound;
use crate::dedup::{DedupArgs, ExchangeDedup};
use crate::delayed::{self, DelayedIndex};
use crate::durable::records::ExchangeRecord;
use crate::equivalence;
use crate::error::AmqpError;
pub use crate::names::Destination;
use crate::names::{ExchangeName, resource};
use crate::policy::Applied;
use crate::stats::{ExchangeCounters, History};

/// The properties an exchange is declared with.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeSpec {
    /// Routing algorithm.
    pub kind: ExchangeKind,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding (as source) goes.
    pub auto_delete: bool,
    /// Refuses direct publishes.
    pub internal: bool,
    /// Declare arguments as given.
    pub arguments: FieldTable,
    /// An `x-delayed-message` exchange routing as `kind` (its
    /// `x-delayed-type`) once a message's `x-delay` has passed.
    pub delayed: bool,
}

/// The declare argument naming an exchange's alternate exchange.
pub const ALTERNATE_EXCHANGE: &str = "alternate-exchange";

impl ExchangeSpec {
    /// What the store keeps of a durable exchange.
    pub fn record(&self) -> ExchangeRecord {
        ExchangeRecord {
            kind: self.type_name().to_owned(),
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: self.arguments.clone(),
        }
    }

    /// The type as declared and listed: `x-delayed-message` for a delayed
    /// exchange, else its kind.
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            delayed::EXCHANGE_TYPE
        } else {
            self.kind.as_str()
        }
    }

    /// The `alternate-exchange` argument, if it names one.
    pub fn alternate_exchange(&self) -> Option<&str> {
        match self.arguments.inner().get(ALTERNATE_EXCHANGE) {
            Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// 406 for a new exchange whose `alternate-exchange` argument is not a string
/// (RabbitMQ checks it only when it creates the exchange).
pub fn check_alternate_exchange_arg(
    arguments: &FieldTable,
    name: &str,
    vhost: &str,
) -> Result<(), AmqpError> {
    match arguments.inner().get(ALTERNATE_EXCHANGE) {
        None | Some(AMQPValue::LongString(_) | AMQPValue::ShortString(_)) => Ok(()),
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "invalid type '{}' for arg '{ALTERNATE_EXCHANGE}' in {}",
            type_name(other),
            resource("exchange", name, vhost)
        ))),
    }
}

/// 406 for declare arguments the exchange's kind refuses (`x-consistent-hash`:
/// `hash-header` with `hash-property`, an unknown `hash-property`), with the
/// plugin's texts. RabbitMQ validates them at every declare.
pub fn check_kind_arguments(kind: ExchangeKind, arguments: &FieldTable) -> Result<(), AmqpError> {
    Exchange::<Bound>::declare(kind, arguments)
        .map(|_| ())
        .map_err(|e| AmqpError::precondition_failed(e.to_string()))
}

/// One exchange: its declared properties and its bindings.
#[derive(Debug)]
pub struct ExchangeEntry {
    /// The exchange's name.
    pub name: ExchangeName,
    /// How it was declared.
    pub spec: ExchangeSpec,
    /// Bindings where this exchange is the source. A short read lock per publish;
    /// never held across `.await`.
    pub routes: RwLock<Exchange<Bound>>,
    /// The policies that apply (set by the vhost when they change).
    policy: RwLock<Arc<Applied>>,
    /// A delayed exchange's waiting messages.
    pub delayed: Option<Arc<DelayedIndex>>,
    /// The deduplication cache (`x-message-deduplication`), `None` when off.
    pub dedup: Option<Arc<ExchangeDedup>>,
    /// Message counters (rates).
    pub counters: ExchangeCounters,
    /// Samples of the counters.
    pub history: History,
}

impl Drop for ExchangeEntry {
    fn drop(&mut self) {
        // Lets a delayed exchange's sleeping task see that it is gone.
        if let Some(index) = &self.delayed {
            index.wake.notify_one();
        }
    }
}

impl ExchangeEntry {
    /// A new exchange with no bindings.
    pub fn new(name: &str, spec: ExchangeSpec) -> Arc<Self> {
        Self::with_parts(name, spec, None, None)
    }

    /// A new exchange with no bindings and, if delayed, its index, and a
    /// deduplication cache if `dedup`.
    pub fn with_parts(
        name: &str,
        spec: ExchangeSpec,
        delayed: Option<Arc<DelayedIndex>>,
        dedup: Option<Arc<ExchangeDedup>>,
    ) -> Arc<Self> {
        // Declares check the arguments first (`check_kind_arguments`); a stored
        // exchange that no longer passes routes as if declared without them.
        let routes = Exchange::declare(spec.kind, &spec.arguments).unwrap_or_else(|error| {
            tracing::warn!(%error, exchange = name, "exchange arguments ignored");
            Exchange::new(spec.kind)
        });
        Arc::new(ExchangeEntry {
            name: name.into(),
            routes: RwLock::new(routes),
            spec,
            policy: RwLock::default(),
            delayed,
            dedup,
            counters: ExchangeCounters::default(),
            history: History::default(),
        })
    }

    /// The alternate exchange in force: the `alternate-exchange` argument,
    /// else the policy's (RabbitMQ's rule: the argument wins).
    pub fn alternate_exchange(&self) -> Option<String> {
        match self.spec.alternate_exchange() {
            Some(own) => Some(own.to_owned()),
            None => self.policy.read().alternate_exchange().map(str::to_owned),
        }
    }

    /// The policies that apply, as last set.
    pub fn policy(&self) -> Arc<Applied> {
        self.policy.read().clone()
    }

    /// Sets the policies that apply.
    pub fn set_policy(&self, applied: Applied) {
        *self.policy.write() = Arc::new(applied);
    }

    /// The 406 for a redeclare with other properties, or Ok when equivalent.
    /// RabbitMQ compares type, durable, auto_delete, internal, then the
    /// alternate-exchange argument (the only argument it compares), in that order.
    pub fn assert_equivalent(&self, wanted: &ExchangeSpec, vhost: &str) -> Result<(), AmqpError> {
        let current = &self.spec;
        let resource = resource("exchange", &self.name, vhost);
        if current.kind != wanted.kind || current.delayed != wanted.delayed {
            return Err(equivalence::inequivalent(
                "type",
                &resource,
                &format!("'{}'", wanted.type_name()),
                &format!("'{}'", current.type_name()),
            ));
        }
        equivalence::assert_flag("durable", &resource, current.durable, wanted.durable)?;
        equivalence::assert_flag(
            "auto_delete",
            &resource,
            current.auto_delete,
            wanted.auto_delete,
        )?;
        equivalence::assert_flag("internal", &resource, current.internal, wanted.internal)?;
        equivalence::assert_arg(
            ALTERNATE_EXCHANGE,
            &resource,
            current.arguments.inner().get(ALTERNATE_EXCHANGE),
            wanted.arguments.inner().get(ALTERNATE_EXCHANGE),
        )
    }
}

/// The exchanges every vhost starts with (besides the default exchange `""`).
pub fn predeclared() -> Vec<(&'static str, ExchangeSpec)> {
    let spec = |kind, internal| ExchangeSpec {
        kind,
        durable: true,
        auto_delete: false,
        internal,
        arguments: FieldTable::default(),
        delayed: false,
    };
    vec![
        ("", spec(ExchangeKind::Direct, false)),
        ("amq.direct", spec(ExchangeKind::Direct, false)),
        ("amq.fanout", spec(ExchangeKind::Fanout, false)),
        ("amq.topic", spec(ExchangeKind::Topic, false)),
        ("amq.headers", spec(ExchangeKind::Headers, false)),
        ("amq.match", spec(ExchangeKind::Headers, false)),
        ("amq.rabbitmq.trace", spec(ExchangeKind::Topic, true)),
    ]
}

/// An exchange's deduplication settings: the plugin's exchange type
/// `x-message-deduplication` always deduplicates (and needs `x-cache-size`),
/// any other type when `x-message-deduplication` is true (LavinMQ's form).
pub fn dedup_args(
    kind: ExchangeKind,
    arguments: &FieldTable,
) -> Result<Option<DedupArgs>, AmqpError> {
    if kind == ExchangeKind::Deduplication {
        DedupArgs::for_exchange_type(arguments).map(Some)
    } else {
        DedupArgs::for_exchange(arguments)
    }
}

/// 403 for any operation naming the default exchange where it is not allowed.
pub fn check_not_default(name: &str) -> Result<(), AmqpError> {
    if name.is_empty() {
        return Err(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        ));
    }
    Ok(())
}

/// A declared type and its arguments: the kind it routes as and whether it
/// is a delayed exchange. `x-delayed-message` needs an `x-delayed-type`
/// naming another type, with the plugin's 406 texts.
pub fn parse_type(
    type_name: &str,
    arguments: &FieldTable,
) -> Result<(ExchangeKind, bool), AmqpError> {
    if type_name != delayed::EXCHANGE_TYPE {
        return parse_kind(type_name).map(|kind| (kind, false));
    }
    let inner = match arguments.inner().get(delayed::DELAYED_TYPE_ARG) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => {
            return Err(AmqpError::precondition_failed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            ));
        }
    };
    if inner == delayed::EXCHANGE_TYPE {
        return Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-type' can't be of type 'x-delayed-message'",
        ));
    }
    parse_kind(&inner).map(|kind| (kind, true))
}

/// The routing kind a type names; 503 for an exchange type Warren does not
/// have (a connection error, as in RabbitMQ).
///
/// RabbitMQ says "unknown exchange type" when the name is not an atom of its
/// Erlang node and "invalid exchange type" when it is (`'foo'`, `'local'`,
/// `''`). Which names are atoms cannot be known here; plugin types (`x-...`,
/// e.g. `x-foo`) never are.
pub fn parse_kind(kind: &str) -> Result<ExchangeKind, AmqpError> {
    kind.parse().map_err(|_| {
        let adjective = if kind.starts_with("x-") {
            "unknown"
        } else {
            "invalid"
        };
        AmqpError::command_invalid(format!("{adjective} exchange type '{kind}'"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ExchangeKind, durable: bool) -> ExchangeSpec {
        ExchangeSpec {
            kind,
            durable,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
            delayed: false,
        }
    }

    #[test]
    fn equivalence_texts_match_rabbitmq() {
        let x = ExchangeEntry::new("amq.direct", spec(ExchangeKind::Direct, true));
        let e = x
            .assert_equivalent(&spec(ExchangeKind::Direct, false), "/")
            .expect_err("durable differs");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'"
        );
        let e = x
            .assert_equivalent(&spec(ExchangeKind::Fanout, true), "/")
            .expect_err("type differs");
        assert!(e.text.contains("arg 'type'"), "{}", e.text);
        assert!(
            x.assert_equivalent(&spec(ExchangeKind::Direct, true), "/")
                .is_ok()
        );
    }

    #[test]
    fn unknown_type_is_command_invalid() {
        let e = parse_kind("foo").expect_err("unknown");
        assert_eq!(
            e.reply_text(),
            "COMMAND_INVALID - invalid exchange type 'foo'"
        );
        assert!(e.is_connection_error());
        assert_eq!(
            parse_kind("x-no-such-plugin")
                .expect_err("plugin type")
                .reply_text(),
            "COMMAND_INVALID - unknown exchange type 'x-no-such-plugin'"
        );
        assert_eq!(
            parse_kind("x-consistent-hash").ok(),
            Some(ExchangeKind::ConsistentHash)
        );
        assert_eq!(
            parse_kind("x-modulus-hash").ok(),
            Some(ExchangeKind::ModulusHash)
        );
    }

    fn with_ae(value: Option<AMQPValue>) -> ExchangeSpec {
        let mut s = spec(ExchangeKind::Direct, false);
        if let Some(value) = value {
            s.arguments.insert(ALTERNATE_EXCHANGE.into(), value);
        }
        s
    }

    #[test]
    fn alternate_exchange_equivalence_texts_match_rabbitmq() {
        let text = |s: &str| Some(AMQPValue::LongString(s.into()));
        let x = ExchangeEntry::new("x", with_ae(text("ae1")));
        let fails = |wanted: Option<AMQPValue>| {
            x.assert_equivalent(&with_ae(wanted), "/")
                .expect_err("differs")
                .text
        };
        let prefix = "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': ";
        assert_eq!(
            fails(text("ae2")),
            format!("{prefix}received 'ae2' but current is 'ae1'")
        );
        assert_eq!(
            fails(None),
            format!("{prefix}received none but current is the value 'ae1' of type 'longstr'")
        );
        assert_eq!(
            fails(Some(AMQPValue::LongInt(5))),
            format!("{prefix}received '5' but current is 'ae1'")
        );
        assert!(x.assert_equivalent(&with_ae(text("ae1")), "/").is_ok());
        let none = ExchangeEntry::new("x", with_ae(None));
        assert_eq!(
            none.assert_equivalent(&with_ae(text("ae1")), "/")
                .expect_err("differs")
                .text,
            format!("{prefix}received the value 'ae1' of type 'longstr' but current is none")
        );
    }

    #[test]
    fn alternate_exchange_must_be_a_string_when_created() {
        let args = |v: AMQPValue| {
            let mut t = FieldTable::default();
            t.insert(ALTERNATE_EXCHANGE.into(), v);
            t
        };
        assert!(check_alternate_exchange_arg(&FieldTable::default(), "x", "/").is_ok());
        assert!(
            check_alternate_exchange_arg(&args(AMQPValue::LongString("ae".into())), "x", "/")
                .is_ok()
        );
        assert_eq!(
            check_alternate_exchange_arg(&args(AMQPValue::Boolean(true)), "x", "/")
                .expect_err("bool")
                .reply_text(),
            "PRECONDITION_FAILED - invalid type 'bool' for arg 'alternate-exchange' in exchange 'x' in vhost '/'"
        );
    }
}

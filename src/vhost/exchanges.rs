//! Exchanges of a vhost and RabbitMQ's rules for declaring, deleting and binding them.
//!
//! Reply texts were checked against RabbitMQ 3.10 (e.g. `ACCESS_REFUSED -
//! exchange name 'amq.foo' contains reserved prefix 'amq.*'`).

use std::sync::Arc;

use parking_lot::RwLock;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::{Exchange, ExchangeKind};

use crate::error::AmqpError;
use crate::vhost::resource;

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// A queue, by name.
    Queue(String),
    /// An exchange, by name (exchange-to-exchange binding).
    Exchange(String),
}

impl Destination {
    /// The destination's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(n) | Destination::Exchange(n) => n,
        }
    }

    /// `queue 'q' in vhost '/'` / `exchange 'x' in vhost '/'`.
    pub fn describe(&self, vhost: &str) -> String {
        match self {
            Destination::Queue(n) => resource("queue", n, vhost),
            Destination::Exchange(n) => resource("exchange", n, vhost),
        }
    }
}

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
}

impl ExchangeSpec {
    /// The `alternate-exchange` argument, if it names one.
    pub fn alternate_exchange(&self) -> Option<&str> {
        match self.arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// One exchange: its declared properties and its bindings.
#[derive(Debug)]
pub struct ExchangeEntry {
    /// The exchange's name.
    pub name: String,
    /// How it was declared.
    pub spec: ExchangeSpec,
    /// Bindings where this exchange is the source. A short read lock per publish;
    /// never held across `.await`.
    pub routes: RwLock<Exchange<Destination>>,
}

impl ExchangeEntry {
    /// A new exchange with no bindings.
    pub fn new(name: &str, spec: ExchangeSpec) -> Arc<Self> {
        Arc::new(ExchangeEntry {
            name: name.to_owned(),
            routes: RwLock::new(Exchange::new(spec.kind)),
            spec,
        })
    }

    /// The 406 for a redeclare with other properties, or Ok when equivalent.
    /// RabbitMQ compares type, durable, auto_delete, internal, then the
    /// alternate-exchange argument, in that order.
    pub fn assert_equivalent(&self, wanted: &ExchangeSpec, vhost: &str) -> Result<(), AmqpError> {
        let current = &self.spec;
        let fail = |arg: &str, received: String, now: String| {
            Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for {}: received {received} but current is {now}",
                resource("exchange", &self.name, vhost)
            )))
        };
        let quoted = |s: &str| format!("'{s}'");
        if current.kind != wanted.kind {
            return fail(
                "type",
                quoted(wanted.kind.as_str()),
                quoted(current.kind.as_str()),
            );
        }
        for (arg, now, received) in [
            ("durable", current.durable, wanted.durable),
            ("auto_delete", current.auto_delete, wanted.auto_delete),
            ("internal", current.internal, wanted.internal),
        ] {
            if now != received {
                return fail(arg, quoted(&received.to_string()), quoted(&now.to_string()));
            }
        }
        let ae_now = current.alternate_exchange();
        let ae_wanted = wanted.alternate_exchange();
        if ae_now != ae_wanted {
            let show = |v: Option<&str>| match v {
                Some(name) => format!("the value '{name}' of type 'longstr'"),
                None => "none".to_owned(),
            };
            return fail("alternate-exchange", show(ae_wanted), show(ae_now));
        }
        Ok(())
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

/// 403 for any operation naming the default exchange where it is not allowed.
pub fn check_not_default(name: &str) -> Result<(), AmqpError> {
    if name.is_empty() {
        return Err(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        ));
    }
    Ok(())
}

/// 503 for an exchange type Warren does not have (a connection error, as in RabbitMQ).
pub fn parse_kind(type_name: &str) -> Result<ExchangeKind, AmqpError> {
    type_name
        .parse()
        .map_err(|_| AmqpError::command_invalid(format!("invalid exchange type '{type_name}'")))
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
        assert!(parse_kind("x-consistent-hash").is_err());
    }
}

//! What a headers binding means: its `x-match` mode and, per argument,
//! which header values pass (RabbitMQ 3.13, rabbit_exchange_type_headers
//! and mc_amqpl:routing_headers):
//!
//! - `all` (the default) / `any`: every / at least one binding argument must
//!   match; argument keys starting with `x-` are ignored.
//! - `all-with-x` / `any-with-x`: the same, but `x-` arguments count too
//!   (only `x-match` itself is ignored).
//! - A `void` argument matches if the header is present, whatever its value.
//! - Otherwise the header's value must equal the argument's value the way
//!   Erlang's `=:=` compares RabbitMQ's decoded values: integers of every
//!   width and signedness compare by number, `longstr` equals `binary` with
//!   the same bytes, floats equal floats (never integers), booleans only
//!   booleans; nested tables and arrays compare type and value.
//! - A message without headers matches like one with an empty table.
//!
//! Quirk kept from RabbitMQ 3.13+: a *header* of type timestamp is
//! multiplied by 1000 before comparing (mc_amqpl:routing_value converts it
//! to milliseconds), while binding arguments are not. So a timestamp header
//! T matches an integer argument T*1000, and a timestamp argument only
//! matches a timestamp header when both are 0.

use amq_protocol_types::{AMQPValue, DecimalValue, FieldArray, FieldTable, ShortString};

use crate::error::BindError;
use crate::value::{self, Floats};

/// How the argument tests of one binding combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    All,
    Any,
}

/// What a header must be to pass one argument test.
#[derive(Debug, Clone)]
pub(super) enum Expected {
    /// A `void` argument: the header only has to be present.
    Present,
    Int(i128),
    Float(f64),
    Bytes(Vec<u8>),
    Bool(bool),
    Decimal(DecimalValue),
    /// An empty table or array: both decode to Erlang's `[]`, so they equal each other.
    EmptyList,
    Table(FieldTable),
    Array(FieldArray),
}

impl Expected {
    fn of(argument: &AMQPValue) -> Self {
        match argument {
            AMQPValue::Void => Expected::Present,
            AMQPValue::ShortShortInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::ShortShortUInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::ShortInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::ShortUInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::LongInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::LongUInt(n) => Expected::Int(i128::from(*n)),
            AMQPValue::LongLongInt(n) => Expected::Int(i128::from(*n)),
            // Arguments are not rescaled; only headers are (see module doc).
            AMQPValue::Timestamp(t) => Expected::Int(i128::from(*t)),
            AMQPValue::Float(f) => Expected::Float(f64::from(*f)),
            AMQPValue::Double(f) => Expected::Float(*f),
            AMQPValue::ShortString(s) => Expected::Bytes(s.as_str().as_bytes().to_vec()),
            AMQPValue::LongString(s) => Expected::Bytes(s.as_bytes().to_vec()),
            AMQPValue::ByteArray(b) => Expected::Bytes(b.as_slice().to_vec()),
            AMQPValue::Boolean(b) => Expected::Bool(*b),
            AMQPValue::DecimalValue(d) => Expected::Decimal(*d),
            AMQPValue::FieldTable(t) if t.inner().is_empty() => Expected::EmptyList,
            AMQPValue::FieldArray(a) if a.as_slice().is_empty() => Expected::EmptyList,
            AMQPValue::FieldTable(t) => Expected::Table(t.clone()),
            AMQPValue::FieldArray(a) => Expected::Array(a.clone()),
        }
    }

    /// Whether this header value passes the test.
    pub(super) fn matches(&self, header: &AMQPValue) -> bool {
        match self {
            Expected::Present => true,
            Expected::Int(n) => header_integer(header) == Some(*n),
            Expected::Float(f) => match header {
                AMQPValue::Float(h) => f64::from(*h) == *f,
                AMQPValue::Double(h) => h == f,
                _ => false,
            },
            Expected::Bytes(b) => bytes(header) == Some(b.as_slice()),
            Expected::Bool(b) => matches!(header, AMQPValue::Boolean(h) if h == b),
            Expected::Decimal(d) => matches!(header, AMQPValue::DecimalValue(h) if h == d),
            Expected::EmptyList => match header {
                AMQPValue::FieldTable(t) => t.inner().is_empty(),
                AMQPValue::FieldArray(a) => a.as_slice().is_empty(),
                _ => false,
            },
            Expected::Table(t) => {
                matches!(header, AMQPValue::FieldTable(h) if value::tables_eq(h, t, Floats::ByValue))
            }
            Expected::Array(a) => {
                matches!(header, AMQPValue::FieldArray(h) if value::arrays_eq(h, a, Floats::ByValue))
            }
        }
    }
}

/// A header's integer value for routing: timestamps count in milliseconds.
fn header_integer(v: &AMQPValue) -> Option<i128> {
    match v {
        AMQPValue::Timestamp(t) => Some(i128::from(*t) * 1000),
        other => value::integer(other),
    }
}

/// The bytes of `longstr` and `binary` values, which RabbitMQ both holds as binaries.
fn bytes(v: &AMQPValue) -> Option<&[u8]> {
    match v {
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        other => value::string_bytes(other),
    }
}

/// A binding's arguments compiled into tests on headers.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    pub(super) mode: Mode,
    pub(super) tests: Vec<(ShortString, Expected)>,
}

impl Matcher {
    /// Validates `x-match` and compiles the arguments that take part in matching.
    pub(crate) fn parse(arguments: &FieldTable) -> Result<Self, BindError> {
        let (mode, with_x) = match arguments.inner().get("x-match") {
            None => (Mode::All, false),
            Some(x_match) => match value::string_bytes(x_match) {
                Some(b"all") => (Mode::All, false),
                Some(b"any") => (Mode::Any, false),
                Some(b"all-with-x") => (Mode::All, true),
                Some(b"any-with-x") => (Mode::Any, true),
                Some(other) => {
                    let mut value = String::new();
                    value::write_binary(&mut value, other);
                    return Err(BindError::InvalidXMatchValue { value });
                }
                None => {
                    return Err(BindError::InvalidXMatchType {
                        type_name: value::type_name(x_match),
                        value: value::erlang_term(x_match),
                    });
                }
            },
        };
        let tests = arguments
            .inner()
            .iter()
            .filter(|(key, _)| {
                let key = key.as_str();
                key != "x-match" && (with_x || !key.starts_with("x-"))
            })
            .map(|(key, argument)| (key.clone(), Expected::of(argument)))
            .collect();
        Ok(Matcher { mode, tests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AMQPValue as V;

    fn table(entries: &[(&str, V)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    fn s(text: &str) -> V {
        V::LongString(text.into())
    }

    #[test]
    fn invalid_x_match_has_rabbitmq_reply_text() {
        let err = |v: V| {
            Matcher::parse(&table(&[("x-match", v)]))
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(
            err(s("some")),
            "Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x"
        );
        assert_eq!(
            err(s("ALL")),
            "Invalid x-match field value <<\"ALL\">>; expected all, any, all-with-x, or any-with-x"
        );
        assert_eq!(
            err(V::LongInt(5)),
            "Invalid x-match field type signedint (value 5); expected longstr"
        );
        assert_eq!(
            err(V::Boolean(true)),
            "Invalid x-match field type bool (value true); expected longstr"
        );
        assert_eq!(
            err(V::ByteArray(b"any".to_vec().into())),
            "Invalid x-match field type binary (value <<\"any\">>); expected longstr"
        );
        assert_eq!(
            err(V::Void),
            "Invalid x-match field type void (value undefined); expected longstr"
        );
    }
}

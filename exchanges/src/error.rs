//! Errors of the routing core. Their `Display` is the reply text RabbitMQ
//! sends for the same mistake, so the broker can pass it on unchanged.

use thiserror::Error;

/// An `exchange.declare` type that is not one of the four built-in kinds.
///
/// RabbitMQ answers 406 PRECONDITION_FAILED with this text
/// (rabbit_exchange:check_type).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown exchange type '{0}'")]
pub struct UnknownExchangeKind(pub String);

/// A binding the exchange refuses; the broker answers 406 PRECONDITION_FAILED.
///
/// Texts follow rabbit_exchange_type_headers:validate_binding, with values
/// printed as Erlang terms (`~tp`), e.g. `<<"some">>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BindError {
    /// `x-match` is a string but not one of the four modes.
    #[error("Invalid x-match field value {value}; expected all, any, all-with-x, or any-with-x")]
    InvalidXMatchValue {
        /// The value as RabbitMQ prints it.
        value: String,
    },
    /// `x-match` is not a string at all.
    #[error("Invalid x-match field type {type_name} (value {value}); expected longstr")]
    InvalidXMatchType {
        /// RabbitMQ's name for the field type (e.g. `signedint`, `bool`).
        type_name: &'static str,
        /// The value as RabbitMQ prints it.
        value: String,
    },
}

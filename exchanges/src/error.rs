//! Errors of the routing core. Their `Display` is the reply text RabbitMQ
//! sends for the same mistake, so the broker can pass it on unchanged.

use thiserror::Error;

/// An `exchange.declare` type that is not one of Warren's kinds.
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
    /// An `x-consistent-hash` binding key that is not an integer.
    #[error(
        "The binding key must be an integer: {}",
        crate::value::erlang_binary(key)
    )]
    WeightNotAnInteger {
        /// The binding key as given.
        key: String,
    },
    /// An `x-consistent-hash` binding key below 1 (weight 0 is refused, as by the plugin).
    #[error("The binding key must be greater than 0")]
    WeightNotPositive,
    /// An `x-consistent-hash` weight over Warren's bound (the plugin has none).
    #[error("The binding key must be at most {max}")]
    WeightTooLarge {
        /// The largest weight taken.
        max: u32,
    },
}

/// Declare arguments an exchange kind refuses; the broker answers 406
/// PRECONDITION_FAILED with the text (the consistent-hash plugin's `validate`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeclareError {
    /// Both `hash-header` and `hash-property`.
    #[error("hash-header and hash-property are mutually exclusive")]
    HeaderAndProperty,
    /// `hash-property` names a property the plugin does not hash.
    #[error("Unsupported property: {0}")]
    UnsupportedProperty(String),
    /// `hash-header` or `hash-property` is not a string.
    #[error("Invalid type '{type_name}' for argument '{argument}': expected longstr")]
    NotAString {
        /// The argument's name.
        argument: &'static str,
        /// RabbitMQ's name of the type given.
        type_name: &'static str,
    },
}

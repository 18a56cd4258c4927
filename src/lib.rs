//! Warren: an AMQP 0-9-1 message broker that RabbitMQ client libraries connect to
//! unchanged.
//!
//! # Layout
//!
//! - [`config`]: one typed configuration (defaults, TOML file, flags), validated once.
//! - [`cli`]: the `warren` binary's command-line flags.
//! - [`server`]: the listener, the accept loop, graceful shutdown, the shared [`server::Broker`].
//! - [`connection`]: one task per connection: handshake, frame loop, channel demux,
//!   heartbeats; [`connection::writer`] is the task that owns the socket's write half.
//! - [`channel`]: per-channel state and method dispatch: declares, publish (confirms,
//!   tx), consume, get, acks, qos.
//! - [`vhost`]: a vhost's exchanges, queues and bindings, the declare rules, routing.
//! - [`queue`]: the queue engine (ready list by priority and arrival, delivery to
//!   consumers with credit, acks, requeue at the original position), TTL and
//!   `x-expires` timers, length limits, dead-lettering with `x-death`, and typed
//!   `x-` arguments.
//! - [`message`]: a published message, shared by the queues it reaches.
//! - [`auth`]: users (RabbitMQ-compatible password hashes, tags), vhost records,
//!   permissions checked on AMQP operations, SASL (PLAIN, AMQPLAIN).
//! - [`mgmt`]: the management HTTP API (RabbitMQ-compatible subset) and `/metrics`.
//! - [`error`]: AMQP exceptions (reply code + RabbitMQ's reply text).
//!
//! The wire format lives in the `warren-codec` crate and the routing core in
//! `warren-exchanges`; this crate is the glue between them and the network.

pub mod alarms;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod cli;
pub mod config;
pub mod connection;
pub mod durable;
pub mod equivalence;
pub mod error;
pub mod message;
pub mod mgmt;
pub mod names;
pub mod outbound;
pub mod queue;
pub mod recovery;
pub mod server;
pub mod vhost;

pub use broker::Broker;
pub use config::Config;
pub use server::run;

//! Warren: an AMQP 0-9-1 message broker that RabbitMQ client libraries connect to
//! unchanged.
//!
//! # Layout
//!
//! One line per room (top-level module); ARCHITECTURE.md has the map, the layering
//! `tests/architecture.rs` enforces, the data flow and the lock order.
//!
//! - [`alarms`]: memory and disk alarms that stop reading publishers (connection.blocked).
//! - [`auth`]: users, password hashes, vhost records, permission checks, SASL.
//! - [`broker`]: the shared [`Broker`]; [`broker::connections`] is the live-connection registry.
//! - [`channel`]: per-channel state, dispatch, [`channel::confirms`], [`channel::ChannelShared`].
//! - [`cli`]: the `warren` binary's command-line flags.
//! - [`cluster`]: this broker as a node of a cluster (only with cluster keys): Raft node,
//!   node file, forming and leaving, the metadata group's state.
//! - [`config`]: one typed configuration (defaults, TOML file, flags), validated once.
//! - [`connection`]: handshake, the reader's frame loop, the [`connection::writer`] task.
//! - [`dedup`]: message deduplication (the plugin's `x-message-deduplication`): bounded caches.
//! - [`delayed`]: delayed messages (`x-delayed-message`): the index by due time in the store.
//! - [`durable`]: the broker's side of the store: records, group commit, what is written when.
//! - [`equivalence`]: RabbitMQ's redeclare rule and its `inequivalent arg` texts.
//! - [`error`]: AMQP exceptions (reply code + RabbitMQ's reply text).
//! - [`message`]: a published message, shared by the queues it reaches.
//! - [`mgmt`]: the management HTTP API (RabbitMQ-compatible subset) and `/metrics`.
//! - [`names`]: names that cross rooms: resource texts and binding destinations.
//! - [`outbound`]: the items of a connection's writer queue.
//! - [`policy`]: policies and operator policies: matching, merging, validation, the store.
//! - [`queue`]: the queue engine and its seams ([`queue::DeliverySink`], [`queue::QueueHost`]).
//! - [`recovery`]: rebuilding vhosts, exchanges, queues and bindings from the store at start.
//! - [`server`]: the listener, the accept loop and graceful shutdown.
//! - [`shovel`]: dynamic shovels (RabbitMQ's `shovel` runtime parameters) and their workers.
//! - [`tls`]: the rustls server configuration (amqps, https) and a client
//!   certificate's common name.
//! - [`vhost`]: exchanges, queues, bindings, declare rules, the publish service and route explain.
//!
//! The wire format lives in the `warren-codec` crate, the routing core in
//! `warren-exchanges`, the store in `warren-storage` and Raft in `warren-raft`; this crate is the glue
//! between them and the network.

pub mod alarms;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dedup;
pub mod delayed;
pub mod durable;
pub mod equivalence;
pub mod error;
pub mod message;
pub mod meta;
pub mod mgmt;
pub mod names;
pub mod outbound;
pub mod policy;
pub mod queue;
pub mod recovery;
pub mod server;
pub mod shovel;
pub mod stats;
pub mod tls;
pub mod vhost;

pub use broker::Broker;
pub use config::Config;
pub use server::run;

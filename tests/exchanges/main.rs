//! Exchanges as a RabbitMQ client sees them: how each type routes, bindings over
//! several paths, exchange-to-exchange bindings, alternate exchanges, auto-delete
//! and internal exchanges, mandatory returns, and the declare / delete / bind
//! rules with RabbitMQ's reply codes and texts.
//!
//! The same assertions hold against RabbitMQ. With `WARREN_REFERENCE_URI` set
//! (e.g. `amqp://guest:guest@127.0.0.1:5672/exchanges-check`: a fresh vhost the
//! user may configure, write and read, since names are fixed) the tests talk to
//! that broker instead of starting one; the tests that need a raw socket skip,
//! and `--include-ignored` runs the ones Warren does not pass yet.

#[path = "../common/mod.rs"]
mod common;

mod bind_publish_rules;
mod declare_rules;
mod headers;
mod partitioning;
mod routing;
mod topology;

use std::net::SocketAddr;

use common::lapin::{amqp_error, confirming, connect, table, text, try_publish};
use common::{TestBroker, eventually};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// The broker under test: Warren in-process, or the reference broker.
struct Target {
    uri: String,
    vhost: String,
    /// Where an in-process broker listens (None for the reference broker).
    addr: Option<SocketAddr>,
    _broker: Option<TestBroker>,
}

/// Warren started in-process, or the broker `WARREN_REFERENCE_URI` names.
async fn target() -> Target {
    if let Some((uri, vhost)) = common::reference_broker() {
        return Target {
            uri,
            vhost,
            addr: None,
            _broker: None,
        };
    }
    let broker = common::start().await;
    Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        addr: Some(broker.addr),
        _broker: Some(broker),
    }
}

impl Target {
    /// A new connection to the broker under test.
    async fn connect(&self) -> Connection {
        connect(&self.uri).await
    }

    /// A connection and a channel in confirm mode on it.
    async fn open(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = confirming(&conn).await;
        (conn, ch)
    }

    /// `exchange 'x' in vhost '/'`.
    fn res(&self, kind: &str, name: &str) -> String {
        format!("{kind} '{name}' in vhost '{}'", self.vhost)
    }
}

/// exchange.declare flags all off.
const DEFAULT_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: false,
    durable: false,
    auto_delete: false,
    internal: false,
    nowait: false,
};

/// A passive exchange.declare: it only looks.
const PASSIVE_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: true,
    ..DEFAULT_X
};

/// exchange.declare with these flags and arguments.
async fn declare_x_with(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    ch.exchange_declare(name.into(), kind, options, arguments)
        .await
}

/// exchange.declare that must succeed, flags off.
async fn declare_x(ch: &Channel, name: &str, kind: ExchangeKind) {
    declare_x_with(ch, name, kind, DEFAULT_X, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

/// queue.bind with arguments, which must succeed.
async fn bind_q_with(ch: &Channel, queue: &str, x: &str, key: &str, arguments: FieldTable) {
    ch.queue_bind(
        queue.into(),
        x.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {x} with '{key}': {e}"));
}

/// queue.bind without arguments, which must succeed.
async fn bind_q(ch: &Channel, queue: &str, x: &str, key: &str) {
    bind_q_with(ch, queue, x, key, FieldTable::default()).await;
}

/// exchange.bind: messages from `source` flow to `destination`.
async fn bind_x(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {source} -> {destination}: {e}"));
}

/// Whether a passive declare finds the exchange (a fresh channel: a 404 closes it).
async fn x_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    match declare_x_with(
        &ch,
        name,
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    {
        Ok(()) => {
            let _ = ch.close(200, "done".into()).await;
            true
        }
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

/// Polls until the exchange exists or not, within the generous bound.
async fn eventually_x_exists(conn: &Connection, name: &str, expected: bool) {
    let now = eventually(expected, async || x_exists(conn, name).await).await;
    assert_eq!(
        now, expected,
        "exchange '{name}' exists should become {expected}"
    );
}

/// A confirmed publish with the key as body; headers when given.
async fn publish(ch: &Channel, x: &str, key: &str, headers: Option<FieldTable>) {
    let mut properties = BasicProperties::default();
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    let confirmation = try_publish(ch, x, key, false, key.as_bytes(), properties)
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
}

/// Takes every message in the queue; their bodies.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    bodies
}

/// Publishes one message and names the queues among `queues` it reached,
/// asserting that each got it at most once. The queues are empty afterwards.
async fn reached(
    ch: &Channel,
    x: &str,
    key: &str,
    headers: Option<FieldTable>,
    queues: &[&str],
) -> Vec<String> {
    publish(ch, x, key, headers).await;
    let mut hit = Vec::new();
    for q in queues {
        let got = drain(ch, q).await;
        assert!(got.len() <= 1, "queue {q} got {got:?} for one publish");
        if !got.is_empty() {
            hit.push((*q).to_owned());
        }
    }
    hit
}

/// Arguments naming an alternate exchange.
fn alternate(name: &str) -> FieldTable {
    table(&[("alternate-exchange", text(name))])
}

/// Queue names as [`reached`] gives them.
fn names(queues: &[&str]) -> Vec<String> {
    queues.iter().map(|q| (*q).to_owned()).collect()
}

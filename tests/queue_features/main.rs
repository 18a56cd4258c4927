//! Queue features RabbitMQ users build retries, DLQs and limits with: message
//! TTL and queue expiry, dead-lettering and the `x-death` header, length limits
//! and overflow, priority queues, the delivery limit, consumer priorities and
//! single active consumer. What a lapin client sees is what it sees on
//! RabbitMQ 3.13 (x-delivery-limit: RabbitMQ 4).
//!
//! Timing tests use short TTLs and wait by polling; none asserts a duration.

#[path = "../common/mod.rs"]
mod common;

mod consumers;
mod dead_letter;
mod delivery_limit;
mod limits;
mod priority;
mod reply_to;
mod ttl;

use common::lapin::{Client, counts, table, try_publish};
use common::{TestBroker, eventually};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};

/// A broker, a client, and a channel in confirm mode.
async fn setup() -> (TestBroker, Client, Channel) {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    (broker, client, ch)
}

/// queue.declare with these arguments, flags off.
async fn declare(ch: &Channel, name: &str, args: &[(&str, AMQPValue)]) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), table(args))
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

/// An integer argument.
fn int(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

/// Publishes and returns the confirm.
async fn send(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    try_publish(ch, exchange, routing_key, false, body, properties)
        .await
        .expect("publish")
}

/// Publishes through the default exchange and asserts the broker acks it.
async fn publish_with(ch: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    let confirm = send(ch, "", queue, body, properties).await;
    assert!(confirm.is_ack(), "{confirm:?}");
}

/// [`publish_with`] without properties.
async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_with(ch, queue, body, BasicProperties::default()).await;
}

/// Properties with a per-message TTL.
fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

/// basic.get, to be acked; None when the queue is empty.
async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
}

/// basic.get of a message that must be there.
async fn get_some(ch: &Channel, queue: &str) -> BasicGetMessage {
    get(ch, queue)
        .await
        .unwrap_or_else(|| panic!("a message in '{queue}'"))
}

/// The bodies basic.get takes (no-ack) until the queue is empty.
async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        bodies.push(m.delivery.data.clone());
    }
    bodies
}

/// Ready messages of a queue (passive declare on a fresh channel).
async fn ready(client: &Client, queue: &str) -> u32 {
    counts(client, queue).await.0
}

/// Polls until the queue has `n` ready messages.
async fn eventually_ready(client: &Client, queue: &str, n: u32) {
    let now = eventually(n, async || ready(client, queue).await).await;
    assert_eq!(now, n, "queue '{queue}' has {now} ready, expected {n}");
}

/// Polls basic.get until a message arrives in `queue`.
async fn eventually_get(ch: &Channel, queue: &str) -> BasicGetMessage {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        if let Some(m) = get(ch, queue).await {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived in '{queue}'"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// nack of one delivery.
fn nack(requeue: bool) -> BasicNackOptions {
    BasicNackOptions {
        multiple: false,
        requeue,
    }
}

/// A header of a delivered message.
fn header<'a>(delivery: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    delivery.properties.headers().as_ref()?.inner().get(key)
}

/// A string header.
fn header_str(delivery: &Delivery, key: &str) -> Option<String> {
    match header(delivery, key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        other => panic!("header {key} is not a long string: {other:?}"),
    }
}

/// The entries of the `x-death` header.
fn x_death(delivery: &Delivery) -> Vec<FieldTable> {
    match header(delivery, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death entry is not a table: {other:?}"),
            })
            .collect(),
        other => panic!("no x-death array: {other:?}"),
    }
}

/// (queue, reason, count) of each `x-death` entry, newest first.
fn deaths(delivery: &Delivery) -> Vec<(String, String, i64)> {
    x_death(delivery)
        .iter()
        .map(|t| {
            let s = |k: &str| match t.inner().get(k) {
                Some(AMQPValue::LongString(s)) => s.to_string(),
                other => panic!("{k}: {other:?}"),
            };
            let count = match t.inner().get("count") {
                Some(AMQPValue::LongLongInt(c)) => *c,
                other => panic!("count is not a 64-bit long: {other:?}"),
            };
            (s("queue"), s("reason"), count)
        })
        .collect()
}

/// exchange.declare with default flags.
async fn exchange(ch: &Channel, name: &str, kind: lapin::ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

/// queue.bind without arguments.
async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange}: {e}"));
}

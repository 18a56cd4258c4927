//! Publishing and consuming as a RabbitMQ client sees them: properties and bodies
//! passed through, consumers and their tags, basic.get, acks / nacks / rejects
//! and their delivery tags, requeueing at the original position, recover, QoS,
//! publisher confirms and transactions. Reply codes and texts are RabbitMQ's.

#[path = "../common/mod.rs"]
mod common;

mod confirms;
mod consumer_timeout;
mod consumers;
mod publishing;
mod qos;
mod settlements;
mod transactions;

use common::lapin::{Client, counts, declare_queue, try_publish};
use common::{TestBroker, eventually};
use lapin::message::BasicGetMessage;
use lapin::options::*;
use lapin::{BasicProperties, Channel, Confirmation};

/// No properties.
fn props() -> BasicProperties {
    BasicProperties::default()
}

/// Publishes to a queue through the default exchange (and waits for the confirm
/// when the channel is in confirm mode).
async fn publish_with(ch: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    let confirm = try_publish(ch, "", queue, false, body, properties)
        .await
        .expect("publish");
    assert!(!matches!(confirm, Confirmation::Nack(_)), "{confirm:?}");
}

/// [`publish_with`] without properties.
async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_with(ch, queue, body, props()).await;
}

/// Publishes bodies `[0]`, `[1]`, ... `[n-1]`.
async fn publish_n(ch: &Channel, queue: &str, n: u8) {
    for i in 0..n {
        publish(ch, queue, &[i]).await;
    }
}

/// basic.get, to be acked; None when the queue is empty.
async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
}

/// basic.get of a message that must be there.
async fn get_some(ch: &Channel, queue: &str) -> BasicGetMessage {
    get(ch, queue).await.expect("a message")
}

/// Ready messages of a queue, from a passive declare on a fresh channel.
async fn ready(client: &Client, queue: &str) -> u32 {
    counts(client, queue).await.0
}

/// Polls until the queue has `n` ready messages.
async fn eventually_ready(client: &Client, queue: &str, n: u32) {
    let now = eventually(n, async || ready(client, queue).await).await;
    assert_eq!(now, n, "queue '{queue}' has {now} ready, expected {n}");
}

/// A broker, a client, and a channel in confirm mode on which each queue was
/// declared and then given bodies `[0]`, `[1]`, ... `[n-1]`.
async fn with_messages(queues: &[(&str, u8)]) -> (TestBroker, Client, Channel) {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    for (queue, _) in queues {
        declare_queue(&ch, queue).await;
    }
    for (queue, n) in queues {
        publish_n(&ch, queue, *n).await;
    }
    (broker, client, ch)
}

/// basic.ack of one delivery.
fn ack() -> BasicAckOptions {
    BasicAckOptions::default()
}

/// basic.ack of every delivery up to the tag.
fn ack_multiple() -> BasicAckOptions {
    BasicAckOptions { multiple: true }
}

/// basic.nack of one delivery, back into its queue.
fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        multiple: false,
        requeue: true,
    }
}

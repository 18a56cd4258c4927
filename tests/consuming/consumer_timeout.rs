//! The delivery acknowledgement timeout: a delivery held unacknowledged longer
//! than its consumer timeout closes its channel with RabbitMQ's 406, and every
//! delivery the channel held goes back to its queue. Precedence: the
//! consumer's `x-consumer-timeout`, else the queue's, else the broker's
//! `consumer_timeout`. The broker checks once a second, so these tests wait a
//! second or two of real time.

use std::time::Duration;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

use crate::common::lapin::{Client, consume, declare_queue, next_delivery, table};
use crate::common::start_with;
use crate::{get_some, publish};

fn timed_out(channel: u16, ms: u64) -> (u16, String) {
    (
        406,
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. Timeout value used: {ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
        ),
    )
}

fn timeout_arg(ms: i64) -> FieldTable {
    table(&[("x-consumer-timeout", AMQPValue::LongLongInt(ms))])
}

#[tokio::test]
async fn the_broker_timeout_closes_the_channel_and_requeues() {
    let broker = start_with(|c| c.consumer_timeout = 1000).await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "q", b"held").await;
    let mut consumer = consume(&ch, "q").await;
    let held = next_delivery(&mut consumer).await;
    assert!(!held.redelivered);
    assert_eq!(client.exception().await, timed_out(ch.id(), 1000));
    // The unacknowledged message is back, redelivered.
    let ch = client.channel().await;
    let back = get_some(&ch, "q").await;
    assert_eq!(back.delivery.data, b"held");
    assert!(back.delivery.redelivered);
}

#[tokio::test]
async fn a_queue_timeout_applies_to_basic_get_too() {
    let broker = start_with(|_| {}).await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    ch.queue_declare(
        "slow".into(),
        QueueDeclareOptions::default(),
        timeout_arg(1000),
    )
    .await
    .expect("declare with x-consumer-timeout");
    publish(&ch, "slow", b"m").await;
    get_some(&ch, "slow").await;
    assert_eq!(client.exception().await, timed_out(ch.id(), 1000));
}

#[tokio::test]
async fn a_consumer_timeout_wins_over_the_queue_and_acks_in_time_keep_the_channel() {
    let broker = start_with(|c| c.consumer_timeout = 1000).await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        timeout_arg(1000),
    )
    .await
    .expect("declare");
    publish(&ch, "q", b"a").await;
    publish(&ch, "q", b"b").await;
    let mut consumer = ch
        .basic_consume(
            "q".into(),
            "patient".into(),
            BasicConsumeOptions::default(),
            timeout_arg(60_000),
        )
        .await
        .expect("consume");
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    // Past the queue's and the broker's timeout, within the consumer's.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.ack(BasicAckOptions::default()).await.expect("ack");
    second.ack(BasicAckOptions::default()).await.expect("ack");
    // The channel is still open: a round trip on it answers.
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("channel still open");
    client.close().await;
}

#[tokio::test]
async fn a_bad_consumer_timeout_argument_is_refused() {
    let broker = start_with(|_| {}).await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    let refused = ch
        .basic_consume(
            "q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            table(&[("x-consumer-timeout", AMQPValue::LongString("soon".into()))]),
        )
        .await;
    assert!(refused.is_err());
    let (code, text) = client.exception().await;
    assert_eq!(code, 406);
    assert!(text.contains("x-consumer-timeout"), "{text}");
}

#[tokio::test]
async fn a_policy_consumer_timeout_applies_to_new_consumers() {
    use warren::policy::{PolicyDef, PolicyKind};
    let broker = start_with(|_| {}).await;
    let body = serde_json::json!({"pattern": "^slow$", "definition": {"consumer-timeout": 1000}});
    let def = PolicyDef::parse(PolicyKind::Policy, "/", "timeout", &body).expect("valid");
    broker
        .broker
        .put_policy(PolicyKind::Policy, def)
        .expect("policy set");
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "slow").await;
    publish(&ch, "slow", b"held").await;
    let mut consumer = consume(&ch, "slow").await;
    next_delivery(&mut consumer).await;
    assert_eq!(client.exception().await, timed_out(ch.id(), 1000));
}

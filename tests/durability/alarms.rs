//! Resource alarms: over the memory limit, a connection that publishes is told
//! connection.blocked and is no longer read (its next publish waits), while a
//! connection that only consumes goes on; below it again, connection.unblocked
//! and the waiting publish goes through.

use std::time::Duration;

use super::common::lapin::{Client, counts, declare_queue};
use super::common::{eventually, start_with};
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicPublishOptions};

#[tokio::test]
async fn a_memory_alarm_blocks_publishers_and_lets_consumers_drain() {
    // Any resident memory is over a 1-byte limit: the alarm goes on at the first check.
    let broker = start_with(|c| c.memory_limit = "1".into()).await;
    let consumer = Client::connect(&broker).await;
    let publisher = Client::connect(&broker).await;
    let ch = publisher.confirming().await;
    declare_queue(&ch, "q").await;
    let first = ch
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"1",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    let first = tokio::time::timeout(super::common::WAIT, first).await;
    assert!(
        first.expect("in time").expect("confirm").is_ack(),
        "read before the block"
    );
    let blocked = eventually(true, async || publisher.status().blocked()).await;
    assert!(blocked, "the publisher hears connection.blocked");

    // lapin holds publishes on a blocked connection, so this one waits in a task.
    let publishing = ch.clone();
    let second = tokio::spawn(async move {
        publishing
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"2",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
    });
    // The consuming connection is served: it takes the first message.
    let get = consumer.channel().await;
    let message = get
        .basic_get("q".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the first message");
    assert_eq!(message.delivery.data, b"1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        counts(&consumer, "q").await.0,
        0,
        "the second publish is not read"
    );

    broker.broker.alarms.set_memory_limit(u64::MAX);
    let unblocked = eventually(false, async || publisher.status().blocked()).await;
    assert!(!unblocked, "the publisher hears connection.unblocked");
    let confirm = tokio::time::timeout(super::common::WAIT, second)
        .await
        .expect("the waiting publish goes through")
        .expect("task");
    assert!(confirm.is_ack());
    assert_eq!(counts(&consumer, "q").await.0, 1);
}

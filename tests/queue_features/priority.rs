//! Priority queues (`x-max-priority`): higher priorities first, FIFO within a
//! priority, priorities above the maximum ordered as the maximum.

use lapin::BasicProperties;
use lapin::options::*;

use crate::common::lapin::consume;
use crate::common::lapin::next_delivery;
use crate::{declare, drain, get_some, int, nack, publish_with, setup};

fn priority(p: u8) -> BasicProperties {
    BasicProperties::default().with_priority(p)
}

#[tokio::test]
async fn higher_priorities_first_and_fifo_within_a_priority() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-priority", int(10))]).await;
    for (p, body) in [(1, "a"), (5, "b"), (1, "c"), (5, "d"), (0, "e"), (10, "f")] {
        publish_with(&ch, "q", body.as_bytes(), priority(p)).await;
    }
    publish_with(&ch, "q", b"g", BasicProperties::default()).await;
    let order: Vec<String> = drain(&ch, "q")
        .await
        .into_iter()
        .map(|b| String::from_utf8(b).expect("utf8"))
        .collect();
    assert_eq!(order, ["f", "b", "d", "a", "c", "e", "g"]);
}

/// A priority above the maximum is ordered as the maximum (FIFO with it), and
/// the message keeps the priority it was published with.
#[tokio::test]
async fn a_priority_above_the_maximum_counts_as_the_maximum() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-priority", int(5))]).await;
    publish_with(&ch, "q", b"low", priority(1)).await;
    publish_with(&ch, "q", b"at max", priority(5)).await;
    publish_with(&ch, "q", b"above max", priority(200)).await;
    let first = get_some(&ch, "q").await.delivery;
    assert_eq!(first.data, b"at max");
    let second = get_some(&ch, "q").await.delivery;
    assert_eq!(second.data, b"above max");
    assert_eq!(*second.properties.priority(), Some(200));
    assert_eq!(get_some(&ch, "q").await.delivery.data, b"low");
}

#[tokio::test]
async fn without_max_priority_priorities_are_ignored() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[]).await;
    publish_with(&ch, "q", b"a", priority(1)).await;
    publish_with(&ch, "q", b"b", priority(9)).await;
    assert_eq!(drain(&ch, "q").await, [b"a".to_vec(), b"b".to_vec()]);
}

/// Requeued messages go back to their place within their priority.
#[tokio::test]
async fn a_requeued_message_returns_to_its_place_within_its_priority() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-priority", int(10))]).await;
    publish_with(&ch, "q", b"a", priority(5)).await;
    publish_with(&ch, "q", b"b", priority(5)).await;
    publish_with(&ch, "q", b"c", priority(1)).await;
    let a = get_some(&ch, "q").await.delivery;
    let b = get_some(&ch, "q").await.delivery;
    publish_with(&ch, "q", b"d", priority(5)).await;
    b.nack(nack(true)).await.expect("requeue b");
    a.nack(nack(true)).await.expect("requeue a");
    assert_eq!(
        drain(&ch, "q").await,
        [b"a".to_vec(), b"b".to_vec(), b"d".to_vec(), b"c".to_vec()]
    );
}

/// A consumer gets a backlog in priority order too.
#[tokio::test]
async fn consumers_get_the_backlog_in_priority_order() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-max-priority", int(3))]).await;
    for (p, body) in [(0, "a"), (3, "b"), (1, "c")] {
        publish_with(&ch, "q", body.as_bytes(), priority(p)).await;
    }
    let consumer_ch = client.channel().await;
    let mut consumer = consume(&consumer_ch, "q").await;
    for body in ["b", "c", "a"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, body.as_bytes());
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

//! The shortest path a backend team's worker takes: declare, publish, consume, ack.

mod common;

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::test]
async fn publish_consume_ack_roundtrip() {
    let broker = common::start().await;
    let conn = Connection::connect(&broker.uri(""), ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            "work".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    assert_eq!(q.name().as_str(), "work");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm");
    for i in 0..10u8 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "work".into(),
                BasicPublishOptions::default(),
                &[i],
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }
    let again = ch
        .queue_declare(
            "work".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive");
    assert_eq!(again.message_count(), 10);
    let mut consumer = ch
        .basic_consume(
            "work".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for i in 0..10u8 {
        let delivery = tokio::time::timeout(common::WAIT, consumer.next())
            .await
            .expect("in time")
            .expect("stream open")
            .expect("delivery");
        assert_eq!(delivery.data, vec![i]);
        assert!(!delivery.redelivered);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let empty = ch
        .queue_declare(
            "work".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive");
    assert_eq!(empty.message_count(), 0);
    conn.close(200, "bye".into()).await.expect("close");
}

//! Stream queues (`x-queue-type=stream`) as 0-9-1 clients see them.

#[path = "../common/mod.rs"]
mod common;

use common::lapin::{Client, next_delivery, publish_acked, table, text};
use common::start;
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

fn offset_of(d: &lapin::message::Delivery) -> i64 {
    match d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-stream-offset"))
    {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("x-stream-offset: {other:?}"),
    }
}

#[tokio::test]
async fn two_consumers_read_the_same_messages_from_first() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    ch.queue_declare(
        "s".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table(&[("x-queue-type", text("stream"))]),
    )
    .await
    .expect("declare");
    for i in 0..5u8 {
        publish_acked(&ch, "", "s", &[i], BasicProperties::default()).await;
    }
    for tag in ["a", "b"] {
        let c = client.channel().await;
        c.basic_qos(2, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut consumer = c
            .basic_consume(
                "s".into(),
                tag.into(),
                BasicConsumeOptions::default(),
                table(&[("x-stream-offset", text("first"))]),
            )
            .await
            .expect("consume");
        for i in 0..5u8 {
            let d = next_delivery(&mut consumer).await;
            assert_eq!(d.data, vec![i]);
            assert_eq!(offset_of(&d), i64::from(i));
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    let _ = FieldTable::default();
}

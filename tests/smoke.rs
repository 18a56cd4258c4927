//! The shortest path a backend team's worker takes: declare, publish, consume, ack.

mod common;

use common::lapin::{
    confirming, connect, consume, counts, declare_queue, next_delivery, publish_acked,
};
use lapin::BasicProperties;
use lapin::options::BasicAckOptions;

#[tokio::test]
async fn publish_consume_ack_roundtrip() {
    let broker = common::start().await;
    let conn = connect(&broker.uri("")).await;
    let ch = confirming(&conn).await;
    let q = declare_queue(&ch, "work").await;
    assert_eq!(q.name().as_str(), "work");
    for i in 0..10u8 {
        publish_acked(&ch, "", "work", &[i], BasicProperties::default()).await;
    }
    assert_eq!(counts(&conn, "work").await.0, 10);
    let mut consumer = consume(&ch, "work").await;
    for i in 0..10u8 {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, vec![i]);
        assert!(!delivery.redelivered);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_eq!(counts(&conn, "work").await.0, 0);
    conn.close(200, "bye".into()).await.expect("close");
}

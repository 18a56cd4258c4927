//! Transactions: publishes and settlements take effect at commit, and not at all
//! on rollback or when the channel closes.

use lapin::options::*;

use crate::common::lapin::{Client, amqp_error, consume, declare_queue, next_delivery};
use crate::common::start;
use crate::{ack, eventually_ready, get_some, publish, publish_n, ready, requeue, with_messages};

#[tokio::test]
async fn tx_publishes_appear_at_commit_and_vanish_at_rollback() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    ch.tx_select().await.expect("tx.select");
    publish_n(&ch, "q", 3).await;
    assert_eq!(ready(&client, "q").await, 0, "invisible before commit");
    ch.tx_commit().await.expect("commit");
    assert_eq!(ready(&client, "q").await, 3);
    publish(&ch, "q", b"rolled back").await;
    ch.tx_rollback().await.expect("rollback");
    ch.tx_commit().await.expect("empty commit");
    assert_eq!(ready(&client, "q").await, 3);
    client.close().await;
}

#[tokio::test]
async fn tx_acks_apply_at_commit_and_are_undone_by_rollback() {
    let (_broker, client, _pub_ch) = with_messages(&[("q", 3)]).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    for _ in 0..3 {
        get_some(&ch, "q").await;
    }
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.tx_rollback().await.expect("rollback");
    // Rolled back: tag 1 is unacked again and can be acked (or nacked) anew.
    ch.basic_ack(1, ack()).await.expect("ack again");
    ch.basic_nack(2, requeue()).await.expect("nack");
    assert_eq!(
        ready(&client, "q").await,
        0,
        "nothing settled before commit"
    );
    ch.tx_commit().await.expect("commit");
    // Tag 2 is back in the queue; tag 3 is still out.
    assert_eq!(ready(&client, "q").await, 1);
    ch.close(200, "done".into()).await.expect("close");
    // Closing requeues tag 3; tag 1 was acked for good.
    assert_eq!(ready(&client, "q").await, 2);
    let ch = client.channel().await;
    assert_eq!(get_some(&ch, "q").await.delivery.data, [1]);
    assert_eq!(get_some(&ch, "q").await.delivery.data, [2]);
    client.close().await;
}

#[tokio::test]
async fn uncommitted_settlements_are_forgotten_when_the_channel_closes() {
    let (_broker, client, _pub_ch) = with_messages(&[("q", 3)]).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..3 {
        next_delivery(&mut consumer).await;
    }
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.basic_reject(2, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    // A tag settled in the open transaction is settled for this channel already.
    ch.basic_qos(0, BasicQosOptions::default())
        .await
        .expect("round trip");
    ch.close(200, "done".into()).await.expect("close");
    // Nothing was committed: all three come back, in order.
    eventually_ready(&client, "q", 3).await;
    let ch = client.channel().await;
    for i in 0..3u8 {
        let got = get_some(&ch, "q").await;
        assert_eq!((got.delivery.data[0], got.delivery.redelivered), (i, true));
    }
    client.close().await;
}

#[tokio::test]
async fn a_tag_settled_in_an_open_transaction_cannot_be_settled_again() {
    let (_broker, mut client, _pub_ch) = with_messages(&[("q", 1)]).await;
    let ch = client.channel().await;
    ch.tx_select().await.expect("tx.select");
    get_some(&ch, "q").await;
    ch.basic_ack(1, ack()).await.expect("ack");
    ch.basic_ack(1, ack()).await.expect("ack again");
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_owned()
        )
    );
    // The failed channel took its uncommitted ack with it.
    eventually_ready(&client, "q", 1).await;
    client.close().await;
}

#[tokio::test]
async fn commit_or_rollback_without_select_is_406() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let not_tx = (
        406,
        "PRECONDITION_FAILED - channel is not transactional".to_owned(),
    );
    let ch = client.channel().await;
    assert_eq!(
        amqp_error(&ch.tx_commit().await.expect_err("commit")),
        not_tx
    );
    let ch = client.channel().await;
    assert_eq!(
        amqp_error(&ch.tx_rollback().await.expect_err("rollback")),
        not_tx
    );
    client.close().await;
}

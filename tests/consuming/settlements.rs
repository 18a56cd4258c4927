//! Acks, nacks, rejects and recover: what they settle, where requeued messages
//! go, and what comes back when a channel or connection goes.

use lapin::Channel;
use lapin::options::*;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, basic};

use crate::common::lapin::{Client, consume, declare_queue, next_delivery};
use crate::common::raw::{RawClient, Seen};
use crate::common::start;
use crate::{
    ack, ack_multiple, eventually_ready, get, get_some, publish, ready, requeue, with_messages,
};

/// (first body octet, redelivered) of each of the next `n` messages basic.get takes.
async fn take(ch: &Channel, queue: &str, n: usize) -> Vec<(u8, bool)> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let got = get_some(ch, queue).await;
        taken.push((got.delivery.data[0], got.delivery.redelivered));
    }
    taken
}

#[tokio::test]
async fn ack_multiple_settles_up_to_the_tag() {
    let (_broker, client, ch) = with_messages(&[("q", 4)]).await;
    for _ in 0..4 {
        get_some(&ch, "q").await;
    }
    ch.basic_ack(3, ack_multiple()).await.expect("ack 1..=3");
    ch.close(200, "done".into()).await.expect("close");
    // Only the 4th was left unacked and comes back.
    eventually_ready(&client, "q", 1).await;
    let ch = client.channel().await;
    let back = get_some(&ch, "q").await;
    assert_eq!(
        (back.delivery.data[0], back.delivery.redelivered),
        (3, true)
    );
    client.close().await;
}

#[tokio::test]
async fn ack_of_tag_zero_with_multiple_settles_everything() {
    let (_broker, client, ch) = with_messages(&[("q", 5)]).await;
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..5 {
        next_delivery(&mut consumer).await;
    }
    ch.basic_ack(0, ack_multiple()).await.expect("ack all");
    ch.close(200, "done".into()).await.expect("close");
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn nack_multiple_with_requeue_redelivers_in_order() {
    let (_broker, client, ch) = with_messages(&[("q", 3)]).await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, false));
    }
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .expect("nack");
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
        assert_eq!(d.delivery_tag, 4 + u64::from(i));
        d.ack(ack()).await.expect("ack");
    }
    // nack without requeue drops.
    publish(&ch, "q", b"drop me").await;
    let d = next_delivery(&mut consumer).await;
    d.nack(BasicNackOptions {
        multiple: false,
        requeue: false,
    })
    .await
    .expect("nack");
    ch.close(200, "done".into()).await.expect("close");
    assert_eq!(ready(&client, "q").await, 0);
    client.close().await;
}

#[tokio::test]
async fn reject_requeues_or_drops_one() {
    let (_broker, client, ch) = with_messages(&[("q", 2)]).await;
    let first = get_some(&ch, "q").await;
    let second = get_some(&ch, "q").await;
    first
        .delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("reject");
    second
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let back = get_some(&ch, "q").await;
    assert_eq!(
        (back.delivery.data[0], back.delivery.redelivered),
        (0, true)
    );
    assert_eq!(back.message_count, 0);
    assert!(get(&ch, "q").await.is_none(), "the rejected one is gone");
    client.close().await;
}

#[tokio::test]
async fn unknown_repeated_or_foreign_tags_are_406() {
    let (_broker, mut client, _pub_ch) = with_messages(&[("q", 3)]).await;
    let unknown = |tag: u64| {
        (
            406,
            format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
        )
    };

    let ch = client.channel().await;
    ch.basic_ack(42, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(42));
    // The message of an aborted channel goes back to the queue.
    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_ack(1, ack()).await.expect("sent");
    ch.basic_ack(1, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(1));

    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_reject(1, BasicRejectOptions { requeue: true })
        .await
        .expect("sent");
    ch.basic_nack(1, requeue()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(1));

    // Tags belong to their channel.
    let owner = client.channel().await;
    let other = client.channel().await;
    get_some(&owner, "q").await;
    other.basic_ack(1, ack()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(1));
    // A multiple ack naming an unknown tag is refused too.
    let ch = client.channel().await;
    get_some(&ch, "q").await;
    ch.basic_ack(7, ack_multiple()).await.expect("sent");
    assert_eq!(client.exception().await, unknown(7));
    client.close().await;
}

#[tokio::test]
async fn requeue_puts_a_message_back_at_its_original_position() {
    let (_broker, client, ch) = with_messages(&[("q", 5)]).await;
    for i in 0..3u8 {
        assert_eq!(get_some(&ch, "q").await.delivery.data, [i]);
    }
    // Nack the 2nd (tag 2): it goes back ahead of the 4th and 5th.
    ch.basic_nack(2, requeue()).await.expect("nack");
    assert_eq!(take(&ch, "q", 3).await, [(1, true), (3, false), (4, false)]);
    client.close().await;
}

#[tokio::test]
async fn recover_requeues_everything_unacked() {
    let (_broker, mut client, ch) = with_messages(&[("q", 3)]).await;
    get_some(&ch, "q").await;
    get_some(&ch, "q").await;
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .expect("recover");
    assert_eq!(take(&ch, "q", 3).await, [(0, true), (1, true), (2, false)]);
    // The old tags are gone with the recover; new ones continue the sequence.
    ch.basic_ack(5, ack_multiple()).await.expect("ack");
    assert_eq!(ready(&client, "q").await, 0);
    let ch = client.channel().await;
    let _ = ch
        .basic_recover(BasicRecoverOptions { requeue: false })
        .await;
    assert_eq!(
        client.exception().await,
        (540, "NOT_IMPLEMENTED - requeue=false".to_owned())
    );
}

#[tokio::test]
async fn unacked_deliveries_return_when_their_channel_or_connection_closes() {
    let (broker, client, _pub_ch) = with_messages(&[("q", 3)]).await;

    // Channel close.
    let ch = client.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for _ in 0..3 {
        next_delivery(&mut consumer).await;
    }
    ch.close(200, "done".into()).await.expect("close channel");
    // Connection close.
    let second = Client::connect(&broker).await;
    let ch = second.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
    }
    second.close().await;

    let ch = client.channel().await;
    let mut consumer = consume(&ch, "q").await;
    for i in 0..3u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((d.data[0], d.redelivered), (i, true));
        d.ack(ack()).await.expect("ack");
    }
    client.close().await;
}

#[tokio::test]
async fn unacked_deliveries_of_a_dead_connection_go_to_another_consumer() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    publish(&ch, "q", b"work").await;

    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.send_method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "raw".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: Default::default(),
        })),
    )
    .await;
    let mut delivered = false;
    while !delivered {
        match raw.next().await {
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))) => {}
            Seen::Frame(Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d)))) => {
                assert!(!d.redelivered);
                delivered = true;
            }
            other => panic!("expected consume-ok and a delivery, got {other:?}"),
        }
    }
    // The consumer's connection dies without connection.close.
    drop(raw);
    let mut consumer = consume(&ch, "q").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!((&d.data[..], d.redelivered), (&b"work"[..], true));
    client.close().await;
}

//! What a stream does not do over 0-9-1: basic.get, nack, reject, recover,
//! purge (connection close 540), unknown delivery tags (406), and
//! queue.delete with a consumer attached.

use futures_util::StreamExt;
use lapin::options::*;

use crate::{Conn, Target, consumer_from, declare_stream, publish_range, reference, take, target};

/// The stream, the connection, the consumer's channel, its deliveries, the consumer.
type Held = (
    String,
    Conn,
    lapin::Channel,
    Vec<lapin::message::Delivery>,
    lapin::Consumer,
);

/// A stream of 4 messages and a consumer holding 2 unacked deliveries.
async fn holding(t: &Target, base: &str) -> Held {
    let q = t.name(base);
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..4).await;
    let c = conn.channel().await;
    c.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = crate::try_consume(
        &c,
        &q,
        "",
        &[("x-stream-offset", crate::common::lapin::text("first"))],
    )
    .await
    .expect("consume");
    let got = take(&mut consumer, 2, false).await;
    (q, conn, c, got, consumer)
}

fn not_supported(t: &Target, what: &str, q: &str) -> (u16, String) {
    (
        540,
        format!(
            "NOT_IMPLEMENTED - {what} not supported by stream queues {}",
            t.res(q)
        ),
    )
}

#[tokio::test]
async fn basic_get_closes_the_connection() {
    let t = target().await;
    for no_ack in [false, true] {
        let q = t.name("get");
        let mut conn = t.conn().await;
        let ch = conn.confirming().await;
        declare_stream(&ch, &q, &[]).await;
        publish_range(&ch, &q, 0..1).await;
        let result = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack })
            .await;
        assert_eq!(
            conn.refusal(result).await,
            not_supported(&t, "basic.get", &q)
        );
        t.cleanup(&[&q]).await;
    }
}

#[tokio::test]
async fn nack_and_reject_close_the_connection() {
    let t = target().await;
    for how in ["nack", "nack-no-requeue", "reject", "reject-no-requeue"] {
        let (q, mut conn, c, got, _consumer) = holding(&t, "k1").await;
        let tag = got[0].delivery_tag;
        let requeue = !how.ends_with("no-requeue");
        let _ = if how.starts_with("nack") {
            c.basic_nack(
                tag,
                BasicNackOptions {
                    multiple: false,
                    requeue,
                },
            )
            .await
        } else {
            c.basic_reject(tag, BasicRejectOptions { requeue }).await
        };
        assert_eq!(
            conn.exception().await,
            not_supported(&t, "basic.nack and basic.reject", &q),
            "{how}"
        );
        t.cleanup(&[&q]).await;
    }
}

#[tokio::test]
async fn recover_with_unacked_stream_deliveries_closes_the_connection() {
    // RabbitMQ 3.10.8 crashes (541); Warren answers 540 as for nack.
    if reference() {
        return;
    }
    let t = target().await;
    let (q, mut conn, c, _got, _consumer) = holding(&t, "rec").await;
    let result = c.basic_recover(BasicRecoverOptions { requeue: true }).await;
    assert_eq!(
        conn.refusal(result).await,
        not_supported(&t, "basic.recover", &q)
    );
}

#[tokio::test]
async fn purge_closes_the_connection() {
    let t = target().await;
    let q = t.name("ch1");
    let mut conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..2).await;
    let result = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await;
    assert_eq!(
        conn.refusal(result).await,
        not_supported(&t, "queue.purge", &q)
    );
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn unknown_delivery_tags_are_a_channel_error() {
    let t = target().await;
    for tag in [99u64, 1] {
        let (q, mut conn, c, got, _consumer) = holding(&t, "tags").await;
        if tag == 1 {
            // The second ack of the same tag is the unknown one.
            got[0].ack(BasicAckOptions::default()).await.expect("ack");
        }
        c.basic_ack(tag, BasicAckOptions::default())
            .await
            .expect("ack sent");
        assert_eq!(
            conn.exception().await,
            (
                406,
                format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
            )
        );
        // A channel error: the connection goes on.
        let ch = conn.channel().await;
        ch.basic_qos(1, BasicQosOptions::default())
            .await
            .expect("qos");
        t.cleanup(&[&q]).await;
    }
}

#[tokio::test]
async fn an_ack_after_cancel_is_accepted() {
    let t = target().await;
    let (q, conn, c, got, consumer) = holding(&t, "cancel").await;
    let tag = consumer.tag().as_str().to_owned();
    c.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    for d in &got {
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // The channel is still open.
    c.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("channel still open");
    drop(conn);
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn delete_with_a_consumer_cancels_it() {
    let t = target().await;
    let q = t.name("del");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..5).await;
    let (c, mut consumer) = consumer_from(&conn, &q, "first").await;
    take(&mut consumer, 5, true).await;
    let count = ch
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(count, 0);
    // The server's basic.cancel ends the consumer.
    let end = tokio::time::timeout(crate::common::WAIT, consumer.next())
        .await
        .expect("cancelled in time");
    assert!(end.is_none(), "{end:?}");
    // The consumer's channel stays open.
    c.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("channel still open");
}

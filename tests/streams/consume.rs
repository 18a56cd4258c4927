//! basic.consume on a stream: what it needs (prefetch, acks), where it starts
//! (`x-stream-offset`), what each delivery carries, prefetch as credit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::*;
use lapin::types::AMQPValue;

use crate::common::lapin::text;
use crate::{
    bodies, body, consumer_from, consumer_on, declare_stream, names, nothing_more, offset_of,
    publish_range, reference, take, target, try_consume,
};

#[tokio::test]
async fn consume_needs_a_per_consumer_prefetch_and_acks() {
    let t = target().await;
    let q = t.name("c1");
    let mut conn = t.conn().await;
    declare_stream(&conn.channel().await, &q, &[]).await;
    let not_set = (
        406,
        format!(
            "PRECONDITION_FAILED - consumer prefetch count is not set for '{}'",
            t.res(&q)
        ),
    );
    // No basic.qos at all.
    let ch = conn.channel().await;
    let result = try_consume(&ch, &q, "", &[]).await;
    assert_eq!(conn.refusal(result).await, not_set);
    // basic.qos(0) explicitly.
    let ch = conn.channel().await;
    ch.basic_qos(0, BasicQosOptions::default())
        .await
        .expect("qos");
    let result = try_consume(&ch, &q, "", &[]).await;
    assert_eq!(conn.refusal(result).await, not_set);
    // no-ack without a prefetch: the prefetch is checked first.
    let ch = conn.channel().await;
    let result = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    assert_eq!(conn.refusal(result).await, not_set);
    // Only a global prefetch: it does not count.
    let ch = conn.channel().await;
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("qos");
    let result = try_consume(&ch, &q, "", &[]).await;
    assert_eq!(conn.refusal(result).await, not_set);
    // x-priority is refused.
    let ch = conn.channel().await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let result = try_consume(&ch, &q, "", &[("x-priority", AMQPValue::LongInt(10))]).await;
    assert_eq!(
        conn.refusal(result).await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-priority' for {} of queue type rabbit_stream_queue",
                t.res(&q)
            )
        )
    );
    // The connection is still fine after channel errors.
    assert!(conn.status().connected());
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn automatic_acknowledgement_closes_the_connection() {
    let t = target().await;
    let q = t.name("c1");
    let mut conn = t.conn().await;
    declare_stream(&conn.channel().await, &q, &[]).await;
    let ch = conn.channel().await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let result = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    assert_eq!(
        conn.refusal(result).await,
        (
            540,
            format!(
                "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues {}",
                t.res(&q)
            )
        )
    );
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn a_global_prefetch_beside_the_consumer_prefetch_closes_the_connection() {
    let t = target().await;
    let q = t.name("k1");
    let mut conn = t.conn().await;
    declare_stream(&conn.channel().await, &q, &[]).await;
    let ch = conn.channel().await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("qos");
    let result = try_consume(&ch, &q, "", &[]).await;
    assert_eq!(
        conn.refusal(result).await,
        (
            540,
            format!(
                "NOT_IMPLEMENTED - {} does not support global qos",
                t.res(&q)
            )
        )
    );
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn where_x_stream_offset_starts() {
    let t = target().await;
    let q = t.name("offsets");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..10).await;
    let from = |offset: AMQPValue| [("x-stream-offset", offset)];
    // first, and numeric offsets (a negative one starts at the beginning).
    for (offset, start) in [
        (text("first"), 0),
        (AMQPValue::LongInt(3), 3),
        (AMQPValue::LongInt(0), 0),
        (AMQPValue::LongInt(-1), 0),
        (AMQPValue::LongLongInt(7), 7),
        (text("1h"), 0),
        (text("1D"), 0),
        (text("1Y"), 0),
    ] {
        let (c, mut consumer) = consumer_on(&conn, &q, 20, &from(offset.clone())).await;
        let n = 10 - start;
        assert_eq!(
            bodies(&mut consumer, n as usize).await,
            names(start..10),
            "{offset:?}"
        );
        nothing_more(&mut consumer).await;
        let _ = c.close(200, "done".into()).await;
    }
    // last: the last chunk (one message per confirmed publish here).
    let (_l, mut last) = consumer_from(&conn, &q, "last").await;
    assert_eq!(bodies(&mut last, 1).await, names(9..10));
    // next and absent: only what comes after.
    let (_n, mut next) = consumer_from(&conn, &q, "next").await;
    let (_a, mut absent) = consumer_on(&conn, &q, 20, &[]).await;
    nothing_more(&mut next).await;
    nothing_more(&mut absent).await;
    publish_range(&ch, &q, 10..11).await;
    for consumer in [&mut next, &mut absent, &mut last] {
        let d = take(consumer, 1, true).await;
        assert_eq!((body(&d[0]), offset_of(&d[0])), ("m10".to_owned(), 10));
    }
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn timestamp_offsets_are_seconds() {
    let t = target().await;
    let q = t.name("ts");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let before = now() - 60;
    publish_range(&ch, &q, 0..3).await;
    // A second boundary after the first batch, before the second one.
    let boundary = now() + 1;
    while now() < boundary {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_range(&ch, &q, 3..6).await;
    let at = |ts: u64| [("x-stream-offset", AMQPValue::Timestamp(ts))];
    let (_a, mut all) = consumer_on(&conn, &q, 20, &at(before)).await;
    assert_eq!(bodies(&mut all, 6).await, names(0..6));
    let (_b, mut second) = consumer_on(&conn, &q, 20, &at(boundary)).await;
    assert_eq!(bodies(&mut second, 3).await, names(3..6));
    nothing_more(&mut second).await;
    let (_f, mut future) = consumer_on(&conn, &q, 20, &at(now() + 3600)).await;
    nothing_more(&mut future).await;
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn invalid_offsets_are_refused_with_the_value() {
    let t = target().await;
    let q = t.name("c1");
    let mut conn = t.conn().await;
    declare_stream(&conn.channel().await, &q, &[]).await;
    for bad in ["0s", "1H", "1h30m", "3"] {
        let ch = conn.channel().await;
        ch.basic_qos(2, BasicQosOptions::default())
            .await
            .expect("qos");
        let result = try_consume(&ch, &q, "", &[("x-stream-offset", text(bad))]).await;
        assert_eq!(
            conn.refusal(result).await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for {}: {{invalid_stream_offset_arg,{{longstr,<<\"{bad}\">>}}}}",
                    t.res(&q)
                )
            )
        );
    }
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn a_past_the_end_offset_clamps_to_the_end() {
    // RabbitMQ 3.10.8 waits for the offset to exist; its docs (and Warren) clamp.
    if reference() {
        return;
    }
    let t = target().await;
    let q = t.name("end");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..3).await;
    let (_c, mut consumer) = consumer_on(
        &conn,
        &q,
        5,
        &[("x-stream-offset", AMQPValue::LongInt(1000))],
    )
    .await;
    nothing_more(&mut consumer).await;
    publish_range(&ch, &q, 3..4).await;
    let d = take(&mut consumer, 1, true).await;
    assert_eq!((body(&d[0]), offset_of(&d[0])), ("m3".to_owned(), 3));
}

#[tokio::test]
async fn prefetch_is_credit_and_acks_remove_nothing() {
    let t = target().await;
    let q = t.name("credit");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..10).await;
    let (c, mut consumer) = consumer_on(&conn, &q, 2, &[("x-stream-offset", text("first"))]).await;
    let got = take(&mut consumer, 2, false).await;
    nothing_more(&mut consumer).await;
    // A multiple ack of tag 2 returns two credits.
    c.basic_ack(got[1].delivery_tag, BasicAckOptions { multiple: true })
        .await
        .expect("ack");
    let got = take(&mut consumer, 2, false).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), names(2..4));
    nothing_more(&mut consumer).await;
    // A single ack of the last one returns one.
    got[1].ack(BasicAckOptions::default()).await.expect("ack");
    let one = take(&mut consumer, 1, false).await;
    assert_eq!(body(&one[0]), "m4");
    assert!(!one[0].redelivered);
    nothing_more(&mut consumer).await;
    // Acks removed nothing: another consumer reads everything from first.
    let (_c2, mut again) = consumer_from(&conn, &q, "first").await;
    let all = take(&mut again, 10, true).await;
    assert_eq!(all.iter().map(body).collect::<Vec<_>>(), names(0..10));
    assert!(all.iter().all(|d| !d.redelivered));
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn two_consumers_on_one_channel_have_their_own_prefetch() {
    let t = target().await;
    let q = t.name("two");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..10).await;
    let c = conn.channel().await;
    c.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let first = [("x-stream-offset", text("first"))];
    let mut a = try_consume(&c, &q, "a", &first).await.expect("consume a");
    let got_a = take(&mut a, 2, false).await;
    nothing_more(&mut a).await;
    let mut b = try_consume(&c, &q, "b", &first).await.expect("consume b");
    let got_b = take(&mut b, 2, false).await;
    nothing_more(&mut b).await;
    nothing_more(&mut a).await;
    assert_eq!(got_a.iter().map(body).collect::<Vec<_>>(), names(0..2));
    assert_eq!(got_b.iter().map(body).collect::<Vec<_>>(), names(0..2));
    // Delivery tags are the channel's: a has 1, 2 and b 3, 4.
    let tags: Vec<u64> = got_a.iter().chain(&got_b).map(|d| d.delivery_tag).collect();
    assert_eq!(tags, vec![1, 2, 3, 4]);
    // b's acks give b credit, not a.
    for d in &got_b {
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_eq!(
        take(&mut b, 2, false)
            .await
            .iter()
            .map(body)
            .collect::<Vec<_>>(),
        names(2..4)
    );
    nothing_more(&mut a).await;
    t.cleanup(&[&q]).await;
}

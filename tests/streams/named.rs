//! Warren's named stream consumers (`x-stream-consumer-name`): the broker
//! keeps each name's offset (the first unacked delivery, or the next offset
//! when everything was acked); one consumer per name reads, the others wait.

use lapin::options::*;
use lapin::types::AMQPValue;

use crate::common::lapin::text;
use crate::common::start_at;
use crate::{
    Target, body, consumer_on, declare_stream, names, nothing_more, offset_of, publish_range,
    reference, take, target, try_consume,
};

/// Consumer arguments: this name, from this offset.
fn named(name: &str, offset: &str) -> [(&'static str, AMQPValue); 2] {
    [
        ("x-stream-consumer-name", text(name)),
        ("x-stream-offset", text(offset)),
    ]
}

/// A stream of `m0..m<n>`.
async fn stream_of(t: &Target, base: &str, n: u32) -> String {
    let q = t.name(base);
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..n).await;
    q
}

#[tokio::test]
async fn a_name_resumes_at_its_first_unacked_delivery() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = stream_of(&t, "resume", 10).await;
    let conn = t.conn().await;
    let (c, mut consumer) = consumer_on(&conn, &q, 10, &named("g", "first")).await;
    let got = take(&mut consumer, 6, false).await;
    // Acks 0, 1, 2 and 4: offset 3 is the first not acked.
    for i in [0, 1, 2, 4] {
        got[i].ack(BasicAckOptions::default()).await.expect("ack");
    }
    c.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    // Its x-stream-offset is not looked at: the name is known.
    let (_c2, mut again) = consumer_on(&conn, &q, 10, &named("g", "next")).await;
    let d = take(&mut again, 7, true).await;
    assert_eq!(d.iter().map(body).collect::<Vec<_>>(), names(3..10));
    assert_eq!(offset_of(&d[0]), 3);
    // A new name starts where its own x-stream-offset says.
    let (_c3, mut other) = consumer_on(
        &conn,
        &q,
        10,
        &[
            ("x-stream-consumer-name", text("h")),
            ("x-stream-offset", AMQPValue::LongInt(8)),
        ],
    )
    .await;
    let d = take(&mut other, 2, true).await;
    assert_eq!(d.iter().map(body).collect::<Vec<_>>(), names(8..10));
}

#[tokio::test]
async fn a_name_with_everything_acked_resumes_at_the_next_offset() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = stream_of(&t, "acked", 4).await;
    let conn = t.conn().await;
    let (c, mut consumer) = consumer_on(&conn, &q, 10, &named("all", "first")).await;
    let got = take(&mut consumer, 4, true).await;
    nothing_more(&mut consumer).await;
    c.close(200, "done".into()).await.expect("close");
    let ch = conn.confirming().await;
    publish_range(&ch, &q, 4..6).await;
    let (_c, mut again) = consumer_on(&conn, &q, 10, &named("all", "first")).await;
    assert_eq!(
        take(&mut again, 2, true)
            .await
            .iter()
            .map(body)
            .collect::<Vec<_>>(),
        names(4..6)
    );
    nothing_more(&mut again).await;
    drop(got);
}

#[tokio::test]
async fn a_second_consumer_of_a_name_waits_and_takes_over() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = stream_of(&t, "standby", 6).await;
    let first = t.conn().await;
    let second = t.conn().await;
    let (c1, mut active) = consumer_on(&first, &q, 2, &named("s", "first")).await;
    let got = take(&mut active, 2, false).await;
    got[0].ack(BasicAckOptions::default()).await.expect("ack");
    // The ack gives credit back: m2 comes to the active one.
    let more = take(&mut active, 1, false).await;
    assert_eq!(body(&more[0]), "m2");
    let (c2, mut standby) = consumer_on(&second, &q, 2, &named("s", "first")).await;
    let (_c3, mut third) = consumer_on(&second, &q, 2, &named("s", "last")).await;
    nothing_more(&mut standby).await;
    nothing_more(&mut third).await;
    // The active one's channel closes: the first waiting takes over at m1,
    // the first delivery not acked.
    c1.close(200, "gone".into()).await.expect("close");
    let d = take(&mut standby, 2, false).await;
    assert_eq!(d.iter().map(body).collect::<Vec<_>>(), names(1..3));
    nothing_more(&mut third).await;
    // Cancelled with everything acked: the next one goes on from m3.
    for x in &d {
        x.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let d2 = take(&mut standby, 2, true).await;
    assert_eq!(d2.iter().map(body).collect::<Vec<_>>(), names(3..5));
    c2.basic_cancel(standby.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let d3 = take(&mut third, 1, true).await;
    assert_eq!(body(&d3[0]), "m5");
}

#[tokio::test]
async fn an_empty_name_is_refused() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = stream_of(&t, "badname", 0).await;
    let mut conn = t.conn().await;
    let ch = conn.channel().await;
    ch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let result = try_consume(&ch, &q, "", &[("x-stream-consumer-name", text(""))]).await;
    assert_eq!(
        conn.refusal(result).await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-stream-consumer-name' for {}: \"a name of 1 to 255 bytes\"",
                t.res(&q)
            )
        )
    );
}

#[tokio::test]
async fn named_offsets_survive_a_restart() {
    if reference() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let t = Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        broker: Some(broker),
    };
    let q = stream_of(&t, "restart", 5).await;
    let conn = t.conn().await;
    let (_c, mut consumer) = consumer_on(&conn, &q, 10, &named("r", "first")).await;
    let got = take(&mut consumer, 5, false).await;
    got[0]
        .ack(BasicAckOptions { multiple: false })
        .await
        .expect("ack");
    got[1]
        .ack(BasicAckOptions { multiple: false })
        .await
        .expect("ack");
    // The acks are in before the connection goes (a synchronous round trip).
    let ch = conn.channel().await;
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    conn.close(200, "bye".into()).await.expect("close");
    let mut t = t;
    t.broker.take().expect("broker").stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let t = Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        broker: Some(broker),
    };
    let conn = t.conn().await;
    let (_c, mut again) = consumer_on(&conn, &q, 10, &named("r", "next")).await;
    let d = take(&mut again, 3, true).await;
    assert_eq!(d.iter().map(body).collect::<Vec<_>>(), names(2..5));
    assert_eq!(offset_of(&d[0]), 2);
}

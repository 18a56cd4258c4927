//! Publishing to a stream: confirms through the default exchange and a bound
//! exchange, what a delivery keeps of the message, mandatory, transactions.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, ExchangeKind};

use crate::common::lapin::{table, text, try_publish};
use crate::{body, consumer_from, declare_stream, nothing_more, offset_of, take, target};

#[tokio::test]
async fn default_and_bound_exchanges_append_with_confirms() {
    let t = target().await;
    let conn = t.conn().await;
    let q = t.name("p1");
    let x = t.name("px");
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    for (exchange, key, mandatory) in [("", q.as_str(), false), (x.as_str(), "k", true)] {
        let confirm = try_publish(
            &ch,
            exchange,
            key,
            mandatory,
            key.as_bytes(),
            Default::default(),
        )
        .await
        .expect("publish");
        // Routed to the stream: acked, nothing returned.
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    // Unroutable mandatory: returned as ever.
    let confirm = try_publish(&ch, &x, "nowhere", true, b"lost", Default::default())
        .await
        .expect("publish");
    let returned = match confirm {
        Confirmation::Ack(Some(returned)) => returned,
        other => panic!("expected a return, got {other:?}"),
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");

    let (_c, mut consumer) = consumer_from(&conn, &q, "first").await;
    let got = take(&mut consumer, 2, true).await;
    let seen: Vec<(String, String, String, i64)> = got
        .iter()
        .map(|d| {
            (
                d.exchange.as_str().to_owned(),
                d.routing_key.as_str().to_owned(),
                body(d),
                offset_of(d),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (String::new(), q.clone(), q.clone(), 0),
            (x.clone(), "k".to_owned(), "k".to_owned(), 1),
        ]
    );
    nothing_more(&mut consumer).await;
    let ch = conn.channel().await;
    let _ = ch
        .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn properties_round_trip_and_the_offset_header_is_the_brokers() {
    let t = target().await;
    let conn = t.conn().await;
    let q = t.name("props");
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    let headers = table(&[
        ("s", text("v")),
        ("n", AMQPValue::LongInt(7)),
        ("b", AMQPValue::Boolean(true)),
        ("x-stream-offset", AMQPValue::LongLongInt(999)),
    ]);
    let full = BasicProperties::default()
        .with_content_type(ShortString::from("text/plain"))
        .with_correlation_id(ShortString::from("corr"))
        .with_reply_to(ShortString::from("back"))
        .with_message_id(ShortString::from("id-1"))
        .with_app_id(ShortString::from("app"))
        .with_type(ShortString::from("kind"))
        .with_timestamp(1_700_000_000)
        .with_priority(7)
        .with_expiration(ShortString::from("1"))
        .with_delivery_mode(2)
        .with_headers(headers);
    let sent = [
        full,
        BasicProperties::default().with_delivery_mode(1),
        BasicProperties::default(),
    ];
    for p in &sent {
        let confirm = try_publish(&ch, "", &q, false, b"x", p.clone())
            .await
            .expect("publish");
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    // The 1 ms expiration is long gone: streams ignore it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_c, mut consumer) = consumer_from(&conn, &q, "first").await;
    let got = take(&mut consumer, 3, true).await;
    let p = &got[0].properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        p.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr")
    );
    assert_eq!(p.reply_to().as_ref().map(|s| s.as_str()), Some("back"));
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("id-1"));
    assert_eq!(p.app_id().as_ref().map(|s| s.as_str()), Some("app"));
    assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("kind"));
    assert_eq!(*p.timestamp(), Some(1_700_000_000));
    assert_eq!(*p.priority(), Some(7));
    assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("1"));
    assert_eq!(*p.delivery_mode(), Some(2));
    let h = p.headers().as_ref().expect("headers").inner();
    assert_eq!(h.get("s"), Some(&text("v")));
    assert!(
        matches!(
            h.get("n"),
            Some(AMQPValue::LongInt(7) | AMQPValue::LongLongInt(7) | AMQPValue::ShortInt(7))
        ),
        "{:?}",
        h.get("n")
    );
    assert_eq!(h.get("b"), Some(&AMQPValue::Boolean(true)));
    // The client's own x-stream-offset is overwritten with the real one.
    assert_eq!(offset_of(&got[0]), 0);
    assert_eq!(*got[1].properties.delivery_mode(), Some(1));
    assert_eq!(*got[2].properties.delivery_mode(), None);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(offset_of(d), i as i64);
        assert!(!d.redelivered);
    }
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn consumers_see_only_committed_transactions() {
    let t = target().await;
    let conn = t.conn().await;
    let q = t.name("tx");
    let ch = conn.channel().await;
    declare_stream(&ch, &q, &[]).await;
    let (_c, mut consumer) = consumer_from(&conn, &q, "first").await;
    ch.tx_select().await.expect("tx.select");
    for i in 0..3u8 {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            &[i],
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    nothing_more(&mut consumer).await;
    ch.tx_commit().await.expect("tx.commit");
    let got = take(&mut consumer, 3, true).await;
    let data: Vec<Vec<u8>> = got.iter().map(|d| d.data.clone()).collect();
    assert_eq!(data, vec![vec![0], vec![1], vec![2]]);
    nothing_more(&mut consumer).await;
    t.cleanup(&[&q]).await;
}

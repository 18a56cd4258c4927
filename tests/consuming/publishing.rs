//! Publishing: properties, headers and bodies reach the consumer unchanged;
//! user_id and expiration are checked.

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable};

use crate::common::lapin::{Client, consume, declare_queue, next_delivery};
use crate::common::{WAIT, start};
use crate::{ack, get_some, props, publish, publish_with, ready, requeue};

/// Every basic property set, with a header of each field type.
fn every_property() -> BasicProperties {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    let mut headers = FieldTable::default();
    for (key, value) in [
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60_000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-6_400_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345,
            }),
        ),
        ("text", AMQPValue::LongString("héllo wörld".into())),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString("two".into()),
                AMQPValue::Boolean(false),
            ])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("void", AMQPValue::Void),
    ] {
        headers.insert(key.into(), value);
    }
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("tests".into())
        .with_cluster_id("cluster-a".into())
}

#[tokio::test]
async fn every_property_and_header_type_reaches_the_consumer_unchanged() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    let sent = every_property();
    publish_with(&ch, "q", b"{}", sent.clone()).await;
    publish_with(&ch, "q", b"{}", sent.clone()).await;
    let mut consumer = consume(&ch, "q").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.properties, sent);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), &d.data[..]),
        ("", "q", &b"{}"[..])
    );
    d.ack(ack()).await.expect("ack");
    // basic.get carries them the same way.
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let d2 = next_delivery(&mut consumer).await;
    d2.nack(requeue()).await.expect("nack");
    let got = get_some(&ch, "q").await;
    assert_eq!(got.delivery.properties, sent);
    client.close().await;
}

#[tokio::test]
async fn empty_binary_and_large_bodies_arrive_intact() {
    let broker = start().await;
    // A small frame_max makes every body here span many frames both ways.
    for query in ["", "frame_max=4096"] {
        let client = Client::connect_with(&broker, query).await;
        let ch = client.confirming().await;
        declare_queue(&ch, "q").await;
        let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let large: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for body in [&[][..], &binary, &large, &large[..131_072 - 8]] {
            publish(&ch, "q", body).await;
        }
        let mut consumer = consume(&ch, "q").await;
        for body in [&[][..], &binary, &large] {
            let d = next_delivery(&mut consumer).await;
            assert_eq!(d.data.len(), body.len(), "{query}");
            assert!(d.data == body, "body differs ({query})");
            d.ack(ack()).await.expect("ack");
        }
        ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        // The last one (the largest single frame at the default frame_max) via get.
        let mut last = None;
        while let Some(d) = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("ends")
        {
            last = Some(d.expect("delivery"));
        }
        if let Some(d) = last {
            d.nack(requeue()).await.expect("nack");
        }
        let got = get_some(&ch, "q").await;
        assert!(got.delivery.data == large[..131_072 - 8], "{query}");
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
        client.close().await;
    }
}

#[tokio::test]
async fn user_id_must_be_the_connection_user() {
    let broker = start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    publish_with(&ch, "q", b"ok", props().with_user_id("guest".into())).await;
    let bad = client.channel().await;
    let _ = bad
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"bad",
            props().with_user_id("bob".into()),
        )
        .await;
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"
                .to_owned()
        )
    );
    // The refused message went nowhere; the connection is fine.
    assert_eq!(ready(&client, "q").await, 1);
    client.close().await;
}

#[tokio::test]
async fn invalid_expiration_is_406() {
    let broker = start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_queue(&ch, "q").await;
    publish_with(&ch, "q", b"ok", props().with_expiration("0".into())).await;
    for (expiration, why) in [
        ("soon", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("10s", "{leftover_string,\"s\"}"),
        ("315360000001", "{value_too_large,315360000001}"),
    ] {
        let bad = client.channel().await;
        let _ = bad
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"bad",
                props().with_expiration(expiration.into()),
            )
            .await;
        assert_eq!(
            client.exception().await,
            (
                406,
                format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {why}")
            )
        );
    }
    client.close().await;
}

//! Filtering (RabbitMQ 3.13's arguments; Warren filters exactly per
//! message): `x-stream-filter-value` on publish, `x-stream-filter` (a string
//! or an array) and `x-stream-match-unfiltered` on consume.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray};

use crate::common::lapin::{publish_acked, table, text};
use crate::{Target, body, consumer_on, declare_stream, nothing_more, reference, take, target};

/// A stream with messages `a0 b1 u2 a3 c4 u5 b6` (`u`: no filter value).
async fn filtered_stream(t: &Target) -> String {
    let q = t.name("filter");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    for (i, value) in ["a", "b", "", "a", "c", "", "b"].iter().enumerate() {
        let name = if value.is_empty() { "u" } else { value };
        let mut properties = BasicProperties::default();
        if !value.is_empty() {
            properties = properties.with_headers(table(&[("x-stream-filter-value", text(value))]));
        }
        publish_acked(&ch, "", &q, format!("{name}{i}").as_bytes(), properties).await;
    }
    q
}

/// What a consumer from `first` with these arguments receives.
async fn received(t: &Target, q: &str, args: &[(&str, AMQPValue)], n: usize) -> Vec<String> {
    let conn = t.conn().await;
    let mut all = args.to_vec();
    all.push(("x-stream-offset", text("first")));
    let (_c, mut consumer) = consumer_on(&conn, q, 10, &all).await;
    let got: Vec<String> = take(&mut consumer, n, true)
        .await
        .iter()
        .map(body)
        .collect();
    nothing_more(&mut consumer).await;
    got
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_filter_delivers_only_matching_messages() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = filtered_stream(&t).await;
    assert_eq!(
        received(&t, &q, &[("x-stream-filter", text("a"))], 2).await,
        strings(&["a0", "a3"])
    );
    let either = AMQPValue::FieldArray(FieldArray::from(vec![text("b"), text("c")]));
    assert_eq!(
        received(&t, &q, &[("x-stream-filter", either)], 3).await,
        strings(&["b1", "c4", "b6"])
    );
    assert_eq!(
        received(
            &t,
            &q,
            &[
                ("x-stream-filter", text("a")),
                ("x-stream-match-unfiltered", AMQPValue::Boolean(true)),
            ],
            4,
        )
        .await,
        strings(&["a0", "u2", "a3", "u5"])
    );
    // No filter: everything, the filter value kept as a header.
    let conn = t.conn().await;
    let (_c, mut consumer) =
        consumer_on(&conn, &q, 10, &[("x-stream-offset", text("first"))]).await;
    let got = take(&mut consumer, 7, true).await;
    assert_eq!(
        got.iter().map(body).collect::<Vec<_>>(),
        strings(&["a0", "b1", "u2", "a3", "c4", "u5", "b6"])
    );
    let header = got[0]
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-stream-filter-value").cloned());
    assert_eq!(header, Some(text("a")));
}

#[tokio::test]
async fn a_filter_also_applies_to_new_messages() {
    if reference() {
        return;
    }
    let t = target().await;
    let q = filtered_stream(&t).await;
    let conn = t.conn().await;
    let (_c, mut consumer) = consumer_on(&conn, &q, 10, &[("x-stream-filter", text("c"))]).await;
    nothing_more(&mut consumer).await;
    let ch = conn.confirming().await;
    for value in ["a", "c"] {
        let properties = BasicProperties::default()
            .with_headers(table(&[("x-stream-filter-value", text(value))]));
        publish_acked(&ch, "", &q, value.as_bytes(), properties).await;
    }
    publish_acked(&ch, "", &q, b"none", BasicProperties::default()).await;
    let got = take(&mut consumer, 1, true).await;
    assert_eq!(body(&got[0]), "c");
    assert_eq!(crate::offset_of(&got[0]), 8);
    nothing_more(&mut consumer).await;
}

//! Delayed messages as `rabbitmq_delayed_message_exchange`'s users call them:
//! an `x-delayed-message` exchange with `x-delayed-type`, messages with an
//! `x-delay` header in milliseconds, routed with the bindings of the moment
//! the delay ends; and beyond the plugin: kept across a restart, counted in
//! the management API.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::http::api_of;
use common::lapin::{Client, amqp_error, counts, declare_queue, table, text, try_publish};
use common::{TestBroker, start_at};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

/// Declares the delayed exchange `name` routing as `delayed_type`.
async fn declare_delayed(ch: &Channel, name: &str, delayed_type: &str, durable: bool) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        table(&[("x-delayed-type", text(delayed_type))]),
    )
    .await
    .expect("declare x-delayed-message");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
}

fn delayed(ms: i64) -> BasicProperties {
    BasicProperties::default()
        .with_headers(table(&[("x-delay", AMQPValue::LongLongInt(ms))]))
        .with_delivery_mode(2)
}

/// Publishes with confirms and asserts the ack.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = try_publish(ch, exchange, key, false, body, props)
        .await
        .expect("publish");
    assert!(confirm.is_ack(), "{confirm:?}");
}

/// The bodies a queue receives, in order, until `n` have come (bounded).
async fn receive(ch: &Channel, queue: &str, n: usize) -> Vec<(Vec<u8>, Instant, FieldTable)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
        {
            Some(m) => got.push((
                m.delivery.data.clone(),
                Instant::now(),
                m.delivery.properties.headers().clone().unwrap_or_default(),
            )),
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    got
}

#[tokio::test]
async fn messages_wait_their_delay_and_come_in_due_order() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "direct", false).await;
    declare_queue(&ch, "jobs").await;
    bind(&ch, "jobs", "later", "job").await;

    let sent = Instant::now();
    publish(&ch, "later", "job", b"late", delayed(600)).await;
    publish(&ch, "later", "job", b"early", delayed(300)).await;
    publish(&ch, "later", "job", b"now", BasicProperties::default()).await;
    publish(&ch, "later", "job", b"negative", delayed(-5)).await;
    publish(&ch, "later", "job", b"zero", delayed(0)).await;
    // Only the undelayed ones are there at once.
    assert_eq!(counts(&client.conn, "jobs").await, (3, 0));

    let got = receive(&ch, "jobs", 5).await;
    let bodies: Vec<&[u8]> = got.iter().map(|(b, _, _)| &b[..]).collect();
    assert_eq!(
        bodies,
        [&b"now"[..], b"negative", b"zero", b"early", b"late"]
    );
    let early = got[3].1.duration_since(sent);
    let late = got[4].1.duration_since(sent);
    assert!(early >= Duration::from_millis(300), "early after {early:?}");
    assert!(late >= Duration::from_millis(600), "late after {late:?}");
    assert!(late < Duration::from_secs(5), "late after {late:?}");
    // Delivered with the delay negated, as the plugin delivers it.
    assert_eq!(
        got[4].2.inner().get("x-delay"),
        Some(&AMQPValue::LongLongInt(-600))
    );
}

#[tokio::test]
async fn the_bindings_of_the_due_moment_route_the_message() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "topic", false).await;
    declare_queue(&ch, "before").await;
    declare_queue(&ch, "after").await;
    bind(&ch, "before", "later", "a.*").await;
    publish(&ch, "later", "a.b", b"m", delayed(300)).await;
    // Rebound while it waits: it goes where the bindings say when it is due.
    ch.queue_unbind(
        "before".into(),
        "later".into(),
        "a.*".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    bind(&ch, "after", "later", "#").await;
    let got = receive(&ch, "after", 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(counts(&client.conn, "before").await, (0, 0));
}

#[tokio::test]
async fn a_delay_applies_where_the_message_reaches_a_delayed_exchange() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "fanout", false).await;
    ch.exchange_declare(
        "front".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare front");
    ch.exchange_bind(
        "later".into(),
        "front".into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange-to-exchange binding");
    declare_queue(&ch, "now").await;
    declare_queue(&ch, "after").await;
    bind(&ch, "now", "front", "k").await;
    bind(&ch, "after", "later", "").await;
    // Dead-lettered into a delayed exchange: the plugin's retry pattern.
    ch.queue_declare(
        "retry".into(),
        QueueDeclareOptions::default(),
        table(&[("x-dead-letter-exchange", text("later"))]),
    )
    .await
    .expect("declare retry");
    let sent = Instant::now();
    publish(&ch, "front", "k", b"through", delayed(2000)).await;
    let now = receive(&ch, "now", 1).await;
    assert_eq!(now.len(), 1, "the direct binding delivers at once");
    assert!(now[0].1 - sent < Duration::from_millis(2000));
    let after = receive(&ch, "after", 1).await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].1 - sent >= Duration::from_millis(2000),
        "held by the delayed exchange"
    );

    publish(&ch, "", "retry", b"failed", delayed(300)).await;
    let got = ch
        .basic_get("retry".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .expect("a message");
    let rejected = Instant::now();
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let after = receive(&ch, "after", 1).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].1 - rejected >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_mandatory_message_nothing_takes_when_due_is_returned() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "direct", false).await;
    declare_queue(&ch, "taken").await;
    bind(&ch, "taken", "later", "bound").await;
    let nowhere = try_publish(&ch, "later", "nowhere", true, b"lost", delayed(200))
        .await
        .expect("publish");
    let taken = try_publish(&ch, "later", "bound", true, b"kept", delayed(200))
        .await
        .expect("publish");
    // Kept, not routed yet: acked without a return (unlike the plugin, which
    // returns a mandatory delayed message at once).
    assert!(matches!(nowhere, Confirmation::Ack(None)));
    assert!(matches!(taken, Confirmation::Ack(None)));
    assert_eq!(receive(&ch, "taken", 1).await.len(), 1);
    // lapin hands a return to the ack that follows it.
    let next = try_publish(&ch, "", "taken", false, b"x", BasicProperties::default())
        .await
        .expect("publish");
    let Confirmation::Ack(Some(returned)) = next else {
        panic!("expected the delayed message's return, got {next:?}");
    };
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(
        (returned.exchange.as_str(), returned.routing_key.as_str()),
        ("later", "nowhere")
    );
    assert_eq!(returned.data, b"lost");
}

#[tokio::test]
async fn declare_needs_an_existing_delayed_type() {
    let broker = common::start().await;
    let mut client = Client::connect(&broker).await;
    for (args, text_expected) in [
        (
            FieldTable::default(),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ),
        (
            table(&[("x-delayed-type", text("x-delayed-message"))]),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' can't be of type 'x-delayed-message'",
        ),
    ] {
        let ch = client.channel().await;
        let refused = ch
            .exchange_declare(
                "d".into(),
                ExchangeKind::Custom("x-delayed-message".into()),
                ExchangeDeclareOptions::default(),
                args,
            )
            .await
            .expect_err("refused");
        assert_eq!(amqp_error(&refused), (406, text_expected.to_owned()));
        let _ = client.exception().await;
    }
    // Redeclaring as another type is the usual 406.
    let ch = client.channel().await;
    declare_delayed(&ch, "d", "fanout", false).await;
    let refused = ch
        .exchange_declare(
            "d".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("inequivalent");
    assert_eq!(
        amqp_error(&refused),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'd' in vhost '/': received 'fanout' but current is 'x-delayed-message'".to_owned()
        )
    );
}

/// The management API's view of exchange `name`.
async fn exchange_json(broker: &TestBroker, name: &str) -> serde_json::Value {
    let (api, stop) = api_of(broker).await;
    let json = api.get(&format!("/api/exchanges/%2F/{name}")).await.json();
    stop().await;
    json
}

#[tokio::test]
async fn waiting_messages_survive_a_restart_and_show_in_the_api() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "direct", true).await;
    ch.queue_declare(
        "kept".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("durable queue");
    bind(&ch, "kept", "later", "k").await;
    publish(&ch, "later", "k", b"first", delayed(800)).await;
    publish(&ch, "later", "k", b"second", delayed(60_000)).await;
    let x = exchange_json(&broker, "later").await;
    assert_eq!(x["type"], "x-delayed-message");
    assert_eq!(x["messages_delayed"], 2);
    assert!(x["next_delayed_due"].as_u64().is_some(), "{x}");
    client.close().await;
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let got = receive(&ch, "kept", 1).await;
    let bodies: Vec<&[u8]> = got.iter().map(|(b, _, _)| &b[..]).collect();
    assert_eq!(bodies, [&b"first"[..]]);
    let x = exchange_json(&broker, "later").await;
    assert_eq!(x["messages_delayed"], 1);
    // Deleting the exchange drops what waits in it (in the background: until
    // that is done a declare of the name is refused, so retry).
    ch.exchange_delete("later".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ch = client.channel().await;
        let declared = ch
            .exchange_declare(
                "later".into(),
                ExchangeKind::Custom("x-delayed-message".into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                table(&[("x-delayed-type", text("direct"))]),
            )
            .await;
        if declared.is_ok() || Instant::now() >= deadline {
            declared.expect("declared again once the old messages are gone");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exchange_json(&broker, "later").await["messages_delayed"], 0);
}

#[tokio::test]
async fn a_transient_delayed_exchange_leaves_nothing_on_disk_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "transient", "direct", false).await;
    declare_delayed(&ch, "durable", "direct", true).await;
    for x in ["transient", "durable"] {
        publish(&ch, x, "k", b"m", delayed(60_000)).await;
    }
    client.close().await;
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let stored = common::eventually(vec![("/".to_owned(), "durable".to_owned())], async || {
        warren::delayed::stored_exchanges(&broker.broker.storage).expect("list")
    })
    .await;
    assert_eq!(stored, [("/".to_owned(), "durable".to_owned())]);
    assert_eq!(
        exchange_json(&broker, "durable").await["messages_delayed"],
        1
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_api_publishes_into_a_delayed_exchange_too() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "fanout", false).await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "later", "").await;
    let (api, _stop) = api_of(&broker).await;
    let r = api
        .post(
            "/api/exchanges/%2F/later/publish",
            r#"{"properties":{"headers":{"x-delay":200}},"routing_key":"","payload":"p","payload_encoding":"string"}"#,
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"routed": false}));
    assert_eq!(counts(&client.conn, "q").await, (0, 0));
    assert_eq!(receive(&ch, "q", 1).await.len(), 1);
}

#[tokio::test]
async fn route_explain_says_a_message_would_wait() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_delayed(&ch, "later", "direct", false).await;
    declare_queue(&ch, "q").await;
    bind(&ch, "q", "later", "k").await;
    let (api, _stop) = api_of(&broker).await;
    let answer = api
        .post(
            "/api/route-explain/%2F",
            r#"{"exchange":"later","routing_key":"k","headers":{"x-delay":1500}}"#,
        )
        .await
        .json();
    assert_eq!(answer["delayed_ms"], 1500, "{answer}");
    assert_eq!(answer["queues"], serde_json::json!(["q"]));
    assert_eq!(answer["hops"][0]["type"], "x-delayed-message");
    let now = api
        .post(
            "/api/route-explain/%2F",
            r#"{"exchange":"later","routing_key":"k"}"#,
        )
        .await
        .json();
    assert!(now.get("delayed_ms").is_none(), "{now}");
}

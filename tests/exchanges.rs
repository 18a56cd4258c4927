//! Exchanges as a RabbitMQ client sees them: how each type routes, bindings over
//! several paths, exchange-to-exchange bindings, alternate exchanges, auto-delete
//! and internal exchanges, mandatory returns, and the declare / delete / bind
//! rules with RabbitMQ's reply codes and texts.
//!
//! The same assertions hold against RabbitMQ. With `WARREN_REFERENCE_URI` set
//! (e.g. `amqp://guest:guest@127.0.0.1:5672/exchanges-check`: a fresh vhost the
//! user may configure, write and read, since names are fixed) the tests talk to
//! that broker instead of starting one; the tests that need a raw socket skip,
//! and `--include-ignored` runs the ones Warren does not pass yet.

mod common;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::{RawClient, TestBroker, WAIT};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use warren_codec::protocol::{AMQPClass, basic, channel as channel_method, exchange};
use warren_codec::{ContentHeader, FrameEncoder};

/// The broker under test: Warren in-process, or the reference broker.
struct Target {
    uri: String,
    vhost: String,
    /// Where an in-process broker listens (None for the reference broker).
    addr: Option<SocketAddr>,
    _broker: Option<TestBroker>,
}

async fn target() -> Target {
    if let Ok(uri) = std::env::var("WARREN_REFERENCE_URI") {
        let path = uri.rsplit_once('/').map_or("", |(_, p)| p);
        let path = path.split('?').next().unwrap_or_default();
        let vhost = match path.replace("%2f", "/").replace("%2F", "/") {
            v if v.is_empty() => "/".to_owned(),
            v => v,
        };
        return Target {
            uri,
            vhost,
            addr: None,
            _broker: None,
        };
    }
    let broker = common::start().await;
    Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        addr: Some(broker.addr),
        _broker: Some(broker),
    }
}

impl Target {
    async fn connect(&self) -> Connection {
        tokio::time::timeout(
            WAIT,
            Connection::connect(&self.uri, ConnectionProperties::default()),
        )
        .await
        .expect("connect in time")
        .expect("connect")
    }

    /// A connection and a channel in confirm mode on it.
    async fn open(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = channel(&conn).await;
        (conn, ch)
    }

    /// `exchange 'x' in vhost '/'`.
    fn res(&self, kind: &str, name: &str) -> String {
        format!("{kind} '{name}' in vhost '{}'", self.vhost)
    }
}

/// A new channel in confirm mode: a publish confirmed is in its queues.
async fn channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// The reply code and text of the channel or connection exception behind `error`.
fn amqp_error(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP exception, got {other:?}"),
    }
}

fn refused(result: Result<impl Debug, lapin::Error>) -> (u16, String) {
    amqp_error(&result.expect_err("the broker refuses"))
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (key, value) in entries {
        t.insert(ShortString::from(*key), value.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

const DEFAULT_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: false,
    durable: false,
    auto_delete: false,
    internal: false,
    nowait: false,
};

const PASSIVE_X: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: true,
    ..DEFAULT_X
};

async fn declare_x_with(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    arguments: FieldTable,
) -> Result<(), lapin::Error> {
    ch.exchange_declare(name.into(), kind, options, arguments)
        .await
}

async fn declare_x(ch: &Channel, name: &str, kind: ExchangeKind) {
    declare_x_with(ch, name, kind, DEFAULT_X, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

async fn declare_q(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn bind_q_with(ch: &Channel, queue: &str, x: &str, key: &str, arguments: FieldTable) {
    ch.queue_bind(
        queue.into(),
        x.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {x} with '{key}': {e}"));
}

async fn bind_q(ch: &Channel, queue: &str, x: &str, key: &str) {
    bind_q_with(ch, queue, x, key, FieldTable::default()).await;
}

/// exchange.bind: messages from `source` flow to `destination`.
async fn bind_x(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {source} -> {destination}: {e}"));
}

/// Whether a passive declare finds the exchange (a fresh channel: a 404 closes it).
async fn x_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    match declare_x_with(
        &ch,
        name,
        ExchangeKind::Direct,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    {
        Ok(()) => {
            let _ = ch.close(200, "done".into()).await;
            true
        }
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

/// Polls until the exchange exists or not, within the generous bound.
async fn eventually_x_exists(conn: &Connection, name: &str, expected: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while x_exists(conn, name).await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "exchange '{name}' exists should become {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes and waits for the confirm.
async fn publish_full(
    ch: &Channel,
    x: &str,
    key: &str,
    mandatory: bool,
    properties: BasicProperties,
) -> Result<Confirmation, lapin::Error> {
    ch.basic_publish(
        x.into(),
        key.into(),
        BasicPublishOptions {
            mandatory,
            immediate: false,
        },
        key.as_bytes(),
        properties,
    )
    .await?
    .await
}

/// A confirmed publish with the key as body; headers when given.
async fn publish(ch: &Channel, x: &str, key: &str, headers: Option<FieldTable>) {
    let mut properties = BasicProperties::default();
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    let confirmation = publish_full(ch, x, key, false, properties)
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
}

/// Takes every message in the queue; their bodies.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    bodies
}

/// Publishes one message and names the queues among `queues` it reached,
/// asserting that each got it at most once. The queues are empty afterwards.
async fn reached(
    ch: &Channel,
    x: &str,
    key: &str,
    headers: Option<FieldTable>,
    queues: &[&str],
) -> Vec<String> {
    publish(ch, x, key, headers).await;
    let mut hit = Vec::new();
    for q in queues {
        let got = drain(ch, q).await;
        assert!(got.len() <= 1, "queue {q} got {got:?} for one publish");
        if !got.is_empty() {
            hit.push((*q).to_owned());
        }
    }
    hit
}

fn names(queues: &[&str]) -> Vec<String> {
    queues.iter().map(|q| (*q).to_owned()).collect()
}

#[tokio::test]
async fn direct_routes_on_the_exact_key() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "dx", ExchangeKind::Direct).await;
    let qs = ["dq-a", "dq-b", "dq-ab", "dq-empty"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    bind_q(&ch, "dq-a", "dx", "a").await;
    bind_q(&ch, "dq-b", "dx", "b").await;
    bind_q(&ch, "dq-ab", "dx", "a").await;
    bind_q(&ch, "dq-ab", "dx", "b").await;
    bind_q(&ch, "dq-empty", "dx", "").await;
    for (key, expected) in [
        ("a", &["dq-a", "dq-ab"][..]),
        ("b", &["dq-b", "dq-ab"]),
        ("", &["dq-empty"]),
        ("A", &[]),
        ("a.b", &[]),
        ("a ", &[]),
        ("*", &[]),
    ] {
        assert_eq!(
            reached(&ch, "dx", key, None, &qs).await,
            names(expected),
            "key '{key}'"
        );
    }
    // The predeclared direct exchange routes the same way.
    bind_q(&ch, "dq-a", "amq.direct", "dq-key").await;
    assert_eq!(
        reached(&ch, "amq.direct", "dq-key", None, &qs).await,
        names(&["dq-a"])
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn fanout_routes_to_every_binding_whatever_the_key() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "fx", ExchangeKind::Fanout).await;
    let qs = ["fq-1", "fq-2", "fq-unbound"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    bind_q(&ch, "fq-1", "fx", "some-key").await;
    bind_q(&ch, "fq-2", "fx", "").await;
    for key in ["", "some-key", "other", "a.b.#"] {
        assert_eq!(
            reached(&ch, "fx", key, None, &qs).await,
            names(&["fq-1", "fq-2"]),
            "key '{key}'"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn topic_patterns_match_words() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "tx", ExchangeKind::Topic).await;
    let bindings = [
        ("tq-star", "*"),
        ("tq-hash", "#"),
        ("tq-a.*.b", "a.*.b"),
        ("tq-a.#", "a.#"),
        ("tq-#.b", "#.b"),
        ("tq-a.b", "a.b"),
        ("tq-empty", ""),
        ("tq-a.#.#.b", "a.#.#.b"),
        ("tq-*.*", "*.*"),
    ];
    let qs: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    for (q, pattern) in bindings {
        declare_q(&ch, q).await;
        bind_q(&ch, q, "tx", pattern).await;
    }
    for (key, expected) in [
        // `#` matches zero words; `*` needs exactly one, and "" has none.
        ("", &["tq-hash", "tq-empty"][..]),
        ("a", &["tq-star", "tq-hash", "tq-a.#"]),
        ("b", &["tq-star", "tq-hash", "tq-#.b"]),
        (
            "a.b",
            &[
                "tq-hash",
                "tq-a.#",
                "tq-#.b",
                "tq-a.b",
                "tq-a.#.#.b",
                "tq-*.*",
            ],
        ),
        // An empty word is a word.
        (
            "a..b",
            &["tq-hash", "tq-a.*.b", "tq-a.#", "tq-#.b", "tq-a.#.#.b"],
        ),
        (
            "a.x.b",
            &["tq-hash", "tq-a.*.b", "tq-a.#", "tq-#.b", "tq-a.#.#.b"],
        ),
        ("a.x.y.b", &["tq-hash", "tq-a.#", "tq-#.b", "tq-a.#.#.b"]),
        (".", &["tq-hash", "tq-*.*"]),
        ("a.", &["tq-hash", "tq-a.#", "tq-*.*"]),
        ("x.y", &["tq-hash", "tq-*.*"]),
        // Words are compared whole and case-sensitively.
        ("A.b", &["tq-hash", "tq-#.b", "tq-*.*"]),
        ("ab", &["tq-star", "tq-hash"]),
    ] {
        assert_eq!(
            reached(&ch, "tx", key, None, &qs).await,
            names(expected),
            "key '{key}'"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_match_all_or_any_of_the_binding_arguments() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hx", ExchangeKind::Headers).await;
    let one = AMQPValue::LongInt(1);
    let bindings = [
        (
            "hq-all",
            table(&[
                ("x-match", text("all")),
                ("a", one.clone()),
                ("b", text("x")),
            ]),
        ),
        (
            "hq-any",
            table(&[
                ("x-match", text("any")),
                ("a", one.clone()),
                ("b", text("x")),
            ]),
        ),
        // No x-match means all.
        ("hq-default", table(&[("a", one.clone()), ("b", text("x"))])),
    ];
    let qs: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    for (q, arguments) in &bindings {
        declare_q(&ch, q).await;
        // The routing key plays no part.
        bind_q_with(&ch, q, "hx", "ignored", arguments.clone()).await;
    }
    let all = &["hq-all", "hq-any", "hq-default"][..];
    for (headers, expected) in [
        (table(&[("a", one.clone()), ("b", text("x"))]), all),
        (
            table(&[("b", text("x")), ("a", one.clone()), ("c", text("more"))]),
            all,
        ),
        (table(&[("a", one.clone())]), &["hq-any"]),
        (table(&[("b", text("x"))]), &["hq-any"]),
        (table(&[("a", one.clone()), ("b", text("y"))]), &["hq-any"]),
        (
            table(&[("a", AMQPValue::LongInt(2)), ("b", text("y"))]),
            &[],
        ),
        (table(&[("c", one.clone())]), &[]),
        (table(&[]), &[]),
    ] {
        assert_eq!(
            reached(&ch, "hx", "other", Some(headers.clone()), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    assert!(reached(&ch, "hx", "ignored", None, &qs).await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_x_arguments_count_only_with_x() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hxx", ExchangeKind::Headers).await;
    let v = text("v");
    let bindings = [
        // Without -with-x the x- argument is ignored: no arguments left.
        (
            "hxq-all",
            table(&[("x-match", text("all")), ("x-k", v.clone())]),
        ),
        (
            "hxq-any",
            table(&[("x-match", text("any")), ("x-k", v.clone())]),
        ),
        (
            "hxq-all-with-x",
            table(&[
                ("x-match", text("all-with-x")),
                ("x-k", v.clone()),
                ("a", v.clone()),
            ]),
        ),
        (
            "hxq-any-with-x",
            table(&[("x-match", text("any-with-x")), ("x-k", v.clone())]),
        ),
    ];
    let qs: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    for (q, arguments) in &bindings {
        declare_q(&ch, q).await;
        bind_q_with(&ch, q, "hxx", "", arguments.clone()).await;
    }
    for (headers, expected) in [
        (Some(table(&[])), &["hxq-all"][..]),
        (None, &["hxq-all"]),
        (Some(table(&[("a", v.clone())])), &["hxq-all"]),
        (
            Some(table(&[("x-k", v.clone())])),
            &["hxq-all", "hxq-any-with-x"],
        ),
        (
            Some(table(&[("x-k", v.clone()), ("a", v.clone())])),
            &["hxq-all", "hxq-all-with-x", "hxq-any-with-x"],
        ),
        (
            Some(table(&[("x-k", text("w")), ("a", v.clone())])),
            &["hxq-all"],
        ),
    ] {
        assert_eq!(
            reached(&ch, "hxx", "", headers.clone(), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_values_compare_like_rabbitmq() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hvx", ExchangeKind::Headers).await;
    let bindings = [
        ("hvq-int", table(&[("n", AMQPValue::LongInt(1))])),
        ("hvq-str", table(&[("n", text("1"))])),
        // A void argument only asks for the header to be present.
        ("hvq-void", table(&[("n", AMQPValue::Void)])),
        ("hvq-bool", table(&[("n", AMQPValue::Boolean(true))])),
    ];
    let qs: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    for (q, arguments) in &bindings {
        declare_q(&ch, q).await;
        bind_q_with(&ch, q, "hvx", "", arguments.clone()).await;
    }
    let header = |v: AMQPValue| Some(table(&[("n", v)]));
    for (headers, expected) in [
        // Integers of every width and signedness are equal by value.
        (header(AMQPValue::LongInt(1)), &["hvq-int", "hvq-void"][..]),
        (
            header(AMQPValue::ShortShortInt(1)),
            &["hvq-int", "hvq-void"],
        ),
        (
            header(AMQPValue::ShortShortUInt(1)),
            &["hvq-int", "hvq-void"],
        ),
        (header(AMQPValue::ShortInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongUInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongLongInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongInt(2)), &["hvq-void"]),
        // "1" is not 1, and 1 is not true.
        (header(text("1")), &["hvq-str", "hvq-void"]),
        (header(AMQPValue::Boolean(true)), &["hvq-void", "hvq-bool"]),
        (header(AMQPValue::Boolean(false)), &["hvq-void"]),
        (header(AMQPValue::Void), &["hvq-void"]),
        (Some(table(&[("m", AMQPValue::LongInt(1))])), &[]),
        (None, &[]),
    ] {
        assert_eq!(
            reached(&ch, "hvx", "", headers.clone(), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_bindings_without_arguments() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hex", ExchangeKind::Headers).await;
    let bindings = [
        // All of nothing: every message, with or without headers.
        ("heq-all", table(&[("x-match", text("all"))])),
        ("heq-none", FieldTable::default()),
        // Any of nothing: never.
        ("heq-any", table(&[("x-match", text("any"))])),
    ];
    let qs: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    for (q, arguments) in &bindings {
        declare_q(&ch, q).await;
        bind_q_with(&ch, q, "hex", "", arguments.clone()).await;
    }
    for headers in [
        None,
        Some(table(&[])),
        Some(table(&[("a", AMQPValue::LongInt(1))])),
    ] {
        assert_eq!(
            reached(&ch, "hex", "", headers.clone(), &qs).await,
            names(&["heq-all", "heq-none"]),
            "headers {headers:?}"
        );
    }
    // The predeclared headers exchanges route the same way.
    for x in ["amq.headers", "amq.match"] {
        bind_q_with(
            &ch,
            "heq-any",
            x,
            "",
            table(&[("x-match", text("any")), ("k", text(x))]),
        )
        .await;
        assert_eq!(
            reached(&ch, x, "", Some(table(&[("k", text(x))])), &qs).await,
            names(&["heq-any"]),
            "{x}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn a_queue_reached_over_several_bindings_gets_one_copy() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_q(&ch, "once-q").await;
    // Same key twice with different arguments: two bindings.
    declare_x(&ch, "once-direct", ExchangeKind::Direct).await;
    bind_q(&ch, "once-q", "once-direct", "k").await;
    bind_q_with(
        &ch,
        "once-q",
        "once-direct",
        "k",
        table(&[("tag", text("2"))]),
    )
    .await;
    // Several patterns that all match.
    declare_x(&ch, "once-topic", ExchangeKind::Topic).await;
    for pattern in ["k.k", "*.k", "k.*", "#", "#.k", "k.#.k"] {
        bind_q(&ch, "once-q", "once-topic", pattern).await;
    }
    // Several fanout bindings.
    declare_x(&ch, "once-fanout", ExchangeKind::Fanout).await;
    bind_q(&ch, "once-q", "once-fanout", "a").await;
    bind_q(&ch, "once-q", "once-fanout", "b").await;
    // Several headers bindings.
    declare_x(&ch, "once-headers", ExchangeKind::Headers).await;
    bind_q(&ch, "once-q", "once-headers", "").await;
    bind_q_with(
        &ch,
        "once-q",
        "once-headers",
        "",
        table(&[("h", text("v"))]),
    )
    .await;
    for (x, key) in [
        ("once-direct", "k"),
        ("once-topic", "k.k"),
        ("once-fanout", "z"),
        ("once-headers", ""),
    ] {
        let headers = Some(table(&[("h", text("v"))]));
        publish(&ch, x, key, headers).await;
        assert_eq!(drain(&ch, "once-q").await, vec![key.to_owned()], "{x}");
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn a_diamond_of_exchanges_delivers_once() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["dia-top", "dia-left", "dia-right", "dia-bottom"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    declare_q(&ch, "dia-q").await;
    bind_x(&ch, "dia-left", "dia-top", "").await;
    bind_x(&ch, "dia-right", "dia-top", "").await;
    bind_x(&ch, "dia-bottom", "dia-left", "").await;
    bind_x(&ch, "dia-bottom", "dia-right", "").await;
    bind_q(&ch, "dia-q", "dia-bottom", "").await;
    bind_q(&ch, "dia-q", "dia-left", "").await;
    bind_q(&ch, "dia-q", "dia-top", "").await;
    publish(&ch, "dia-top", "m", None).await;
    assert_eq!(drain(&ch, "dia-q").await, vec!["m"]);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn exchange_to_exchange_bindings_chain_and_unbind() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "e2e-first", ExchangeKind::Topic).await;
    declare_x(&ch, "e2e-second", ExchangeKind::Direct).await;
    declare_x(&ch, "e2e-third", ExchangeKind::Fanout).await;
    let qs = ["e2e-q2", "e2e-q3"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    // first --k.*--> second --k.1--> q2; second --k.2--> third --> q3.
    bind_x(&ch, "e2e-second", "e2e-first", "k.*").await;
    bind_q(&ch, "e2e-q2", "e2e-second", "k.1").await;
    bind_x(&ch, "e2e-third", "e2e-second", "k.2").await;
    bind_q(&ch, "e2e-q3", "e2e-third", "").await;
    // Each exchange routes the message's own key by its own rules.
    for (key, expected) in [
        ("k.1", &["e2e-q2"][..]),
        ("k.2", &["e2e-q3"]),
        ("k.3", &[]),
        ("j.1", &[]),
    ] {
        assert_eq!(
            reached(&ch, "e2e-first", key, None, &qs).await,
            names(expected),
            "key '{key}'"
        );
    }
    // Publishing into the middle of the chain.
    assert_eq!(
        reached(&ch, "e2e-second", "k.2", None, &qs).await,
        names(&["e2e-q3"])
    );
    ch.exchange_unbind(
        "e2e-second".into(),
        "e2e-first".into(),
        "k.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    for key in ["k.1", "k.2"] {
        assert!(reached(&ch, "e2e-first", key, None, &qs).await.is_empty());
    }
    assert_eq!(
        reached(&ch, "e2e-second", "k.1", None, &qs).await,
        names(&["e2e-q2"])
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn exchange_binding_cycles_terminate() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["cyc-a", "cyc-b", "cyc-c"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    declare_q(&ch, "cyc-q").await;
    // a -> b -> c -> a, a -> a, and the queue hangs off b.
    bind_x(&ch, "cyc-b", "cyc-a", "").await;
    bind_x(&ch, "cyc-c", "cyc-b", "").await;
    bind_x(&ch, "cyc-a", "cyc-c", "").await;
    bind_x(&ch, "cyc-a", "cyc-a", "").await;
    bind_q(&ch, "cyc-q", "cyc-b", "").await;
    for x in ["cyc-a", "cyc-b", "cyc-c"] {
        publish(&ch, x, x, None).await;
        assert_eq!(drain(&ch, "cyc-q").await, vec![x.to_owned()], "{x}");
    }
    // A cycle without queues routes nowhere (and returns the mandatory message).
    declare_x(&ch, "cyc-lonely", ExchangeKind::Fanout).await;
    bind_x(&ch, "cyc-lonely", "cyc-lonely", "").await;
    let confirmation = publish_full(&ch, "cyc-lonely", "k", true, BasicProperties::default())
        .await
        .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    // An alternate exchange may be internal: it is not published to directly.
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "ae-alt",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("declare internal");
    declare_x_with(
        &ch,
        "ae-main",
        ExchangeKind::Direct,
        DEFAULT_X,
        table(&[("alternate-exchange", text("ae-alt"))]),
    )
    .await
    .expect("declare with alternate-exchange");
    let qs = ["ae-q-main", "ae-q-alt"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    bind_q(&ch, "ae-q-main", "ae-main", "routed").await;
    bind_q(&ch, "ae-q-alt", "ae-alt", "").await;
    assert_eq!(
        reached(&ch, "ae-main", "routed", None, &qs).await,
        names(&["ae-q-main"])
    );
    assert_eq!(
        reached(&ch, "ae-main", "unrouted", None, &qs).await,
        names(&["ae-q-alt"])
    );
    // Mandatory: the alternate exchange routed it, so nothing comes back.
    let confirmation = publish_full(&ch, "ae-main", "unrouted", true, BasicProperties::default())
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    let got = drain(&ch, "ae-q-alt").await;
    assert_eq!(got, vec!["unrouted"]);

    // An alternate exchange that does not exist: dropped, or returned if mandatory.
    declare_x_with(
        &ch,
        "ae-dangling",
        ExchangeKind::Direct,
        DEFAULT_X,
        table(&[("alternate-exchange", text("ae-nosuch"))]),
    )
    .await
    .expect("an alternate exchange need not exist");
    publish(&ch, "ae-dangling", "k", None).await;
    let confirmation = publish_full(&ch, "ae-dangling", "k", true, BasicProperties::default())
        .await
        .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(returned.delivery.exchange.as_str(), "ae-dangling");

    // Alternate exchanges chain: the alternate's own alternate is used too.
    declare_x_with(
        &ch,
        "ae-first",
        ExchangeKind::Direct,
        DEFAULT_X,
        table(&[("alternate-exchange", text("ae-second"))]),
    )
    .await
    .expect("declare");
    declare_x_with(
        &ch,
        "ae-second",
        ExchangeKind::Direct,
        DEFAULT_X,
        table(&[("alternate-exchange", text("ae-alt"))]),
    )
    .await
    .expect("declare");
    assert_eq!(
        reached(&ch, "ae-first", "nowhere", None, &qs).await,
        names(&["ae-q-alt"])
    );
    // An exchange that routes to another exchange has routed, even if that one
    // finds no queue: its alternate exchange is not asked.
    declare_x(&ch, "ae-dead-end", ExchangeKind::Direct).await;
    bind_x(&ch, "ae-dead-end", "ae-main", "to-dead-end").await;
    assert!(
        reached(&ch, "ae-main", "to-dead-end", None, &qs)
            .await
            .is_empty()
    );
    // Alternate exchanges that name each other: tried once each, then returned.
    for (x, ae) in [("ae-ping", "ae-pong"), ("ae-pong", "ae-ping")] {
        declare_x_with(
            &ch,
            x,
            ExchangeKind::Direct,
            DEFAULT_X,
            table(&[("alternate-exchange", text(ae))]),
        )
        .await
        .expect("declare");
    }
    let confirmation = publish_full(&ch, "ae-ping", "k", true, BasicProperties::default())
        .await
        .expect("confirmed");
    assert_eq!(
        confirmation.take_message().expect("returned").reply_code,
        312
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    let auto = ExchangeDeclareOptions {
        auto_delete: true,
        ..DEFAULT_X
    };
    for x in ["ad-unbind", "ad-queue-gone", "ad-e2e", "ad-dest-only"] {
        declare_x_with(&ch, x, ExchangeKind::Direct, auto, FieldTable::default())
            .await
            .expect("declare auto-delete");
    }
    declare_x(&ch, "ad-plain", ExchangeKind::Direct).await;
    declare_q(&ch, "ad-q").await;
    declare_q(&ch, "ad-doomed").await;
    // Never bound: it stays.
    assert!(x_exists(&conn, "ad-unbind").await);

    // queue.unbind of the last binding deletes it; not before.
    bind_q(&ch, "ad-q", "ad-unbind", "k1").await;
    bind_q(&ch, "ad-q", "ad-unbind", "k2").await;
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k1".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    assert!(x_exists(&conn, "ad-unbind").await);
    // Unbinding what is not bound changes nothing.
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k1".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind missing binding");
    assert!(x_exists(&conn, "ad-unbind").await);
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k2".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    eventually_x_exists(&conn, "ad-unbind", false).await;

    // Deleting the bound queue removes the binding and the exchange.
    bind_q(&ch, "ad-doomed", "ad-queue-gone", "k").await;
    ch.queue_delete("ad-doomed".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    eventually_x_exists(&conn, "ad-queue-gone", false).await;

    // An exclusive queue goes with its connection, and its bindings with it.
    declare_x_with(
        &ch,
        "ad-owner-gone",
        ExchangeKind::Fanout,
        auto,
        FieldTable::default(),
    )
    .await
    .expect("declare auto-delete");
    let owner = t.connect().await;
    let owner_ch = channel(&owner).await;
    owner_ch
        .queue_declare(
            "ad-exclusive".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare exclusive");
    bind_q(&owner_ch, "ad-exclusive", "ad-owner-gone", "").await;
    owner.close(200, "bye".into()).await.expect("close");
    eventually_x_exists(&conn, "ad-owner-gone", false).await;

    // Exchange-to-exchange: only bindings where it is the source count.
    bind_x(&ch, "ad-plain", "ad-e2e", "k").await;
    bind_x(&ch, "ad-dest-only", "ad-plain", "k").await;
    for (destination, source) in [("ad-plain", "ad-e2e"), ("ad-dest-only", "ad-plain")] {
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            "k".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.unbind");
    }
    eventually_x_exists(&conn, "ad-e2e", false).await;
    assert!(x_exists(&conn, "ad-dest-only").await);

    // Deleting the destination exchange of its last binding deletes it too.
    bind_x(&ch, "ad-plain", "ad-dest-only", "k").await;
    ch.exchange_delete("ad-plain".into(), ExchangeDeleteOptions::default())
        .await
        .expect("exchange.delete");
    eventually_x_exists(&conn, "ad-dest-only", false).await;
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn internal_exchange_refuses_publishes_but_routes_bound_messages() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "int-x",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("declare internal");
    declare_x(&ch, "int-front", ExchangeKind::Direct).await;
    declare_q(&ch, "int-q").await;
    bind_q(&ch, "int-q", "int-x", "").await;
    bind_x(&ch, "int-x", "int-front", "k").await;
    publish(&ch, "int-front", "k", None).await;
    assert_eq!(drain(&ch, "int-q").await, vec!["k"]);

    for x in ["int-x", "amq.rabbitmq.trace"] {
        let ch = channel(&conn).await;
        assert_eq!(
            refused(publish_full(&ch, x, "k", false, BasicProperties::default()).await),
            (
                403,
                format!(
                    "ACCESS_REFUSED - cannot publish to internal {}",
                    t.res("exchange", x)
                )
            )
        );
        assert!(!ch.status().connected(), "a 403 closes the channel");
    }
    let ch = channel(&conn).await;
    assert!(drain(&ch, "int-q").await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_before_its_confirm() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "ret-x", ExchangeKind::Direct).await;
    let properties = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(table(&[("h", text("v"))]));
    let confirmation = publish_full(&ch, "ret-x", "no-route", true, properties)
        .await
        .expect("confirmed");
    // lapin pairs a return with the confirm that follows it.
    let Confirmation::Ack(Some(returned)) = confirmation else {
        panic!("expected an ack carrying the returned message, got {confirmation:?}");
    };
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    let d = &returned.delivery;
    assert_eq!(
        (
            d.exchange.as_str(),
            d.routing_key.as_str(),
            d.data.as_slice()
        ),
        ("ret-x", "no-route", b"no-route".as_slice())
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        d.properties.headers().as_ref(),
        Some(&table(&[("h", text("v"))]))
    );
    // The default exchange returns a message for a queue that does not exist.
    let confirmation = publish_full(&ch, "", "ret-nosuch-q", true, BasicProperties::default())
        .await
        .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.delivery.exchange.as_str(), "");
    // Not mandatory: silently dropped, still confirmed.
    let confirmation = publish_full(&ch, "ret-x", "no-route", false, BasicProperties::default())
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    // Mandatory and routed: no return.
    declare_q(&ch, "ret-q").await;
    bind_q(&ch, "ret-q", "ret-x", "route").await;
    let confirmation = publish_full(&ch, "ret-x", "route", true, BasicProperties::default())
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    assert_eq!(drain(&ch, "ret-q").await, vec!["route"]);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn declare_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = channel(&conn).await;
    // Same properties again, and passive, are fine.
    declare_x(&ch, "decl-x", ExchangeKind::Direct).await;
    declare_x(&ch, "decl-x", ExchangeKind::Direct).await;
    declare_x_with(
        &ch,
        "decl-x",
        ExchangeKind::Fanout,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("passive ignores type and flags");
    // The predeclared exchanges exist.
    for x in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
        "amq.rabbitmq.trace",
    ] {
        declare_x_with(
            &ch,
            x,
            ExchangeKind::Direct,
            PASSIVE_X,
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{x} exists: {e}"));
    }
    // Redeclaring a predeclared exchange with its own properties is fine.
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("same properties");
    declare_x_with(
        &ch,
        "amq.topic",
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("same properties");

    let x = |name: &str| t.res("exchange", name);
    let inequivalent = |arg: &str, name: &str, received: &str, current: &str| {
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for {}: received {received} but current is {current}",
                x(name)
            ),
        )
    };
    let cases = [
        (
            "amq.direct",
            ExchangeKind::Direct,
            DEFAULT_X,
            inequivalent("durable", "amq.direct", "'false'", "'true'"),
        ),
        (
            "decl-x",
            ExchangeKind::Fanout,
            DEFAULT_X,
            inequivalent("type", "decl-x", "'fanout'", "'direct'"),
        ),
        (
            "decl-x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..DEFAULT_X
            },
            inequivalent("auto_delete", "decl-x", "'true'", "'false'"),
        ),
        (
            "decl-x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal: true,
                ..DEFAULT_X
            },
            inequivalent("internal", "decl-x", "'true'", "'false'"),
        ),
        (
            "amq.foo",
            ExchangeKind::Direct,
            DEFAULT_X,
            (
                403,
                "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
                    .to_owned(),
            ),
        ),
        (
            "",
            ExchangeKind::Direct,
            DEFAULT_X,
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
        (
            "",
            ExchangeKind::Direct,
            PASSIVE_X,
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
        (
            "nosuch-x",
            ExchangeKind::Direct,
            PASSIVE_X,
            (404, format!("NOT_FOUND - no {}", x("nosuch-x"))),
        ),
        // Passive never creates, whatever the name.
        (
            "amq.nosuch",
            ExchangeKind::Direct,
            PASSIVE_X,
            (404, format!("NOT_FOUND - no {}", x("amq.nosuch"))),
        ),
    ];
    for (name, kind, options, expected) in cases {
        let ch = channel(&conn).await;
        assert_eq!(
            refused(declare_x_with(&ch, name, kind.clone(), options, FieldTable::default()).await),
            expected,
            "declare '{name}' {kind:?} {options:?}"
        );
        assert!(!ch.status().connected(), "the error closes the channel");
    }
    // The failed declares created nothing.
    assert!(!x_exists(&conn, "amq.foo").await);
    assert!(!x_exists(&conn, "nosuch-x").await);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn alternate_exchange_argument_is_part_of_equivalence() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = channel(&conn).await;
    let ae = |name: &str| table(&[("alternate-exchange", text(name))]);
    declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, ae("alt-1"))
        .await
        .expect("declare");
    declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, ae("alt-1"))
        .await
        .expect("same alternate exchange");
    // Other arguments are not compared.
    let mut more = ae("alt-1");
    more.insert("x-other".into(), AMQPValue::LongInt(1));
    declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, more)
        .await
        .expect("other arguments do not count");
    let prefix = format!(
        "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for {}: ",
        t.res("exchange", "aeq-x")
    );
    for (arguments, expected) in [
        (ae("alt-2"), "received 'alt-2' but current is 'alt-1'"),
        (
            table(&[("alternate-exchange", AMQPValue::LongInt(5))]),
            "received '5' but current is 'alt-1'",
        ),
        (
            FieldTable::default(),
            "received none but current is the value 'alt-1' of type 'longstr'",
        ),
    ] {
        let ch = channel(&conn).await;
        assert_eq!(
            refused(declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, arguments).await),
            (406, format!("{prefix}{expected}"))
        );
    }
    declare_x(&ch, "aeq-none", ExchangeKind::Direct).await;
    let ch = channel(&conn).await;
    assert_eq!(
        refused(
            declare_x_with(
                &ch,
                "aeq-none",
                ExchangeKind::Direct,
                DEFAULT_X,
                ae("alt-1")
            )
            .await
        ),
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for {}: received the value 'alt-1' of type 'longstr' but current is none",
                t.res("exchange", "aeq-none")
            )
        )
    );
    // An alternate-exchange that is not a string is refused at declare.
    let ch = channel(&conn).await;
    assert_eq!(
        refused(
            declare_x_with(
                &ch,
                "aeq-bad",
                ExchangeKind::Direct,
                DEFAULT_X,
                table(&[("alternate-exchange", AMQPValue::LongInt(1))])
            )
            .await
        ),
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in {}",
                t.res("exchange", "aeq-bad")
            )
        )
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection() {
    let t = target().await;
    // RabbitMQ says "invalid" for names that are atoms of its node, "unknown"
    // for the others, such as plugin types that are not enabled.
    for (kind, expected) in [
        ("foo", "COMMAND_INVALID - invalid exchange type 'foo'"),
        (
            "x-delayed-message",
            "COMMAND_INVALID - unknown exchange type 'x-delayed-message'",
        ),
    ] {
        let conn = t.connect().await;
        let ch = channel(&conn).await;
        let error = declare_x_with(
            &ch,
            "type-x",
            ExchangeKind::Custom(kind.into()),
            DEFAULT_X,
            FieldTable::default(),
        )
        .await
        .expect_err("unknown type");
        assert!(error.is_amqp_hard_error(), "{error}");
        assert_eq!(amqp_error(&error), (503, expected.to_owned()));
        let deadline = tokio::time::Instant::now() + WAIT;
        while conn.status().connected() {
            assert!(tokio::time::Instant::now() < deadline, "connection closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // It created nothing.
    let conn = t.connect().await;
    assert!(!x_exists(&conn, "type-x").await);
    conn.close(200, "bye".into()).await.expect("close");
}

/// Sender-selected distribution: `CC` and `BCC` (arrays of strings) add routing keys.
#[tokio::test]
async fn cc_and_bcc_headers_add_routing_keys() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "cc-direct", ExchangeKind::Direct).await;
    declare_x(&ch, "cc-topic", ExchangeKind::Topic).await;
    declare_x(&ch, "cc-fanout", ExchangeKind::Fanout).await;
    let qs = ["cc-a", "cc-b", "cc-c"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    bind_q(&ch, "cc-a", "cc-direct", "a").await;
    bind_q(&ch, "cc-b", "cc-direct", "b").await;
    bind_q(&ch, "cc-c", "cc-topic", "c.*").await;
    // The keys travel on through exchange-to-exchange bindings.
    bind_x(&ch, "cc-topic", "cc-direct", "c.1").await;
    bind_x(&ch, "cc-direct", "cc-fanout", "").await;
    let strings = |keys: &[&str]| {
        AMQPValue::FieldArray(keys.iter().map(|k| text(k)).collect::<Vec<_>>().into())
    };
    for (x, key, headers, expected) in [
        (
            "cc-direct",
            "a",
            table(&[("CC", strings(&["b"]))]),
            &["cc-a", "cc-b"][..],
        ),
        (
            "cc-direct",
            "none",
            table(&[("CC", strings(&["b"])), ("BCC", strings(&["a"]))]),
            &["cc-a", "cc-b"],
        ),
        (
            "cc-direct",
            "none",
            table(&[("CC", strings(&["c.1"]))]),
            &["cc-c"],
        ),
        (
            "cc-fanout",
            "none",
            table(&[("CC", strings(&["a", "c.1", "a"]))]),
            &["cc-a", "cc-c"],
        ),
        // The default exchange: each key names a queue.
        (
            "",
            "cc-a",
            table(&[
                ("CC", strings(&["cc-b"])),
                ("BCC", strings(&["cc-c", "cc-a"])),
            ]),
            &["cc-a", "cc-b", "cc-c"],
        ),
        // Header names are case-sensitive; elements that are not strings are skipped.
        (
            "cc-direct",
            "a",
            table(&[("cc", strings(&["b"]))]),
            &["cc-a"],
        ),
        (
            "cc-direct",
            "none",
            table(&[(
                "CC",
                AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), text("b")].into()),
            )]),
            &["cc-b"],
        ),
    ] {
        assert_eq!(
            reached(&ch, x, key, Some(headers.clone()), &qs).await,
            names(expected),
            "{x} '{key}' {headers:?}"
        );
    }
    // A CC that is not an array makes the message invalid.
    let ch = channel(&conn).await;
    let headers = table(&[("CC", text("b"))]);
    assert_eq!(
        refused(
            publish_full(
                &ch,
                "cc-direct",
                "a",
                false,
                BasicProperties::default().with_headers(headers)
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
                .to_owned()
        )
    );
    let ch = channel(&conn).await;
    for q in qs {
        assert!(drain(&ch, q).await.is_empty(), "{q}");
    }
    conn.close(200, "bye".into()).await.expect("close");
}

/// RabbitMQ removes the `BCC` header from the message its queues get.
#[tokio::test]
async fn bcc_header_is_not_delivered() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_q(&ch, "bcc-q").await;
    let bcc = AMQPValue::FieldArray(vec![text("bcc-q")].into());
    let headers = table(&[("BCC", bcc), ("kept", text("v"))]);
    let properties = BasicProperties::default().with_headers(headers);
    let confirmation = publish_full(&ch, "", "bcc-nosuch", false, properties)
        .await
        .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    let got = ch
        .basic_get("bcc-q".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("routed by BCC");
    assert_eq!(
        got.delivery.properties.headers().as_ref(),
        Some(&table(&[("kept", text("v"))]))
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn delete_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = channel(&conn).await;
    // Deleting what does not exist is fine.
    ch.exchange_delete("del-nosuch".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete missing");
    declare_x(&ch, "del-used", ExchangeKind::Fanout).await;
    declare_x(&ch, "del-dest", ExchangeKind::Fanout).await;
    declare_q(&ch, "del-q").await;
    bind_q(&ch, "del-q", "del-used", "").await;
    bind_x(&ch, "del-dest", "amq.fanout", "").await;
    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        nowait: false,
    };
    for (name, options, expected) in [
        (
            "del-used",
            if_unused,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - {} in use",
                    t.res("exchange", "del-used")
                ),
            ),
        ),
        (
            "amq.direct",
            ExchangeDeleteOptions::default(),
            (
                403,
                format!(
                    "ACCESS_REFUSED - deletion of system {} not allowed",
                    t.res("exchange", "amq.direct")
                ),
            ),
        ),
        // Any amq. name, even one that does not exist.
        (
            "amq.nosuch",
            ExchangeDeleteOptions::default(),
            (
                403,
                format!(
                    "ACCESS_REFUSED - deletion of system {} not allowed",
                    t.res("exchange", "amq.nosuch")
                ),
            ),
        ),
        (
            "",
            ExchangeDeleteOptions::default(),
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
    ] {
        let ch = channel(&conn).await;
        assert_eq!(
            refused(ch.exchange_delete(name.into(), options).await),
            expected,
            "delete '{name}'"
        );
    }
    assert!(x_exists(&conn, "del-used").await);
    // Being a destination does not make an exchange used.
    let ch = channel(&conn).await;
    ch.exchange_delete("del-dest".into(), if_unused)
        .await
        .expect("only a destination");
    assert!(!x_exists(&conn, "del-dest").await);
    ch.exchange_delete("del-used".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete");
    assert!(!x_exists(&conn, "del-used").await);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn deleting_an_exchange_removes_its_bindings_both_ways() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["delb-up", "delb-mid", "delb-down"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    let qs = ["delb-q-mid", "delb-q-down"];
    for q in qs {
        declare_q(&ch, q).await;
    }
    // up -> mid -> down; mid -> q-mid; down -> q-down.
    bind_x(&ch, "delb-mid", "delb-up", "").await;
    bind_x(&ch, "delb-down", "delb-mid", "").await;
    bind_q(&ch, "delb-q-mid", "delb-mid", "").await;
    bind_q(&ch, "delb-q-down", "delb-down", "").await;
    assert_eq!(reached(&ch, "delb-up", "k", None, &qs).await, names(&qs));
    ch.exchange_delete("delb-mid".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete");
    // Recreated under the same name, it has none of the old bindings.
    declare_x(&ch, "delb-mid", ExchangeKind::Fanout).await;
    assert!(reached(&ch, "delb-up", "k", None, &qs).await.is_empty());
    assert!(reached(&ch, "delb-mid", "k", None, &qs).await.is_empty());
    assert_eq!(
        reached(&ch, "delb-down", "k", None, &qs).await,
        names(&["delb-q-down"])
    );
    // A deleted queue's bindings go too: a new queue of that name is unbound.
    ch.queue_delete("delb-q-down".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    declare_q(&ch, "delb-q-down").await;
    assert!(reached(&ch, "delb-down", "k", None, &qs).await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn bind_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = channel(&conn).await;
    declare_x(&ch, "bind-x", ExchangeKind::Direct).await;
    declare_x(&ch, "bind-h", ExchangeKind::Headers).await;
    declare_q(&ch, "bind-q").await;
    let no_exchange = |name: &str| (404, format!("NOT_FOUND - no {}", t.res("exchange", name)));
    let no_queue = |name: &str| (404, format!("NOT_FOUND - no {}", t.res("queue", name)));
    let default_refused = (
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
    );
    #[derive(Debug)]
    enum Op {
        QueueBind(&'static str, &'static str),
        QueueUnbind(&'static str, &'static str),
        /// (destination, source)
        ExchangeBind(&'static str, &'static str),
        ExchangeUnbind(&'static str, &'static str),
    }
    let some = table(&[("x-match", text("some"))]);
    let ok = || Ok(());
    let cases = [
        (Op::QueueBind("bind-q", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::QueueBind("nosuch-q", "bind-x"), FieldTable::default(), Err(no_queue("nosuch-q"))),
        // Both missing: the source is named.
        (Op::QueueBind("nosuch-q", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::QueueBind("bind-q", ""), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeBind("bind-x", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::ExchangeBind("nosuch-x", "bind-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::ExchangeBind("nosuch-d", "nosuch-s"), FieldTable::default(), Err(no_exchange("nosuch-s"))),
        (Op::ExchangeBind("", "bind-x"), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeBind("bind-x", ""), FieldTable::default(), Err(default_refused.clone())),
        // Unbinding never answers 404 (RabbitMQ since 3.2): no end, no binding, fine.
        (Op::QueueUnbind("bind-q", "nosuch-x"), FieldTable::default(), ok()),
        (Op::QueueUnbind("nosuch-q", "bind-x"), FieldTable::default(), ok()),
        (Op::ExchangeUnbind("nosuch-x", "bind-x"), FieldTable::default(), ok()),
        (Op::ExchangeUnbind("bind-x", "nosuch-x"), FieldTable::default(), ok()),
        // ... but the default exchange is still refused.
        (Op::QueueUnbind("bind-q", ""), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeUnbind("", "bind-x"), FieldTable::default(), Err(default_refused.clone())),
        (
            Op::QueueBind("bind-q", "bind-h"),
            some.clone(),
            Err((
                406,
                "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x".to_owned(),
            )),
        ),
        (
            Op::ExchangeBind("bind-x", "bind-h"),
            table(&[("x-match", AMQPValue::LongInt(1))]),
            Err((
                406,
                "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr".to_owned(),
            )),
        ),
    ];
    for (op, arguments, expected) in cases {
        let ch = channel(&conn).await;
        let what = format!("{op:?}");
        let result = match op {
            Op::QueueBind(q, x) => {
                ch.queue_bind(
                    q.into(),
                    x.into(),
                    "k".into(),
                    QueueBindOptions::default(),
                    arguments,
                )
                .await
            }
            Op::QueueUnbind(q, x) => {
                ch.queue_unbind(q.into(), x.into(), "k".into(), arguments)
                    .await
            }
            Op::ExchangeBind(d, s) => {
                ch.exchange_bind(
                    d.into(),
                    s.into(),
                    "k".into(),
                    ExchangeBindOptions::default(),
                    arguments,
                )
                .await
            }
            Op::ExchangeUnbind(d, s) => {
                ch.exchange_unbind(
                    d.into(),
                    s.into(),
                    "k".into(),
                    ExchangeUnbindOptions::default(),
                    arguments,
                )
                .await
            }
        };
        assert_eq!(result.map_err(|e| amqp_error(&e)), expected, "{what}");
    }
    let ch = channel(&conn).await;
    // Unbinding what was never bound is fine.
    ch.queue_unbind(
        "bind-q".into(),
        "bind-x".into(),
        "never".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind of a missing binding");
    ch.exchange_unbind(
        "bind-x".into(),
        "amq.direct".into(),
        "never".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind of a missing binding");
    // Binding twice is one binding: one unbind removes it.
    bind_q(&ch, "bind-q", "bind-x", "twice").await;
    bind_q(&ch, "bind-q", "bind-x", "twice").await;
    ch.queue_unbind(
        "bind-q".into(),
        "bind-x".into(),
        "twice".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    assert!(
        reached(&ch, "bind-x", "twice", None, &["bind-q"])
            .await
            .is_empty()
    );
    // x-match is only checked by headers exchanges.
    bind_q_with(&ch, "bind-q", "bind-x", "k", some).await;
    // The failed binds bound nothing.
    bind_q(&ch, "bind-q", "bind-h", "").await;
    assert_eq!(
        reached(&ch, "bind-h", "", None, &["bind-q"]).await,
        names(&["bind-q"])
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn another_connections_exclusive_queue_cannot_be_bound_or_unbound() {
    let t = target().await;
    let (owner, ch) = t.open().await;
    ch.queue_declare(
        "excl-q".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare exclusive");
    bind_q(&ch, "excl-q", "amq.direct", "bound").await;
    let other = t.connect().await;
    let locked = (
        405,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            t.res("queue", "excl-q")
        ),
    );
    let ch = channel(&other).await;
    assert_eq!(
        refused(
            ch.queue_bind(
                "excl-q".into(),
                "amq.direct".into(),
                "new".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        ),
        locked
    );
    // A missing source is reported first.
    let ch = channel(&other).await;
    assert_eq!(
        refused(
            ch.queue_bind(
                "excl-q".into(),
                "nosuch-x".into(),
                "new".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        ),
        (
            404,
            format!("NOT_FOUND - no {}", t.res("exchange", "nosuch-x"))
        )
    );
    // Unbinding checks exclusivity only for a binding that exists.
    let ch = channel(&other).await;
    ch.queue_unbind(
        "excl-q".into(),
        "amq.direct".into(),
        "never-bound".into(),
        FieldTable::default(),
    )
    .await
    .expect("nothing to unbind");
    assert_eq!(
        refused(
            ch.queue_unbind(
                "excl-q".into(),
                "amq.direct".into(),
                "bound".into(),
                FieldTable::default(),
            )
            .await
        ),
        locked
    );
    // Still bound.
    let ch = channel(&owner).await;
    assert_eq!(
        reached(&ch, "amq.direct", "bound", None, &["excl-q"]).await,
        names(&["excl-q"])
    );
    other.close(200, "bye".into()).await.expect("close");
    owner.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_404() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = channel(&conn).await;
    assert_eq!(
        refused(publish_full(&ch, "nosuch-x", "k", false, BasicProperties::default()).await),
        (
            404,
            format!("NOT_FOUND - no {}", t.res("exchange", "nosuch-x"))
        )
    );
    assert!(!ch.status().connected(), "a 404 closes the channel");
    // Without confirms the error arrives all the same; the connection lives on.
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_publish(
        "nosuch-x".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .expect("publish is asynchronous");
    let deadline = tokio::time::Instant::now() + WAIT;
    while ch.status().connected() {
        assert!(tokio::time::Instant::now() < deadline, "channel closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(conn.status().connected());
    conn.close(200, "bye".into()).await.expect("close");
}

/// Exceptions name the method that failed (lapin does not show class and method ids).
#[tokio::test]
async fn exceptions_name_the_failing_method() {
    let t = target().await;
    let Some(addr) = t.addr else {
        return;
    };
    let declare = |name: &str, kind: &str| {
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        }))
    };
    let close_ok = || {
        AMQPClass::Channel(channel_method::AMQPMethod::CloseOk(
            channel_method::CloseOk {},
        ))
    };
    let mut c = RawClient::open(addr).await;
    c.open_channel(1).await;
    // basic.publish to a missing exchange: 404 on basic.publish (60/40) once the content is in.
    c.send_method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "nosuch-x".into(),
            routing_key: "k".into(),
            mandatory: false,
            immediate: false,
        })),
    )
    .await;
    let header = ContentHeader::from_properties(0, &BasicProperties::default()).expect("header");
    let mut out = BytesMut::new();
    FrameEncoder::new().content(1, &header, &[], 0, &mut out);
    c.send_raw(&out).await;
    let (text, class, method) = c.expect_channel_close(1, 404).await;
    assert_eq!(
        (text.as_str(), class, method),
        ("NOT_FOUND - no exchange 'nosuch-x' in vhost '/'", 60, 40)
    );
    c.send_method(1, close_ok()).await;
    c.open_channel(2).await;
    c.send_method(2, declare("amq.direct", "fanout")).await;
    let (text, class, method) = c.expect_channel_close(2, 406).await;
    assert_eq!((class, method), (40, 10), "{text}");
    c.send_method(2, close_ok()).await;
    c.open_channel(3).await;
    // An unknown type is a connection error on exchange.declare (40/10).
    c.send_method(3, declare("raw-x", "foo")).await;
    let (text, class, method) = c.expect_connection_close(503).await;
    assert_eq!(
        (text.as_str(), class, method),
        ("COMMAND_INVALID - invalid exchange type 'foo'", 40, 10)
    );
    c.close_ok_and_expect_eof().await;
}

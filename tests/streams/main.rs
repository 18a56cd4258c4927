//! Stream queues (`x-queue-type=stream`) as 0-9-1 clients see them, against
//! `docs/streams-rabbitmq-behaviour.md` (RabbitMQ 3.10.8's reply codes and
//! texts, and the documented rules after it).
//!
//! With `WARREN_REFERENCE_URI` set (e.g.
//! `amqp://guest:guest@127.0.0.1:5702/%2f`) the tests that make sense against
//! RabbitMQ talk to that broker instead of an in-process Warren (queue names
//! are unique per run, and deleted at the end); the tests of Warren's own
//! behaviour (named consumers, exact filtering, restarts, the management
//! API, clamping a past-the-end offset, basic.recover's 540) return early.

#[path = "../common/mod.rs"]
mod common;

mod consume;
mod declare;
mod durability;
mod filtering;
mod named;
mod publish;
mod refusals;
mod retention;

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::TestBroker;
use common::lapin::{amqp_error, confirming, connect, publish_acked, table, text};
use futures_util::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer, Event};

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// The broker under test: Warren in-process, or the reference broker.
struct Target {
    uri: String,
    vhost: String,
    broker: Option<TestBroker>,
}

/// Whether the tests run against the reference broker.
fn reference() -> bool {
    std::env::var("WARREN_REFERENCE_URI").is_ok()
}

/// Warren started in-process, or the broker `WARREN_REFERENCE_URI` names.
async fn target() -> Target {
    if let Some((uri, vhost)) = common::reference_broker() {
        return Target {
            uri,
            vhost,
            broker: None,
        };
    }
    let broker = common::start().await;
    Target {
        uri: broker.uri(""),
        vhost: "/".to_owned(),
        broker: Some(broker),
    }
}

/// A connection that also hears the exceptions the broker closes with.
struct Conn {
    conn: Connection,
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl std::ops::Deref for Conn {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Conn {
    /// A plain channel.
    async fn channel(&self) -> Channel {
        self.conn.create_channel().await.expect("channel")
    }

    /// A channel in confirm mode.
    async fn confirming(&self) -> Channel {
        confirming(&self.conn).await
    }

    /// The reply code and text of the next channel or connection exception.
    async fn exception(&mut self) -> (u16, String) {
        loop {
            let event = tokio::time::timeout(common::WAIT, self.events.next())
                .await
                .expect("an exception in time")
                .expect("events stream open");
            if let Event::Error(e) = event
                && let lapin::ErrorKind::ProtocolError(e) = e.kind()
            {
                return (e.get_id(), e.get_message().to_string());
            }
        }
    }

    /// The exception behind a refused request: its own error when it carries
    /// one, else the next exception the connection heard.
    async fn refusal<T: std::fmt::Debug>(&mut self, result: lapin::Result<T>) -> (u16, String) {
        let error = result.expect_err("the broker refuses");
        match error.kind() {
            lapin::ErrorKind::ProtocolError(_) => amqp_error(&error),
            _ => self.exception().await,
        }
    }
}

impl Target {
    /// A new connection.
    async fn conn(&self) -> Conn {
        let conn = connect(&self.uri).await;
        let events = Box::pin(conn.events_listener());
        Conn { conn, events }
    }

    /// The in-process broker (Warren only).
    fn broker(&self) -> &TestBroker {
        self.broker.as_ref().expect("an in-process broker")
    }

    /// A queue name unique to this run: `base-<pid>-<n>`.
    fn name(&self, base: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "{base}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `queue 'q' in vhost '/'`.
    fn res(&self, queue: &str) -> String {
        format!("queue '{queue}' in vhost '{}'", self.vhost)
    }

    /// Deletes the queues (best effort, on a connection of its own).
    async fn cleanup(&self, queues: &[&str]) {
        let conn = connect(&self.uri).await;
        for q in queues {
            let ch = conn.create_channel().await.expect("channel");
            let _ = ch
                .queue_delete((*q).into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Durable, the rest off.
const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// `x-queue-type=stream` and these arguments.
fn stream_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = table(extra);
    args.insert("x-queue-type".into(), text("stream"));
    args
}

/// queue.declare of a stream with these flags and extra arguments.
async fn try_declare(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    extra: &[(&str, AMQPValue)],
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name.into(), options, stream_args(extra))
        .await
}

/// Declares a durable stream, which must succeed.
async fn declare_stream(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    try_declare(ch, name, DURABLE, extra)
        .await
        .unwrap_or_else(|e| panic!("declare stream {name}: {e}"));
}

/// Publishes bodies `m<i>` for `range` with confirms on the default exchange.
async fn publish_range(ch: &Channel, queue: &str, range: std::ops::Range<u32>) {
    for i in range {
        publish_acked(
            ch,
            "",
            queue,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
}

/// basic.consume with these arguments.
async fn try_consume(
    ch: &Channel,
    queue: &str,
    tag: &str,
    args: &[(&str, AMQPValue)],
) -> lapin::Result<Consumer> {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        table(args),
    )
    .await
}

/// A new channel with this prefetch and a consumer on it with these arguments.
async fn consumer_on(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    args: &[(&str, AMQPValue)],
) -> (Channel, Consumer) {
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let consumer = try_consume(&ch, queue, "", args).await.expect("consume");
    (ch, consumer)
}

/// A consumer from `x-stream-offset` = `offset` (a string), prefetch 100.
async fn consumer_from(conn: &Connection, queue: &str, offset: &str) -> (Channel, Consumer) {
    consumer_on(conn, queue, 100, &[("x-stream-offset", text(offset))]).await
}

/// The `x-stream-offset` header of a delivery (type long).
fn offset_of(d: &Delivery) -> i64 {
    match d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-stream-offset"))
    {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("x-stream-offset: {other:?}"),
    }
}

/// A delivery's body as text.
fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// The next `n` deliveries, acked one by one when `ack`.
async fn take(consumer: &mut Consumer, n: usize, ack: bool) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let d = common::lapin::next_delivery(consumer).await;
        if ack {
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
        out.push(d);
    }
    out
}

/// The bodies of the next `n` deliveries (each acked).
async fn bodies(consumer: &mut Consumer, n: usize) -> Vec<String> {
    take(consumer, n, true).await.iter().map(body).collect()
}

/// `m<i>` for `range`.
fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// Asserts that nothing more arrives for a while.
async fn nothing_more(consumer: &mut Consumer) {
    if let Ok(Some(d)) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("unexpected delivery: {:?}", d.map(|d| body(&d)));
    }
}

#[tokio::test]
async fn two_consumers_read_the_same_messages_from_first() {
    let t = target().await;
    let q = t.name("s");
    let conn = t.conn().await;
    let ch = conn.confirming().await;
    declare_stream(&ch, &q, &[]).await;
    publish_range(&ch, &q, 0..5).await;
    for _ in 0..2 {
        let (_c, mut consumer) =
            consumer_on(&conn, &q, 2, &[("x-stream-offset", text("first"))]).await;
        let got = take(&mut consumer, 5, true).await;
        for (i, d) in got.iter().enumerate() {
            assert_eq!(body(d), format!("m{i}"));
            assert_eq!(offset_of(d), i as i64);
        }
    }
    t.cleanup(&[&q]).await;
}

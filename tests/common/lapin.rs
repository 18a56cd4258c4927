//! lapin, a real client, as the tests use it: connecting, declaring, publishing,
//! consuming, and the reply code and text of what the broker refused.

use std::fmt::Debug;
use std::ops::Deref;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, Event,
};

use super::{TestBroker, WAIT};

/// Connects to `uri` within [`WAIT`].
pub async fn connect(uri: &str) -> Connection {
    tokio::time::timeout(
        WAIT,
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// A new channel in confirm mode: a publish confirmed is in its queues.
pub async fn confirming(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// A lapin connection that also hears the exceptions the broker closes with.
pub struct Client {
    pub conn: Connection,
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl Deref for Client {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Client {
    /// Connects to `broker`.
    pub async fn connect(broker: &TestBroker) -> Self {
        Self::connect_with(broker, "").await
    }

    /// Connects to `broker` with a URI query (e.g. "frame_max=4096").
    pub async fn connect_with(broker: &TestBroker, query: &str) -> Self {
        let conn = connect(&broker.uri(query)).await;
        let events = Box::pin(conn.events_listener());
        Client { conn, events }
    }

    /// A new channel.
    pub async fn channel(&self) -> Channel {
        self.conn.create_channel().await.expect("channel")
    }

    /// A new channel in confirm mode (see [`confirming`]).
    pub async fn confirming(&self) -> Channel {
        confirming(&self.conn).await
    }

    /// The reply code and text of the next channel or connection exception.
    pub async fn exception(&mut self) -> (u16, String) {
        loop {
            let event = tokio::time::timeout(WAIT, self.events.next())
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

    /// Closes the connection with 200 and waits for close-ok.
    pub async fn close(self) {
        self.conn.close(200, "bye".into()).await.expect("close");
    }
}

/// The reply code and text of the channel or connection exception behind `error`.
pub fn amqp_error(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP exception, got {other:?}"),
    }
}

/// The reply code and text of the exception with which the broker refused `result`.
pub fn refused(result: Result<impl Debug, lapin::Error>) -> (u16, String) {
    amqp_error(&result.expect_err("the broker refuses"))
}

/// A field table (arguments or headers) of these entries.
pub fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (key, value) in entries {
        t.insert(ShortString::from(*key), value.clone());
    }
    t
}

/// A long-string field value.
pub fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// queue.declare with default flags and no arguments; its declare-ok.
pub async fn declare_queue(ch: &Channel, name: &str) -> lapin::Queue {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"))
}

/// queue.declare of an exclusive queue, flags otherwise off; its declare-ok.
pub async fn declare_exclusive_queue(ch: &Channel, name: &str) -> lapin::Queue {
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), exclusive, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare exclusive queue {name}: {e}"))
}

/// (ready messages, consumers) of a queue, from a passive declare on a fresh channel.
pub async fn counts(conn: &Connection, queue: &str) -> (u32, u32) {
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue exists");
    let _ = ch.close(200, "done".into()).await;
    (q.message_count(), q.consumer_count())
}

/// basic.publish, then its confirm (`NotRequested` on a channel not in confirm mode).
pub async fn try_publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    properties: BasicProperties,
) -> Result<Confirmation, lapin::Error> {
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions {
            mandatory,
            immediate: false,
        },
        body,
        properties,
    )
    .await?
    .await
}

/// Publishes on a channel in confirm mode and asserts the broker acks it.
pub async fn publish_acked(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirm = try_publish(ch, exchange, routing_key, false, body, properties)
        .await
        .expect("publish");
    assert!(confirm.is_ack());
}

/// basic.consume with a server-chosen tag and default options.
pub async fn consume(ch: &Channel, queue: &str) -> Consumer {
    consume_with(ch, queue, "", BasicConsumeOptions::default()).await
}

/// basic.consume with this tag and these options.
pub async fn consume_with(
    ch: &Channel,
    queue: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> Consumer {
    ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
        .expect("consume")
}

/// The next delivery of a consumer (or of merged consumers), within [`WAIT`].
pub async fn next_delivery<S>(consumer: &mut S) -> Delivery
where
    S: Stream<Item = lapin::Result<Delivery>> + Unpin,
{
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery")
}

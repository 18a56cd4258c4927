//! queue.declare / bind / unbind / purge / delete as a RabbitMQ client sees them:
//! server-named, passive, durable and exclusive queues, auto-delete, declare-ok
//! counts, equivalence on redeclare, `x-` argument checks, the `amq.` prefix and
//! the empty-name shortcut. Reply codes and texts are RabbitMQ's.

#[path = "../common/mod.rs"]
mod common;

mod bind_purge_delete;
mod declare;
mod exclusive_and_auto_delete;

use common::eventually;
use common::lapin::{Client, amqp_error, counts, publish_acked};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

/// queue.declare with these flags and arguments.
async fn declare_with(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<lapin::Queue, lapin::Error> {
    ch.queue_declare(name.into(), options, arguments).await
}

/// A passive declare: it only looks.
const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Whether a passive declare finds the queue (a fresh channel each time: 404 closes it).
async fn exists(client: &Client, name: &str) -> bool {
    let ch = client.channel().await;
    match declare_with(&ch, name, PASSIVE, FieldTable::default()).await {
        Ok(_) => {
            let _ = ch.close(200, "done".into()).await;
            true
        }
        // Another connection's exclusive queue exists too.
        Err(e) if amqp_error(&e).0 == 405 => true,
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

/// Polls until a passive declare gives the expected answer, within the generous bound.
async fn eventually_exists(client: &Client, name: &str, expected: bool) {
    let now = eventually(expected, async || exists(client, name).await).await;
    assert_eq!(
        now, expected,
        "queue '{name}' exists should become {expected}"
    );
}

/// Polls until the counts of a queue reach the expected ones.
async fn eventually_counts(client: &Client, name: &str, expected: (u32, u32)) {
    let now = eventually(expected, async || counts(client, name).await).await;
    assert_eq!(
        now, expected,
        "queue '{name}': counts {now:?}, expected {expected:?}"
    );
}

/// queue.bind without arguments.
async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// Publishes with confirms, so the message is in its queues when this returns.
async fn publish_to(ch: &Channel, exchange: &str, key: &str, body: &[u8], headers: FieldTable) {
    let properties = BasicProperties::default().with_headers(headers);
    publish_acked(ch, exchange, key, body, properties).await;
}

/// Publishes to a queue through the default exchange, with confirms.
async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_to(ch, "", queue, body, FieldTable::default()).await;
}

/// What another connection hears about the exclusive queue 'excl'.
const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'excl' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.";

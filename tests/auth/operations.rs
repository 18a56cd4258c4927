//! configure / write / read on each AMQP operation, for a user whose
//! permissions on `/` are configure `^c`, write `^w`, read `^r`.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use super::common::lapin::{connect, declare_queue, publish_acked, refused, table, text};
use super::common::{self, TestBroker};
use super::{add_user, permit, uri};

/// A broker where guest declared: exchanges x1 (direct), wx (fanout), rx (direct);
/// queues q1, rq, wq, cq; wx bound to rq. Bob may configure `^c`, write `^w`, read `^r`.
async fn setup() -> (TestBroker, Connection) {
    let broker = common::start().await;
    let guest = connect(&broker.uri("")).await;
    let ch = guest.create_channel().await.expect("channel");
    for (x, kind) in [
        ("x1", ExchangeKind::Direct),
        ("wx", ExchangeKind::Fanout),
        ("rx", ExchangeKind::Direct),
    ] {
        ch.exchange_declare(
            x.into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    }
    for q in ["q1", "rq", "wq", "cq"] {
        declare_queue(&ch, q).await;
    }
    ch.queue_bind(
        "rq".into(),
        "wx".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    add_user(&broker, "bob", &[]);
    permit(&broker, "/", "bob", ["^c", "^w", "^r"]);
    let bob = connect(&uri(&broker, "bob", "%2f")).await;
    (broker, bob)
}

fn denied(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'bob'"),
    )
}

async fn channel(conn: &Connection) -> Channel {
    conn.create_channel().await.expect("channel")
}

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

#[tokio::test]
async fn declare_and_delete_need_configure() {
    let (_broker, bob) = setup().await;
    let declare = async |name: &str, args: FieldTable| {
        channel(&bob)
            .await
            .queue_declare(name.into(), QueueDeclareOptions::default(), args)
            .await
    };
    assert_eq!(
        refused(declare("q", FieldTable::default()).await),
        denied("queue", "q")
    );
    declare("cq", FieldTable::default())
        .await
        .expect("configure ^c");
    // A passive declare checks nothing.
    channel(&bob)
        .await
        .queue_declare("q1".into(), PASSIVE, FieldTable::default())
        .await
        .expect("passive");
    // A new queue with a dead-letter exchange also needs read on itself.
    let dlx = table(&[("x-dead-letter-exchange", text("zz"))]);
    assert_eq!(refused(declare("cq2", dlx).await), denied("queue", "cq2"));
    // Server-named queues are checked under their generated name.
    let (code, message) = refused(declare("", FieldTable::default()).await);
    assert_eq!(code, 403);
    assert!(message.contains("access to queue 'amq.gen-"), "{message}");

    let xdeclare = async |name: &str, passive: bool| {
        channel(&bob)
            .await
            .exchange_declare(
                name.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
    };
    assert_eq!(refused(xdeclare("x", false).await), denied("exchange", "x"));
    xdeclare("cx", false).await.expect("configure ^c");
    xdeclare("x1", true).await.expect("passive");

    let ch = channel(&bob).await;
    let deleted = ch
        .exchange_delete("x1".into(), ExchangeDeleteOptions::default())
        .await;
    assert_eq!(refused(deleted), denied("exchange", "x1"));
    let ch = channel(&bob).await;
    let deleted = ch
        .queue_delete("q1".into(), QueueDeleteOptions::default())
        .await;
    assert_eq!(refused(deleted), denied("queue", "q1"));
    let ch = channel(&bob).await;
    ch.queue_delete("cq".into(), QueueDeleteOptions::default())
        .await
        .expect("configure ^c");
    ch.exchange_delete("cx".into(), ExchangeDeleteOptions::default())
        .await
        .expect("configure ^c");
}

#[tokio::test]
async fn publish_needs_write_on_the_exchange() {
    let (_broker, bob) = setup().await;
    let publish = async |exchange: &str| {
        let ch = super::common::lapin::confirming(&bob).await;
        ch.basic_publish(
            exchange.into(),
            "cq".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await?
        .await
    };
    // The default exchange is amq.default for permissions.
    assert_eq!(
        refused(publish("").await),
        denied("exchange", "amq.default")
    );
    assert_eq!(refused(publish("x1").await), denied("exchange", "x1"));
    let ch = super::common::lapin::confirming(&bob).await;
    publish_acked(&ch, "wx", "", b"ok", BasicProperties::default()).await;
}

#[tokio::test]
async fn consume_get_and_purge_need_read_on_the_queue() {
    let (_broker, bob) = setup().await;
    let ch = channel(&bob).await;
    let got = ch.basic_get("cq".into(), BasicGetOptions::default()).await;
    assert_eq!(refused(got), denied("queue", "cq"));
    let ch = channel(&bob).await;
    let consumed = ch
        .basic_consume(
            "cq".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(refused(consumed), denied("queue", "cq"));
    let ch = channel(&bob).await;
    let purged = ch
        .queue_purge("cq".into(), QueuePurgeOptions::default())
        .await;
    assert_eq!(refused(purged), denied("queue", "cq"));

    let ch = channel(&bob).await;
    ch.basic_get("rq".into(), BasicGetOptions::default())
        .await
        .expect("read ^r");
    ch.basic_consume(
        "rq".into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("read ^r");
    ch.queue_purge("rq".into(), QueuePurgeOptions::default())
        .await
        .expect("read ^r");
}

#[tokio::test]
async fn bindings_need_write_on_the_destination_and_read_on_the_source() {
    let (_broker, bob) = setup().await;
    let bind = async |queue: &str, exchange: &str| {
        channel(&bob)
            .await
            .queue_bind(
                queue.into(),
                exchange.into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    };
    assert_eq!(refused(bind("cq", "x1").await), denied("queue", "cq"));
    assert_eq!(refused(bind("wq", "x1").await), denied("exchange", "x1"));
    bind("wq", "rx").await.expect("write ^w, read ^r");
    let unbound = channel(&bob)
        .await
        .queue_unbind("cq".into(), "rx".into(), "k".into(), FieldTable::default())
        .await;
    assert_eq!(refused(unbound), denied("queue", "cq"));
    let xbind = channel(&bob)
        .await
        .exchange_bind(
            "x1".into(),
            "rx".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(refused(xbind), denied("exchange", "x1"));
    channel(&bob)
        .await
        .exchange_bind(
            "wx".into(),
            "rx".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("write ^w on wx, read ^r on rx");
}

#[tokio::test]
async fn permission_changes_apply_to_open_channels() {
    let (broker, bob) = setup().await;
    let ch = super::common::lapin::confirming(&bob).await;
    publish_acked(&ch, "wx", "", b"ok", BasicProperties::default()).await;
    permit(&broker, "/", "bob", ["^c", "^nothing", "^r"]);
    let result = ch
        .basic_publish(
            "wx".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let result = match result {
        Ok(confirm) => confirm.await,
        Err(e) => Err(e),
    };
    assert_eq!(refused(result), denied("exchange", "wx"));
}

//! Durability as a client sees it across a broker restart on the same data
//! directory: durable exchanges, queues and bindings come back, persistent
//! messages in durable queues come back in order, transient things do not,
//! delivered-but-unacked messages come back redelivered, settled ones stay
//! gone, and a queue deeper than its memory window keeps every message in order.
//! Also the memory alarm (`alarms.rs`). kill -9 is exercised by interop/crash/.

#[path = "../common/mod.rs"]
mod common;

mod alarms;
mod deep;

use common::lapin::{Client, amqp_error, counts, publish_acked, table, text};
use common::{TestBroker, start_at};
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn transient() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

async fn declare_durable(ch: &Channel, name: &str) {
    ch.queue_declare(name.into(), DURABLE, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

/// Stops `broker` (a clean shutdown) and starts another on its data directory.
async fn restart(broker: TestBroker, dir: &std::path::Path) -> TestBroker {
    broker.stop().await;
    start_at(dir, |_| {}).await
}

/// Takes every message with basic.get (auto-ack): (body, redelivered) in order.
async fn drain(ch: &Channel, queue: &str) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        out.push((m.delivery.data.clone(), m.delivery.redelivered));
    }
    out
}

async fn exists(client: &Client, kind: &str, name: &str) -> bool {
    let ch = client.channel().await;
    let found = match kind {
        "queue" => ch
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|_| ()),
        _ => {
            ch.exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        }
    };
    match found {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

#[tokio::test]
async fn durable_things_and_persistent_messages_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await
    .expect("durable exchange");
    ch.exchange_declare(
        "tx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("transient exchange");
    let args = table(&[("x-queue-mode-note", text("kept as given"))]);
    ch.queue_declare("dq".into(), DURABLE, args.clone())
        .await
        .expect("durable queue");
    ch.queue_declare(
        "tq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("transient queue");
    ch.queue_bind(
        "dq".into(),
        "dx".into(),
        "a.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    publish_acked(&ch, "dx", "a.1", b"p1", persistent()).await;
    publish_acked(&ch, "dx", "a.2", b"t1", transient()).await;
    publish_acked(&ch, "", "dq", b"p2", persistent()).await;
    publish_acked(&ch, "", "tq", b"p3", persistent()).await;
    drop(client);

    let broker = restart(broker, dir.path()).await;
    let client = Client::connect(&broker).await;
    assert!(exists(&client, "exchange", "dx").await);
    assert!(!exists(&client, "exchange", "tx").await);
    assert!(exists(&client, "queue", "dq").await);
    assert!(!exists(&client, "queue", "tq").await);
    // Same arguments: an equivalent redeclare is fine.
    let ch = client.confirming().await;
    ch.queue_declare("dq".into(), DURABLE, args)
        .await
        .expect("equivalent redeclare");
    let got = drain(&ch, "dq").await;
    let bodies: Vec<&[u8]> = got.iter().map(|(b, _)| b.as_slice()).collect();
    assert_eq!(bodies, [&b"p1"[..], b"p2"], "persistent ones, in order");
    // The binding came back.
    publish_acked(&ch, "dx", "a.3", b"again", persistent()).await;
    assert_eq!(counts(&client, "dq").await.0, 1);
    broker.stop().await;
}

#[tokio::test]
async fn deleted_and_unbound_things_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_durable(&ch, "keep").await;
    declare_durable(&ch, "gone").await;
    ch.queue_bind(
        "keep".into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    ch.queue_unbind(
        "keep".into(),
        "amq.direct".into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    publish_acked(&ch, "", "gone", b"m", persistent()).await;
    ch.queue_delete("gone".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let exclusive = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("mine".into(), exclusive, FieldTable::default())
        .await
        .expect("exclusive durable queue");
    drop(client);

    let broker = restart(broker, dir.path()).await;
    let client = Client::connect(&broker).await;
    assert!(exists(&client, "queue", "keep").await);
    assert!(!exists(&client, "queue", "gone").await);
    assert!(
        !exists(&client, "queue", "mine").await,
        "exclusive queues never persist"
    );
    let ch = client.confirming().await;
    publish_acked(&ch, "amq.direct", "k", b"m", persistent()).await;
    assert_eq!(counts(&client, "keep").await.0, 0, "the unbind persisted");
    broker.stop().await;
}

#[tokio::test]
async fn unacked_deliveries_come_back_redelivered_and_acked_ones_do_not() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_durable(&ch, "work").await;
    for body in ["a", "b", "c", "d", "e"] {
        publish_acked(&ch, "", "work", body.as_bytes(), persistent()).await;
    }
    let consumer_ch = client.channel().await;
    consumer_ch
        .basic_qos(3, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_ch
        .basic_consume(
            "work".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut tags = Vec::new();
    for _ in 0..3 {
        let d = common::lapin::next_delivery(&mut consumer).await;
        tags.push((d.data.clone(), d.delivery_tag));
    }
    assert_eq!(tags[0].0, b"a");
    consumer_ch
        .basic_ack(tags[0].1, BasicAckOptions::default())
        .await
        .expect("ack");
    // The ack freed credit for "d"; "e" is never delivered.
    let d = common::lapin::next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"d");
    assert_eq!(counts(&client, "work").await.0, 1);
    drop(consumer);
    drop(client);

    let broker = restart(broker, dir.path()).await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let got = drain(&ch, "work").await;
    assert_eq!(
        got,
        [
            (b"b".to_vec(), true),
            (b"c".to_vec(), true),
            (b"d".to_vec(), true),
            (b"e".to_vec(), false)
        ],
        "delivered ones redelivered, the never-delivered one not, the acked one gone"
    );
    drop(client);

    // Consumed with auto-ack: nothing is left after another restart.
    let broker = restart(broker, dir.path()).await;
    let client = Client::connect(&broker).await;
    assert_eq!(counts(&client, "work").await.0, 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_queue_deeper_than_its_memory_window_keeps_every_message_in_order() {
    const N: usize = 12_000;
    let dir = tempfile::tempdir().expect("dir");
    // Paging from the first byte: transient messages past the window go to
    // disk too, as they do under memory pressure.
    let broker = start_at(dir.path(), |c| c.memory_paging_ratio = 0.0).await;
    let paging = common::eventually(true, async || broker.broker.storage.memory_pressure()).await;
    assert!(paging, "memory pressure on");
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_durable(&ch, "deep").await;
    ch.queue_declare(
        "deep-transient".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    for i in 0..N {
        let body = i.to_string();
        ch.basic_publish(
            "".into(),
            "deep".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .expect("publish");
        ch.basic_publish(
            "".into(),
            "deep-transient".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            transient(),
        )
        .await
        .expect("publish");
    }
    assert!(ch.wait_for_confirms().await.expect("confirms").is_empty());
    assert_eq!(counts(&client, "deep").await.0 as usize, N);
    assert_eq!(counts(&client, "deep-transient").await.0 as usize, N);
    let paged = broker.broker.storage.store().queue_ids().expect("ids");
    assert_eq!(paged.len(), 2, "both queues hold messages on disk");
    // A consumer drains the transient one in order (paged back in as it goes).
    let consumer_ch = client.channel().await;
    consumer_ch
        .basic_qos(500, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_ch
        .basic_consume(
            "deep-transient".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for i in 0..N {
        let d = tokio::time::timeout(common::WAIT, consumer.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("delivery");
        assert_eq!(d.data, i.to_string().as_bytes(), "delivery {i}");
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    drop(consumer);
    drop(client);

    let broker = restart(broker, dir.path()).await;
    let client = Client::connect(&broker).await;
    assert_eq!(counts(&client, "deep").await.0 as usize, N);
    let ch = client.channel().await;
    let got = drain(&ch, "deep").await;
    assert_eq!(got.len(), N);
    for (i, (body, redelivered)) in got.iter().enumerate() {
        assert_eq!(body, i.to_string().as_bytes(), "message {i}");
        assert!(!redelivered, "message {i} was never delivered");
    }
    broker.stop().await;
}

#[tokio::test]
async fn settled_messages_give_their_space_back() {
    // Fill and drain the same durable queue again and again: the data
    // directory stops growing (sled reuses the space of removed messages).
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_durable(&ch, "cycle").await;
    let body = vec![b'x'; 4096];
    let mut sizes = Vec::new();
    for _ in 0..12 {
        for _ in 0..2000 {
            ch.basic_publish(
                "".into(),
                "cycle".into(),
                BasicPublishOptions::default(),
                &body,
                persistent(),
            )
            .await
            .expect("publish");
        }
        assert!(ch.wait_for_confirms().await.expect("confirms").is_empty());
        let drained = drain(&ch, "cycle").await;
        assert_eq!(drained.len(), 2000);
        sizes.push(dir_size(dir.path()));
    }
    drop(client);
    broker.stop().await;
    // 12 × 2000 × 4 KiB = 96 MiB went through; the directory levels off
    // after the first cycles instead of growing with every one.
    let last = *sizes.last().expect("sizes");
    assert!(
        last < 48 << 20 && last <= sizes[2] * 3 / 2,
        "data dir sizes per cycle: {sizes:?} (should level off)"
    );
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

#[tokio::test]
async fn users_vhosts_and_permissions_survive_a_restart() {
    use warren::auth::{PermissionDef, UserDef, VHostDef};
    let dir = tempfile::tempdir().expect("dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let b = broker.broker.clone();
    b.add_vhost(VHostDef {
        name: "orders".into(),
        description: String::new(),
        tags: Vec::new(),
    });
    b.auth
        .put_user(UserDef {
            name: "bob".into(),
            password_hash: warren::auth::hashing::hash_password("s3cret"),
            hashing_algorithm: "rabbit_password_hashing_sha256".into(),
            tags: Vec::new(),
            limits: Default::default(),
        })
        .expect("user");
    b.auth
        .set_permissions(PermissionDef {
            user: "bob".into(),
            vhost: "orders".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect("permissions");
    drop(b);

    let broker = restart(broker, dir.path()).await;
    let uri = format!("amqp://bob:s3cret@{}/orders", broker.addr);
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .expect("bob logs in to his vhost after the restart");
    let ch = conn.create_channel().await.expect("channel");
    declare_durable(&ch, "bobs-queue").await;
    let _ = conn.close(200, "bye".into()).await;
    broker.stop().await;
}

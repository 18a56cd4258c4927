//! Exclusive queues belong to their connection; auto-delete queues go with their
//! last consumer.

use lapin::options::*;
use lapin::types::FieldTable;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, queue};

use crate::common::lapin::{Client, consume_with, counts, declare_exclusive_queue, refused};
use crate::common::raw::{RawClient, Seen};
use crate::common::start;
use crate::{LOCKED, PASSIVE, bind, declare_with, eventually_exists, exists, publish};

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection() {
    let broker = start().await;
    let owner = Client::connect(&broker).await;
    let other = Client::connect(&broker).await;
    let ch = owner.channel().await;
    declare_exclusive_queue(&ch, "excl").await;
    publish(&owner.confirming().await, "excl", b"m").await;

    let locked = (405, LOCKED.to_owned());
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let c = other.channel().await;
    assert_eq!(
        refused(declare_with(&c, "excl", exclusive, FieldTable::default()).await),
        locked,
        "declare"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(declare_with(&c, "excl", PASSIVE, FieldTable::default()).await),
        locked,
        "passive declare"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(
            c.basic_consume(
                "excl".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        locked,
        "consume"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(bind(&c, "excl", "amq.direct", "k").await),
        locked,
        "bind"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(
            c.queue_delete("excl".into(), QueueDeleteOptions::default())
                .await
        ),
        locked,
        "delete"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(
            c.queue_purge("excl".into(), QueuePurgeOptions::default())
                .await
        ),
        locked,
        "purge"
    );
    let c = other.channel().await;
    assert_eq!(
        refused(c.basic_get("excl".into(), BasicGetOptions::default()).await),
        locked,
        "get"
    );
    // The owner uses it as any queue.
    assert_eq!(counts(&owner, "excl").await, (1, 0));
    let got = ch
        .basic_get("excl".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"m");

    // Deleted when the owner connection closes.
    owner.close().await;
    eventually_exists(&other, "excl", false).await;
    other.close().await;
}

#[tokio::test]
async fn exclusive_queue_goes_when_its_connection_dies() {
    let broker = start().await;
    let watcher = Client::connect(&broker).await;
    let mut raw = RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    let declare = queue::Declare {
        queue: "excl".into(),
        exclusive: true,
        ..Default::default()
    };
    raw.send_method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))
        .await;
    assert!(matches!(raw.next().await, Seen::Frame(Frame::Method(1, _))));
    assert!(exists(&watcher, "excl").await);
    // The TCP connection goes away without connection.close.
    drop(raw);
    eventually_exists(&watcher, "excl", false).await;
    watcher.close().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare_with(&ch, "ad", auto_delete, FieldTable::default())
        .await
        .expect("declare");
    // Never had a consumer: it stays.
    assert!(exists(&client, "ad").await);
    let c1 = consume_with(&ch, "ad", "c1", BasicConsumeOptions::default()).await;
    let c2 = consume_with(&ch, "ad", "c2", BasicConsumeOptions::default()).await;
    ch.basic_cancel(c1.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel c1");
    // One consumer left: it stays.
    assert_eq!(counts(&client, "ad").await, (0, 1));
    ch.basic_cancel(c2.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel c2");
    eventually_exists(&client, "ad", false).await;

    // Also when the last consumer's channel closes.
    let ch = client.channel().await;
    declare_with(&ch, "ad2", auto_delete, FieldTable::default())
        .await
        .expect("declare");
    let _c = consume_with(&ch, "ad2", "", BasicConsumeOptions::default()).await;
    ch.close(200, "done".into()).await.expect("close channel");
    eventually_exists(&client, "ad2", false).await;
    client.close().await;
}

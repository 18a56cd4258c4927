//! queue.declare / bind / unbind / purge / delete as a RabbitMQ client sees them:
//! server-named, passive, durable and exclusive queues, auto-delete, declare-ok
//! counts, equivalence on redeclare, `x-` argument checks, the `amq.` prefix and
//! the empty-name shortcut. Reply codes and texts are RabbitMQ's.

mod common;

use std::time::Duration;

use common::{TestBroker, WAIT};
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

/// A lapin connection.
struct Client {
    conn: Connection,
}

impl Client {
    async fn connect(broker: &TestBroker) -> Self {
        let conn = tokio::time::timeout(
            WAIT,
            Connection::connect(&broker.uri(""), ConnectionProperties::default()),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        Client { conn }
    }

    async fn channel(&self) -> Channel {
        self.conn.create_channel().await.expect("channel")
    }

    async fn close(self) {
        self.conn.close(200, "bye".into()).await.expect("close");
    }
}

/// The reply code and text of the channel or connection exception behind `error`.
fn amqp_error(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP exception, got {other:?}"),
    }
}

fn refused(result: Result<impl std::fmt::Debug, lapin::Error>) -> (u16, String) {
    amqp_error(&result.expect_err("the broker refuses"))
}

fn args(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

async fn declare_with(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<lapin::Queue, lapin::Error> {
    ch.queue_declare(name.into(), options, arguments).await
}

async fn declare(ch: &Channel, name: &str) -> lapin::Queue {
    declare_with(
        ch,
        name,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare")
}

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// (ready messages, consumers) from a passive declare on a fresh channel.
async fn counts(client: &Client, name: &str) -> (u32, u32) {
    let ch = client.channel().await;
    let q = declare_with(&ch, name, PASSIVE, FieldTable::default())
        .await
        .expect("queue exists");
    let _ = ch.close(200, "done".into()).await;
    (q.message_count(), q.consumer_count())
}

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
    let deadline = tokio::time::Instant::now() + WAIT;
    while exists(client, name).await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue '{name}' exists should become {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the counts of a queue reach the expected ones.
async fn eventually_counts(client: &Client, name: &str, expected: (u32, u32)) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = counts(client, name).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue '{name}': counts {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes with confirms, so the message is in its queues when this returns.
async fn publish_to(ch: &Channel, exchange: &str, key: &str, body: &[u8], headers: FieldTable) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
}

async fn confirming_channel(client: &Client) -> Channel {
    let ch = client.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_to(ch, "", queue, body, FieldTable::default()).await;
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("consume")
}

#[tokio::test]
async fn server_named_queues_are_amq_gen_and_unique() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let a = declare(&ch, "").await;
    let b = declare(&ch, "").await;
    for q in [&a, &b] {
        let name = q.name().as_str();
        let suffix = name.strip_prefix("amq.gen-").expect("amq.gen- prefix");
        assert_eq!(suffix.len(), 22, "{name}");
        assert!(
            suffix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{name}"
        );
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    }
    assert_ne!(a.name(), b.name());
    // A server-named queue is an ordinary queue: reachable by its name.
    publish(&confirming_channel(&client).await, a.name().as_str(), b"x").await;
    assert_eq!(counts(&client, a.name().as_str()).await, (1, 0));
    client.close().await;
}

#[tokio::test]
async fn passive_declare_finds_or_404s() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    assert_eq!(
        refused(declare_with(&ch, "nosuch-q", PASSIVE, FieldTable::default()).await),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    assert!(!ch.status().connected(), "a 404 closes the channel");
    // Passive does not create.
    assert!(!exists(&client, "nosuch-q").await);

    let ch = client.channel().await;
    declare(&ch, "q").await;
    publish(&confirming_channel(&client).await, "q", b"one").await;
    // Passive ignores the other flags and the arguments: it only looks.
    let q = declare_with(
        &ch,
        "q",
        QueueDeclareOptions {
            passive: true,
            durable: true,
            auto_delete: true,
            ..Default::default()
        },
        args(&[("x-message-ttl", AMQPValue::LongInt(5))]),
    )
    .await
    .expect("passive ignores flags");
    assert_eq!((q.message_count(), q.consumer_count()), (1, 0));
    client.close().await;
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let q = declare(&ch, "q").await;
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    let pub_ch = confirming_channel(&client).await;
    for i in 0..5u8 {
        publish(&pub_ch, "q", &[i]).await;
    }
    // Two consumers holding one unacked delivery each: 3 left ready.
    let cons_ch = client.channel().await;
    cons_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let _c1 = consume(&cons_ch, "q", "c1").await;
    let _c2 = consume(&cons_ch, "q", "c2").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // An active (non-passive) redeclare answers with the same counts.
        let q = declare(&ch, "q").await;
        if (q.message_count(), q.consumer_count()) == (3, 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts {:?}",
            (q.message_count(), q.consumer_count())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_properties_is_406() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q").await;
    // The same properties again are fine.
    declare(&ch, "q").await;
    let cases = [
        (
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'",
        ),
        (
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'q' in vhost '/': received 'true' but current is 'false'",
        ),
    ];
    for (options, expected) in cases {
        let ch = client.channel().await;
        assert_eq!(
            refused(declare_with(&ch, "q", options, FieldTable::default()).await),
            (406, expected.to_owned())
        );
    }

    // A durable queue redeclared transient.
    let ch = client.channel().await;
    declare_with(
        &ch,
        "d",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("durable declare");
    assert_eq!(
        refused(declare_with(&ch, "d", QueueDeclareOptions::default(), FieldTable::default()).await),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'd' in vhost '/': received 'false' but current is 'true'"
                .to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_x_args_is_406() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let ttl = |v| args(&[("x-message-ttl", AMQPValue::LongInt(v))]);
    declare_with(&ch, "q", QueueDeclareOptions::default(), ttl(1000))
        .await
        .expect("declare");
    // Same value again, also with another integer width: equivalent.
    declare_with(&ch, "q", QueueDeclareOptions::default(), ttl(1000))
        .await
        .expect("same args");
    declare_with(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        args(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]),
    )
    .await
    .expect("same value, other width");
    // Arguments RabbitMQ does not compare may differ.
    declare_with(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(1000)),
            ("app-tag", text("whatever")),
        ]),
    )
    .await
    .expect("non x- args are not compared");

    let ch = client.channel().await;
    assert_eq!(
        refused(declare_with(&ch, "q", QueueDeclareOptions::default(), ttl(2000)).await),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but current is '1000'"
                .to_owned()
        )
    );
    let ch = client.channel().await;
    assert_eq!(
        refused(
            declare_with(&ch, "q", QueueDeclareOptions::default(), FieldTable::default()).await
        ),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '1000' of type 'signedint'"
                .to_owned()
        )
    );
    // A classic queue declared without x-queue-type equals one declared "classic".
    let ch = client.channel().await;
    declare(&ch, "plain").await;
    declare_with(
        &ch,
        "plain",
        QueueDeclareOptions::default(),
        args(&[("x-queue-type", text("classic"))]),
    )
    .await
    .expect("classic is the default type");
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_exclusive_flag_is_405() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let ch = client.channel().await;
    declare_with(&ch, "excl", exclusive, FieldTable::default())
        .await
        .expect("declare");
    // RabbitMQ checks the exclusive flag as an ownership question, not as an
    // equivalence: even the owner gets 405 for a non-exclusive redeclare.
    assert_eq!(
        refused(
            declare_with(
                &ch,
                "excl",
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (405, LOCKED.to_owned())
    );
    let ch = client.channel().await;
    declare(&ch, "shared").await;
    assert_eq!(
        refused(declare_with(&ch, "shared", exclusive, FieldTable::default()).await),
        (405, LOCKED.replace("'excl'", "'shared'"))
    );
    client.close().await;
}

#[tokio::test]
async fn bad_x_args_are_406_at_declare() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let cases = [
        (
            ("x-message-ttl", text("1000")),
            "\"expected integer, got longstr\"",
        ),
        (
            ("x-message-ttl", AMQPValue::LongInt(-1)),
            "{value_negative,-1}",
        ),
        (
            ("x-message-ttl", AMQPValue::LongLongInt(315_360_000_001)),
            "{value_too_large,315360000001}",
        ),
        (("x-expires", AMQPValue::LongInt(0)), "{value_zero,0}"),
        (
            ("x-max-length", AMQPValue::Boolean(true)),
            "\"expected integer, got bool\"",
        ),
        (
            ("x-max-length-bytes", AMQPValue::LongInt(-5)),
            "{value_negative,-5}",
        ),
        (
            ("x-dead-letter-routing-key", text("k")),
            "routing_key_but_no_dlx_defined",
        ),
        (("x-overflow", text("drop-tail")), "invalid_overflow"),
        (
            ("x-overflow", AMQPValue::LongInt(1)),
            "{unacceptable_type,signedint}",
        ),
        (
            ("x-max-priority", AMQPValue::LongInt(256)),
            "{max_value_exceeded,256}",
        ),
        (
            ("x-single-active-consumer", text("yes")),
            "{unacceptable_type,longstr}",
        ),
        (
            ("x-queue-type", text("bogus")),
            "\"unsupported queue type 'bogus'\"",
        ),
    ];
    for ((key, value), why) in cases {
        let ch = client.channel().await;
        let result = declare_with(
            &ch,
            "q",
            QueueDeclareOptions::default(),
            args(&[(key, value)]),
        )
        .await;
        assert_eq!(
            refused(result),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg '{key}' for queue 'q' in vhost '/': {why}"
                )
            ),
            "{key}"
        );
    }
    // The channel checks the dead-letter exchange's type first, in its own words.
    let ch = client.channel().await;
    assert_eq!(
        refused(
            declare_with(
                &ch,
                "q",
                QueueDeclareOptions::default(),
                args(&[("x-dead-letter-exchange", AMQPValue::LongInt(1))])
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
                .to_owned()
        )
    );
    // Nothing was created by the refused declares.
    assert!(!exists(&client, "q").await);
    // Valid arguments of any integer width are taken; x- arguments RabbitMQ does
    // not know are ignored, as RabbitMQ ignores them.
    let ch = client.channel().await;
    declare_with(
        &ch,
        "ok",
        QueueDeclareOptions::default(),
        args(&[
            ("x-message-ttl", AMQPValue::ShortShortUInt(200)),
            ("x-max-length", AMQPValue::LongLongInt(10)),
            ("x-overflow", text("reject-publish")),
            ("x-queue-mode", text("lazy")),
            ("x-dead-letter-exchange", text("")),
            ("x-queue-type", text("classic")),
            ("x-custom-flag", AMQPValue::Boolean(true)),
        ]),
    )
    .await
    .expect("valid args");
    client.close().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    assert_eq!(
        refused(
            declare_with(
                &ch,
                "amq.mine",
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (
            403,
            "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'".to_owned()
        )
    );
    // Passive is a lookup: a missing amq. queue is simply not found.
    let ch = client.channel().await;
    assert_eq!(
        refused(declare_with(&ch, "amq.mine", PASSIVE, FieldTable::default()).await).0,
        404
    );
    client.close().await;
}

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'excl' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.";

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection() {
    let broker = common::start().await;
    let owner = Client::connect(&broker).await;
    let other = Client::connect(&broker).await;
    let ch = owner.channel().await;
    declare_with(
        &ch,
        "excl",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exclusive declare");
    publish(&confirming_channel(&owner).await, "excl", b"m").await;

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
        refused(
            c.queue_bind(
                "excl".into(),
                "amq.direct".into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default()
            )
            .await
        ),
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
    let broker = common::start().await;
    let watcher = Client::connect(&broker).await;
    let mut raw = common::RawClient::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.send_method(
        1,
        warren_codec::protocol::AMQPClass::Queue(
            warren_codec::protocol::queue::AMQPMethod::Declare(
                warren_codec::protocol::queue::Declare {
                    queue: "excl".into(),
                    passive: false,
                    durable: false,
                    exclusive: true,
                    auto_delete: false,
                    nowait: false,
                    arguments: Default::default(),
                },
            ),
        ),
    )
    .await;
    assert!(matches!(
        raw.next().await,
        common::Seen::Frame(warren_codec::Frame::Method(1, _))
    ));
    assert!(exists(&watcher, "excl").await);
    // The TCP connection goes away without connection.close.
    drop(raw);
    eventually_exists(&watcher, "excl", false).await;
    watcher.close().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let broker = common::start().await;
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
    let c1 = consume(&ch, "ad", "c1").await;
    let c2 = consume(&ch, "ad", "c2").await;
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
    let _c = consume(&ch, "ad2", "").await;
    ch.close(200, "done".into()).await.expect("close channel");
    eventually_exists(&client, "ad2", false).await;
    client.close().await;
}

#[tokio::test]
async fn bind_and_unbind_route_and_stop_routing() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = confirming_channel(&client).await;
    declare(&ch, "q").await;
    ch.exchange_declare(
        "x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    ch.queue_bind(
        "q".into(),
        "x".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    // Binding twice is idempotent: still one copy per message.
    ch.queue_bind(
        "q".into(),
        "x".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind again");
    publish_to(&ch, "x", "k", b"1", FieldTable::default()).await;
    publish_to(&ch, "x", "other", b"2", FieldTable::default()).await;
    assert_eq!(counts(&client, "q").await, (1, 0));
    ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())
        .await
        .expect("unbind");
    publish_to(&ch, "x", "k", b"3", FieldTable::default()).await;
    assert_eq!(counts(&client, "q").await, (1, 0));
    // Unbinding what is not bound is fine.
    ch.queue_unbind("q".into(), "x".into(), "k".into(), FieldTable::default())
        .await
        .expect("unbind again");

    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_bind(
                "q".into(),
                "nosuch-x".into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (
            404,
            "NOT_FOUND - no exchange 'nosuch-x' in vhost '/'".to_owned()
        )
    );
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_bind(
                "nosuch-q".into(),
                "x".into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn headers_bindings_use_their_arguments() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = confirming_channel(&client).await;
    declare(&ch, "all").await;
    declare(&ch, "any").await;
    let bind_args = |mode: &str| {
        args(&[
            ("x-match", text(mode)),
            ("format", text("pdf")),
            ("type", text("report")),
        ])
    };
    for (queue, mode) in [("all", "all"), ("any", "any")] {
        ch.queue_bind(
            queue.into(),
            "amq.headers".into(),
            "".into(),
            QueueBindOptions::default(),
            bind_args(mode),
        )
        .await
        .expect("bind");
    }
    let both = args(&[("format", text("pdf")), ("type", text("report"))]);
    let one = args(&[("format", text("pdf")), ("type", text("log"))]);
    publish_to(&ch, "amq.headers", "", b"both", both.clone()).await;
    publish_to(&ch, "amq.headers", "", b"one", one).await;
    publish_to(&ch, "amq.headers", "", b"none", FieldTable::default()).await;
    assert_eq!(counts(&client, "all").await, (1, 0));
    assert_eq!(counts(&client, "any").await, (2, 0));
    // Unbinding names the binding by its arguments too.
    ch.queue_unbind(
        "all".into(),
        "amq.headers".into(),
        "".into(),
        bind_args("all"),
    )
    .await
    .expect("unbind");
    publish_to(&ch, "amq.headers", "", b"both", both).await;
    assert_eq!(counts(&client, "all").await, (1, 0));
    assert_eq!(counts(&client, "any").await, (3, 0));
    client.close().await;
}

#[tokio::test]
async fn purge_drops_ready_messages_and_counts_them() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = confirming_channel(&client).await;
    declare(&ch, "q").await;
    for i in 0..4u8 {
        publish(&ch, "q", &[i]).await;
    }
    // One delivered and unacked: purge leaves it alone.
    let held = ch
        .basic_get("q".into(), BasicGetOptions::default())
        .await
        .expect("get")
        .expect("message");
    assert_eq!(
        ch.queue_purge("q".into(), QueuePurgeOptions::default())
            .await
            .expect("purge"),
        3
    );
    assert_eq!(counts(&client, "q").await, (0, 0));
    assert_eq!(
        ch.queue_purge("q".into(), QueuePurgeOptions::default())
            .await
            .expect("purge empty"),
        0
    );
    held.delivery
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .expect("nack");
    assert_eq!(counts(&client, "q").await, (1, 0));
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_purge("nosuch-q".into(), QueuePurgeOptions::default())
                .await
        ),
        (
            404,
            "NOT_FOUND - no queue 'nosuch-q' in vhost '/'".to_owned()
        )
    );
    client.close().await;
}

#[tokio::test]
async fn delete_checks_if_unused_and_if_empty_and_counts() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = confirming_channel(&client).await;
    declare(&ch, "q").await;
    for i in 0..3u8 {
        publish(&ch, "q", &[i]).await;
    }
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_delete(
                "q".into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                }
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty".to_owned()
        )
    );
    let cons_ch = client.channel().await;
    cons_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume(&cons_ch, "q", "c").await;
    let c = client.channel().await;
    assert_eq!(
        refused(
            c.queue_delete(
                "q".into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                }
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' in use".to_owned()
        )
    );
    // The consumer holds one unacked message; 2 are ready.
    let first = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("delivery");
    assert_eq!(first.data, [0]);
    eventually_counts(&client, "q", (2, 1)).await;
    assert_eq!(
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete"),
        2
    );
    assert!(!exists(&client, "q").await);
    // Its consumer is told (basic.cancel): lapin ends the stream.
    let end = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("stream ends in time");
    assert!(end.is_none(), "{end:?}");
    // Deleting a missing queue is fine and deletes nothing.
    assert_eq!(
        ch.queue_delete("q".into(), QueueDeleteOptions::default())
            .await
            .expect("delete missing"),
        0
    );
    // An empty unused queue passes both checks.
    declare(&ch, "e").await;
    assert_eq!(
        ch.queue_delete(
            "e".into(),
            QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                nowait: false
            }
        )
        .await
        .expect("delete"),
        0
    );
    client.close().await;
}

#[tokio::test]
async fn empty_name_means_the_last_declared_queue() {
    let broker = common::start().await;
    let client = Client::connect(&broker).await;
    let ch = confirming_channel(&client).await;
    declare(&ch, "other").await;
    let q = declare(&ch, "last").await;
    let name = q.name().to_string();
    // bind "" with key "": the queue, bound with its own name as the key.
    ch.queue_bind(
        "".into(),
        "amq.direct".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    publish_to(&ch, "amq.direct", &name, b"1", FieldTable::default()).await;
    publish_to(&ch, "amq.direct", &name, b"2", FieldTable::default()).await;
    publish_to(&ch, "amq.direct", &name, b"3", FieldTable::default()).await;
    assert_eq!(counts(&client, &name).await, (3, 0));
    let got = ch
        .basic_get("".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("message");
    assert_eq!(got.delivery.data, b"1");
    assert_eq!(got.message_count, 2);
    assert_eq!(
        ch.queue_purge("".into(), QueuePurgeOptions::default())
            .await
            .expect("purge"),
        2
    );
    publish_to(&ch, "amq.direct", &name, b"4", FieldTable::default()).await;
    let mut consumer = ch
        .basic_consume(
            "".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("delivery");
    assert_eq!(d.data, b"4");
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    ch.queue_delete("".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert!(!exists(&client, &name).await);

    // A passive declare takes "" literally, even after a declare.
    let ch = client.channel().await;
    declare(&ch, "last").await;
    assert_eq!(
        refused(declare_with(&ch, "", PASSIVE, FieldTable::default()).await),
        (404, "NOT_FOUND - no queue '' in vhost '/'".to_owned())
    );
    // A channel that declared nothing has no last queue.
    let fresh = client.channel().await;
    assert_eq!(
        refused(
            fresh
                .queue_purge("".into(), QueuePurgeOptions::default())
                .await
        ),
        (404, "NOT_FOUND - no previously declared queue".to_owned())
    );
    client.close().await;
}

//! queue.declare: server-named and passive declares, declare-ok counts,
//! equivalence on redeclare, `x-` argument checks and the `amq.` prefix.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

use crate::common::lapin::{
    Client, consume_with, counts, declare_exclusive_queue, declare_queue, refused, table, text,
};
use crate::common::{eventually, start};
use crate::{LOCKED, PASSIVE, declare_with, exists, publish};

#[tokio::test]
async fn server_named_queues_are_amq_gen_and_unique() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let a = declare_queue(&ch, "").await;
    let b = declare_queue(&ch, "").await;
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
    publish(&client.confirming().await, a.name().as_str(), b"x").await;
    assert_eq!(counts(&client, a.name().as_str()).await, (1, 0));
    client.close().await;
}

#[tokio::test]
async fn passive_declare_finds_or_404s() {
    let broker = start().await;
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
    declare_queue(&ch, "q").await;
    publish(&client.confirming().await, "q", b"one").await;
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
        table(&[("x-message-ttl", AMQPValue::LongInt(5))]),
    )
    .await
    .expect("passive ignores flags");
    assert_eq!((q.message_count(), q.consumer_count()), (1, 0));
    client.close().await;
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let q = declare_queue(&ch, "q").await;
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    let pub_ch = client.confirming().await;
    for i in 0..5u8 {
        publish(&pub_ch, "q", &[i]).await;
    }
    // Two consumers holding one unacked delivery each: 3 left ready.
    let cons_ch = client.channel().await;
    cons_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let _c1 = consume_with(&cons_ch, "q", "c1", BasicConsumeOptions::default()).await;
    let _c2 = consume_with(&cons_ch, "q", "c2", BasicConsumeOptions::default()).await;
    // An active (non-passive) redeclare answers with the same counts.
    let now = eventually((3, 2), async || {
        let q = declare_queue(&ch, "q").await;
        (q.message_count(), q.consumer_count())
    })
    .await;
    assert_eq!(now, (3, 2), "counts {now:?}");
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_properties_is_406() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q").await;
    // The same properties again are fine.
    declare_queue(&ch, "q").await;
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
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let ttl = |v| table(&[("x-message-ttl", AMQPValue::LongInt(v))]);
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
        table(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]),
    )
    .await
    .expect("same value, other width");
    // Arguments RabbitMQ does not compare may differ.
    declare_with(
        &ch,
        "q",
        QueueDeclareOptions::default(),
        table(&[
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
    declare_queue(&ch, "plain").await;
    declare_with(
        &ch,
        "plain",
        QueueDeclareOptions::default(),
        table(&[("x-queue-type", text("classic"))]),
    )
    .await
    .expect("classic is the default type");
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_exclusive_flag_is_405() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let ch = client.channel().await;
    declare_exclusive_queue(&ch, "excl").await;
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
    declare_queue(&ch, "shared").await;
    assert_eq!(
        refused(declare_with(&ch, "shared", exclusive, FieldTable::default()).await),
        (405, LOCKED.replace("'excl'", "'shared'"))
    );
    client.close().await;
}

#[tokio::test]
async fn bad_x_args_are_406_at_declare() {
    let broker = start().await;
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
            table(&[(key, value)]),
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
                table(&[("x-dead-letter-exchange", AMQPValue::LongInt(1))])
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
        table(&[
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
    let broker = start().await;
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

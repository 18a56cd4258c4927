//! queue.declare of a stream: the properties and arguments RabbitMQ refuses,
//! with its texts, redeclare equivalence and passive declare.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

use crate::common::lapin::{table, text};
use crate::{DURABLE, declare_stream, target, try_declare};

fn flags(durable: bool, exclusive: bool, auto_delete: bool) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable,
        exclusive,
        auto_delete,
        ..DURABLE
    }
}

#[tokio::test]
async fn only_durable_shared_streams_and_the_property_precedence() {
    let t = target().await;
    let mut conn = t.conn().await;
    let q = t.name("props");
    let cases = [
        (flags(false, false, false), "non-durable"),
        (flags(true, true, false), "exclusive-owner"),
        (flags(true, false, true), "auto-delete"),
        (flags(false, true, true), "auto-delete"),
        (flags(false, true, false), "exclusive-owner"),
        (flags(true, true, true), "auto-delete"),
    ];
    for (options, property) in cases {
        let ch = conn.channel().await;
        let result = try_declare(&ch, &q, options, &[]).await;
        assert_eq!(
            conn.refusal(result).await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid property '{property}' for {}",
                    t.res(&q)
                )
            ),
            "{options:?}"
        );
    }
    let ch = conn.channel().await;
    let ok = try_declare(&ch, &q, DURABLE, &[]).await.expect("durable");
    assert_eq!((ok.message_count(), ok.consumer_count()), (0, 0));
    // Server-named streams do not exist.
    let result = try_declare(&ch, "", DURABLE, &[]).await;
    assert_eq!(
        conn.refusal(result).await,
        (
            406,
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue"
                .to_owned()
        )
    );
    // The queue type's name is case-sensitive.
    let ch = conn.channel().await;
    let result = ch
        .queue_declare(
            t.name("typo").as_str().into(),
            DURABLE,
            table(&[("x-queue-type", text("Stream"))]),
        )
        .await;
    let (code, reply) = conn.refusal(result).await;
    assert_eq!(code, 406);
    assert!(
        reply.ends_with(": \"unsupported queue type 'Stream'\""),
        "{reply}"
    );
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn arguments_refused_on_a_stream() {
    let t = target().await;
    let mut conn = t.conn().await;
    let q = t.name("refused");
    for arg in [
        "x-message-ttl",
        "x-expires",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-priority",
        "x-overflow",
        "x-single-active-consumer",
        "x-delivery-limit",
        "x-queue-mode",
        "x-max-in-memory-length",
    ] {
        let value = match arg {
            "x-dead-letter-exchange" | "x-dead-letter-routing-key" => text("dlx"),
            "x-overflow" => text("reject-publish"),
            "x-queue-mode" => text("lazy"),
            "x-single-active-consumer" => AMQPValue::Boolean(true),
            _ => AMQPValue::LongInt(1000),
        };
        let ch = conn.channel().await;
        let result = try_declare(&ch, &q, DURABLE, &[(arg, value)]).await;
        assert_eq!(
            conn.refusal(result).await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg '{arg}' for {} of queue type rabbit_stream_queue",
                    t.res(&q)
                )
            )
        );
    }
    // Nothing was created by the refusals.
    let ch = conn.channel().await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..DURABLE
    };
    let result = ch
        .queue_declare(q.as_str().into(), passive, FieldTable::default())
        .await;
    assert_eq!(conn.refusal(result).await.0, 404);
}

#[tokio::test]
async fn max_age_syntax_and_integer_checks() {
    let t = target().await;
    let mut conn = t.conn().await;
    let mut made = Vec::new();
    let ch = conn.channel().await;
    for age in ["1Y", "1M", "1D", "1h", "1m", "1s", "7D"] {
        let q = t.name("age-ok");
        declare_stream(&ch, &q, &[("x-max-age", text(age))]).await;
        made.push(q);
    }
    let q = t.name("age-bad");
    let invalid = |arg: &str, why: &str| {
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg '{arg}' for {}: {why}",
                t.res(&q)
            ),
        )
    };
    for age in ["1h30m", "0s", "1d", "1H", "1y", "10", "1 h", "1.5h", "1W"] {
        let ch = conn.channel().await;
        let result = try_declare(&ch, &q, DURABLE, &[("x-max-age", text(age))]).await;
        assert_eq!(
            conn.refusal(result).await,
            invalid("x-max-age", "invalid_max_age"),
            "{age}"
        );
    }
    let ch = conn.channel().await;
    let result = try_declare(&ch, &q, DURABLE, &[("x-max-age", AMQPValue::LongInt(10))]).await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-max-age", "{unacceptable_type,signedint}")
    );
    let ch = conn.channel().await;
    let result = try_declare(
        &ch,
        &q,
        DURABLE,
        &[("x-max-length-bytes", AMQPValue::LongInt(-1))],
    )
    .await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-max-length-bytes", "{value_negative,-1}")
    );
    let ch = conn.channel().await;
    let result = try_declare(&ch, &q, DURABLE, &[("x-max-length-bytes", text("abc"))]).await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-max-length-bytes", "\"expected integer, got longstr\"")
    );
    let ch = conn.channel().await;
    let result = try_declare(
        &ch,
        &q,
        DURABLE,
        &[("x-stream-max-segment-size-bytes", AMQPValue::LongInt(-5))],
    )
    .await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-stream-max-segment-size-bytes", "{value_negative,-5}")
    );
    let ch = conn.channel().await;
    let result = try_declare(
        &ch,
        &q,
        DURABLE,
        &[("x-initial-cluster-size", AMQPValue::LongInt(0))],
    )
    .await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-initial-cluster-size", "{value_zero,0}")
    );
    let ch = conn.channel().await;
    let result = try_declare(
        &ch,
        &q,
        DURABLE,
        &[("x-queue-leader-locator", text("bogus"))],
    )
    .await;
    assert_eq!(
        conn.refusal(result).await,
        invalid("x-queue-leader-locator", "invalid_queue_locator_arg")
    );
    // Accepted: zero sizes, unknown arguments, the locators.
    let ch = conn.channel().await;
    let ok = t.name("ok");
    declare_stream(
        &ch,
        &ok,
        &[
            ("x-max-length-bytes", AMQPValue::LongInt(0)),
            ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(1000)),
            ("x-initial-cluster-size", AMQPValue::LongInt(3)),
            ("x-queue-leader-locator", text("least-leaders")),
            ("x-foo-bar", AMQPValue::LongInt(1)),
        ],
    )
    .await;
    made.push(ok);
    let made: Vec<&str> = made.iter().map(String::as_str).collect();
    t.cleanup(&made).await;
}

#[tokio::test]
async fn redeclare_must_be_equivalent() {
    let t = target().await;
    let mut conn = t.conn().await;
    let q = t.name("r1");
    let base = [
        ("x-max-length-bytes", AMQPValue::LongInt(1_000_000)),
        ("x-max-age", text("1D")),
    ];
    let ch = conn.channel().await;
    declare_stream(&ch, &q, &base).await;
    declare_stream(&ch, &q, &base).await;
    let inequivalent = |arg: &str, received: &str, current: &str| {
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for {}: received {received} but current is {current}",
                t.res(&q)
            ),
        )
    };
    let cases: Vec<(FieldTable, QueueDeclareOptions, (u16, String))> = vec![
        (
            crate::stream_args(&[
                ("x-max-length-bytes", AMQPValue::LongInt(2_000_000)),
                ("x-max-age", text("1D")),
            ]),
            DURABLE,
            inequivalent("x-max-length-bytes", "'2000000'", "'1000000'"),
        ),
        (
            crate::stream_args(&[base[0].clone(), ("x-max-age", text("2D"))]),
            DURABLE,
            inequivalent("x-max-age", "'2D'", "'1D'"),
        ),
        (
            crate::stream_args(&[base[0].clone()]),
            DURABLE,
            inequivalent("x-max-age", "none", "the value '1D' of type 'longstr'"),
        ),
        (
            crate::stream_args(&[
                base[0].clone(),
                base[1].clone(),
                ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(1000)),
            ]),
            DURABLE,
            inequivalent(
                "x-stream-max-segment-size-bytes",
                "the value '1000' of type 'signedint'",
                "none",
            ),
        ),
        (
            table(&base),
            DURABLE,
            inequivalent(
                "x-queue-type",
                "none",
                "the value 'stream' of type 'longstr'",
            ),
        ),
        (
            FieldTable::default(),
            DURABLE,
            inequivalent(
                "x-max-length-bytes",
                "none",
                "the value '1000000' of type 'signedint'",
            ),
        ),
        (
            table(&[("x-queue-type", text("classic"))]),
            DURABLE,
            inequivalent(
                "x-max-length-bytes",
                "none",
                "the value '1000000' of type 'signedint'",
            ),
        ),
        (
            crate::stream_args(&base),
            QueueDeclareOptions {
                durable: false,
                ..DURABLE
            },
            inequivalent("durable", "'false'", "'true'"),
        ),
        (
            crate::stream_args(&base),
            QueueDeclareOptions {
                exclusive: true,
                ..DURABLE
            },
            (
                405,
                format!(
                    "RESOURCE_LOCKED - cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                    t.res(&q)
                ),
            ),
        ),
    ];
    for (args, options, expected) in cases {
        let ch = conn.channel().await;
        let result = ch
            .queue_declare(q.as_str().into(), options, args.clone())
            .await;
        assert_eq!(conn.refusal(result).await, expected, "{args:?} {options:?}");
    }
    // Passive: flags and arguments are not looked at.
    let ch = conn.channel().await;
    let passive = QueueDeclareOptions {
        passive: true,
        durable: false,
        ..DURABLE
    };
    ch.queue_declare(
        q.as_str().into(),
        passive,
        table(&[("x-queue-type", text("classic"))]),
    )
    .await
    .expect("passive declare of the stream");
    let missing = t.name("nope-missing");
    let result = ch
        .queue_declare(missing.as_str().into(), passive, FieldTable::default())
        .await;
    assert_eq!(
        conn.refusal(result).await,
        (404, format!("NOT_FOUND - no {}", t.res(&missing)))
    );
    t.cleanup(&[&q]).await;
}

#[tokio::test]
async fn a_classic_queue_name_cannot_become_a_stream() {
    let t = target().await;
    let mut conn = t.conn().await;
    let q = t.name("cq1");
    let ch = conn.channel().await;
    ch.queue_declare(q.as_str().into(), DURABLE, FieldTable::default())
        .await
        .expect("classic");
    let result = try_declare(&ch, &q, DURABLE, &[]).await;
    assert_eq!(
        conn.refusal(result).await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for {}: received the value 'stream' of type 'longstr' but current is none",
                t.res(&q)
            )
        )
    );
    t.cleanup(&[&q]).await;
}

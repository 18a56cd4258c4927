//! How direct, fanout and topic exchanges route, one copy per queue however
//! many bindings match, and the `CC` / `BCC` headers.

use lapin::options::*;
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Confirmation, ExchangeKind};

use crate::common::lapin::{confirming, declare_queue, refused, table, text, try_publish};
use crate::{bind_q, bind_q_with, bind_x, declare_x, drain, names, publish, reached, target};

#[tokio::test]
async fn direct_routes_on_the_exact_key() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "dx", ExchangeKind::Direct).await;
    let qs = ["dq-a", "dq-b", "dq-ab", "dq-empty"];
    for q in qs {
        declare_queue(&ch, q).await;
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
        declare_queue(&ch, q).await;
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
        declare_queue(&ch, q).await;
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
async fn a_queue_reached_over_several_bindings_gets_one_copy() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_queue(&ch, "once-q").await;
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
        declare_queue(&ch, q).await;
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
    let ch = confirming(&conn).await;
    let headers = table(&[("CC", text("b"))]);
    assert_eq!(
        refused(
            try_publish(
                &ch,
                "cc-direct",
                "a",
                false,
                b"a",
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
    let ch = confirming(&conn).await;
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
    declare_queue(&ch, "bcc-q").await;
    let bcc = AMQPValue::FieldArray(vec![text("bcc-q")].into());
    let headers = table(&[("BCC", bcc), ("kept", text("v"))]);
    let properties = BasicProperties::default().with_headers(headers);
    let confirmation = try_publish(&ch, "", "bcc-nosuch", false, b"bcc-nosuch", properties)
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
async fn a_queue_deleted_and_declared_again_gets_only_what_its_new_bindings_bring() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "redecl-x", ExchangeKind::Fanout).await;
    let qs = ["redecl-q", "redecl-other"];
    for q in qs {
        declare_queue(&ch, q).await;
        bind_q(&ch, q, "redecl-x", "").await;
    }
    assert_eq!(reached(&ch, "redecl-x", "k", None, &qs).await, names(&qs));
    // Deleting a queue takes its binding: the other one is still reached.
    ch.queue_delete("redecl-q".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(
        reached(&ch, "redecl-x", "k", None, &["redecl-other"]).await,
        names(&["redecl-other"])
    );
    // Declared again under the same name: nothing reaches it until bound.
    declare_queue(&ch, "redecl-q").await;
    assert_eq!(
        reached(&ch, "redecl-x", "k", None, &qs).await,
        names(&["redecl-other"])
    );
    // With both deleted the exchange routes nowhere: a mandatory message is
    // returned, even though a queue of the same name exists again.
    ch.queue_delete("redecl-other".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let confirmation = try_publish(
        &ch,
        "redecl-x",
        "k",
        true,
        b"returned",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    assert!(drain(&ch, "redecl-q").await.is_empty());
    // Bound again: the new queue gets it.
    bind_q(&ch, "redecl-q", "redecl-x", "").await;
    assert_eq!(
        reached(&ch, "redecl-x", "k", None, &["redecl-q"]).await,
        names(&["redecl-q"])
    );
    ch.queue_delete("redecl-q".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    conn.close(200, "bye".into()).await.expect("close");
}

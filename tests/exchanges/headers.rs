//! How headers exchanges match a message's headers against binding arguments.

use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::common::lapin::{declare_queue, table, text};
use crate::{bind_q_with, declare_x, names, reached, target};

/// Declares each queue and binds it to `x` with `key` and its arguments; the queues.
async fn declare_and_bind<'a>(
    ch: &Channel,
    x: &str,
    key: &str,
    bindings: &[(&'a str, FieldTable)],
) -> Vec<&'a str> {
    for (q, arguments) in bindings {
        declare_queue(ch, q).await;
        bind_q_with(ch, q, x, key, arguments.clone()).await;
    }
    bindings.iter().map(|(q, _)| *q).collect()
}

#[tokio::test]
async fn headers_match_all_or_any_of_the_binding_arguments() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hx", ExchangeKind::Headers).await;
    let one = AMQPValue::LongInt(1);
    let bindings = [
        (
            "hq-all",
            table(&[
                ("x-match", text("all")),
                ("a", one.clone()),
                ("b", text("x")),
            ]),
        ),
        (
            "hq-any",
            table(&[
                ("x-match", text("any")),
                ("a", one.clone()),
                ("b", text("x")),
            ]),
        ),
        // No x-match means all.
        ("hq-default", table(&[("a", one.clone()), ("b", text("x"))])),
    ];
    // The routing key plays no part.
    let qs = declare_and_bind(&ch, "hx", "ignored", &bindings).await;
    let all = &["hq-all", "hq-any", "hq-default"][..];
    for (headers, expected) in [
        (table(&[("a", one.clone()), ("b", text("x"))]), all),
        (
            table(&[("b", text("x")), ("a", one.clone()), ("c", text("more"))]),
            all,
        ),
        (table(&[("a", one.clone())]), &["hq-any"]),
        (table(&[("b", text("x"))]), &["hq-any"]),
        (table(&[("a", one.clone()), ("b", text("y"))]), &["hq-any"]),
        (
            table(&[("a", AMQPValue::LongInt(2)), ("b", text("y"))]),
            &[],
        ),
        (table(&[("c", one.clone())]), &[]),
        (table(&[]), &[]),
    ] {
        assert_eq!(
            reached(&ch, "hx", "other", Some(headers.clone()), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    assert!(reached(&ch, "hx", "ignored", None, &qs).await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_x_arguments_count_only_with_x() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hxx", ExchangeKind::Headers).await;
    let v = text("v");
    let bindings = [
        // Without -with-x the x- argument is ignored: no arguments left.
        (
            "hxq-all",
            table(&[("x-match", text("all")), ("x-k", v.clone())]),
        ),
        (
            "hxq-any",
            table(&[("x-match", text("any")), ("x-k", v.clone())]),
        ),
        (
            "hxq-all-with-x",
            table(&[
                ("x-match", text("all-with-x")),
                ("x-k", v.clone()),
                ("a", v.clone()),
            ]),
        ),
        (
            "hxq-any-with-x",
            table(&[("x-match", text("any-with-x")), ("x-k", v.clone())]),
        ),
    ];
    let qs = declare_and_bind(&ch, "hxx", "", &bindings).await;
    for (headers, expected) in [
        (Some(table(&[])), &["hxq-all"][..]),
        (None, &["hxq-all"]),
        (Some(table(&[("a", v.clone())])), &["hxq-all"]),
        (
            Some(table(&[("x-k", v.clone())])),
            &["hxq-all", "hxq-any-with-x"],
        ),
        (
            Some(table(&[("x-k", v.clone()), ("a", v.clone())])),
            &["hxq-all", "hxq-all-with-x", "hxq-any-with-x"],
        ),
        (
            Some(table(&[("x-k", text("w")), ("a", v.clone())])),
            &["hxq-all"],
        ),
    ] {
        assert_eq!(
            reached(&ch, "hxx", "", headers.clone(), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_values_compare_like_rabbitmq() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hvx", ExchangeKind::Headers).await;
    let bindings = [
        ("hvq-int", table(&[("n", AMQPValue::LongInt(1))])),
        ("hvq-str", table(&[("n", text("1"))])),
        // A void argument only asks for the header to be present.
        ("hvq-void", table(&[("n", AMQPValue::Void)])),
        ("hvq-bool", table(&[("n", AMQPValue::Boolean(true))])),
    ];
    let qs = declare_and_bind(&ch, "hvx", "", &bindings).await;
    let header = |v: AMQPValue| Some(table(&[("n", v)]));
    for (headers, expected) in [
        // Integers of every width and signedness are equal by value.
        (header(AMQPValue::LongInt(1)), &["hvq-int", "hvq-void"][..]),
        (
            header(AMQPValue::ShortShortInt(1)),
            &["hvq-int", "hvq-void"],
        ),
        (
            header(AMQPValue::ShortShortUInt(1)),
            &["hvq-int", "hvq-void"],
        ),
        (header(AMQPValue::ShortInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongUInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongLongInt(1)), &["hvq-int", "hvq-void"]),
        (header(AMQPValue::LongInt(2)), &["hvq-void"]),
        // "1" is not 1, and 1 is not true.
        (header(text("1")), &["hvq-str", "hvq-void"]),
        (header(AMQPValue::Boolean(true)), &["hvq-void", "hvq-bool"]),
        (header(AMQPValue::Boolean(false)), &["hvq-void"]),
        (header(AMQPValue::Void), &["hvq-void"]),
        (Some(table(&[("m", AMQPValue::LongInt(1))])), &[]),
        (None, &[]),
    ] {
        assert_eq!(
            reached(&ch, "hvx", "", headers.clone(), &qs).await,
            names(expected),
            "headers {headers:?}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn headers_bindings_without_arguments() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "hex", ExchangeKind::Headers).await;
    let bindings = [
        // All of nothing: every message, with or without headers.
        ("heq-all", table(&[("x-match", text("all"))])),
        ("heq-none", FieldTable::default()),
        // Any of nothing: never.
        ("heq-any", table(&[("x-match", text("any"))])),
    ];
    let qs = declare_and_bind(&ch, "hex", "", &bindings).await;
    for headers in [
        None,
        Some(table(&[])),
        Some(table(&[("a", AMQPValue::LongInt(1))])),
    ] {
        assert_eq!(
            reached(&ch, "hex", "", headers.clone(), &qs).await,
            names(&["heq-all", "heq-none"]),
            "headers {headers:?}"
        );
    }
    // The predeclared headers exchanges route the same way.
    for x in ["amq.headers", "amq.match"] {
        bind_q_with(
            &ch,
            "heq-any",
            x,
            "",
            table(&[("x-match", text("any")), ("k", text(x))]),
        )
        .await;
        assert_eq!(
            reached(&ch, x, "", Some(table(&[("k", text(x))])), &qs).await,
            names(&["heq-any"]),
            "{x}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

//! Binding, unbinding and publishing: what is refused, with RabbitMQ's reply
//! codes and texts, and the method each exception names.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use warren_codec::protocol::{AMQPClass, exchange};

use crate::common::eventually;
use crate::common::lapin::{
    amqp_error, confirming, declare_exclusive_queue, declare_queue, refused, table, text,
    try_publish,
};
use crate::common::raw::{RawClient, channel_close_ok, publish_frames};
use crate::{bind_q, bind_q_with, declare_x, names, reached, target};

#[tokio::test]
async fn bind_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = confirming(&conn).await;
    declare_x(&ch, "bind-x", ExchangeKind::Direct).await;
    declare_x(&ch, "bind-h", ExchangeKind::Headers).await;
    declare_queue(&ch, "bind-q").await;
    let no_exchange = |name: &str| (404, format!("NOT_FOUND - no {}", t.res("exchange", name)));
    let no_queue = |name: &str| (404, format!("NOT_FOUND - no {}", t.res("queue", name)));
    let default_refused = (
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
    );
    #[derive(Debug)]
    enum Op {
        QueueBind(&'static str, &'static str),
        QueueUnbind(&'static str, &'static str),
        /// (destination, source)
        ExchangeBind(&'static str, &'static str),
        ExchangeUnbind(&'static str, &'static str),
    }
    let some = table(&[("x-match", text("some"))]);
    let ok = || Ok(());
    let cases = [
        (Op::QueueBind("bind-q", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::QueueBind("nosuch-q", "bind-x"), FieldTable::default(), Err(no_queue("nosuch-q"))),
        // Both missing: the source is named.
        (Op::QueueBind("nosuch-q", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::QueueBind("bind-q", ""), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeBind("bind-x", "nosuch-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::ExchangeBind("nosuch-x", "bind-x"), FieldTable::default(), Err(no_exchange("nosuch-x"))),
        (Op::ExchangeBind("nosuch-d", "nosuch-s"), FieldTable::default(), Err(no_exchange("nosuch-s"))),
        (Op::ExchangeBind("", "bind-x"), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeBind("bind-x", ""), FieldTable::default(), Err(default_refused.clone())),
        // Unbinding never answers 404 (RabbitMQ since 3.2): no end, no binding, fine.
        (Op::QueueUnbind("bind-q", "nosuch-x"), FieldTable::default(), ok()),
        (Op::QueueUnbind("nosuch-q", "bind-x"), FieldTable::default(), ok()),
        (Op::ExchangeUnbind("nosuch-x", "bind-x"), FieldTable::default(), ok()),
        (Op::ExchangeUnbind("bind-x", "nosuch-x"), FieldTable::default(), ok()),
        // ... but the default exchange is still refused.
        (Op::QueueUnbind("bind-q", ""), FieldTable::default(), Err(default_refused.clone())),
        (Op::ExchangeUnbind("", "bind-x"), FieldTable::default(), Err(default_refused.clone())),
        (
            Op::QueueBind("bind-q", "bind-h"),
            some.clone(),
            Err((
                406,
                "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x".to_owned(),
            )),
        ),
        (
            Op::ExchangeBind("bind-x", "bind-h"),
            table(&[("x-match", AMQPValue::LongInt(1))]),
            Err((
                406,
                "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr".to_owned(),
            )),
        ),
    ];
    for (op, arguments, expected) in cases {
        let ch = confirming(&conn).await;
        let what = format!("{op:?}");
        let result = match op {
            Op::QueueBind(q, x) => {
                ch.queue_bind(
                    q.into(),
                    x.into(),
                    "k".into(),
                    QueueBindOptions::default(),
                    arguments,
                )
                .await
            }
            Op::QueueUnbind(q, x) => {
                ch.queue_unbind(q.into(), x.into(), "k".into(), arguments)
                    .await
            }
            Op::ExchangeBind(d, s) => {
                ch.exchange_bind(
                    d.into(),
                    s.into(),
                    "k".into(),
                    ExchangeBindOptions::default(),
                    arguments,
                )
                .await
            }
            Op::ExchangeUnbind(d, s) => {
                ch.exchange_unbind(
                    d.into(),
                    s.into(),
                    "k".into(),
                    ExchangeUnbindOptions::default(),
                    arguments,
                )
                .await
            }
        };
        assert_eq!(result.map_err(|e| amqp_error(&e)), expected, "{what}");
    }
    let ch = confirming(&conn).await;
    // Unbinding what was never bound is fine.
    ch.queue_unbind(
        "bind-q".into(),
        "bind-x".into(),
        "never".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind of a missing binding");
    ch.exchange_unbind(
        "bind-x".into(),
        "amq.direct".into(),
        "never".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind of a missing binding");
    // Binding twice is one binding: one unbind removes it.
    bind_q(&ch, "bind-q", "bind-x", "twice").await;
    bind_q(&ch, "bind-q", "bind-x", "twice").await;
    ch.queue_unbind(
        "bind-q".into(),
        "bind-x".into(),
        "twice".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    assert!(
        reached(&ch, "bind-x", "twice", None, &["bind-q"])
            .await
            .is_empty()
    );
    // x-match is only checked by headers exchanges.
    bind_q_with(&ch, "bind-q", "bind-x", "k", some).await;
    // The failed binds bound nothing.
    bind_q(&ch, "bind-q", "bind-h", "").await;
    assert_eq!(
        reached(&ch, "bind-h", "", None, &["bind-q"]).await,
        names(&["bind-q"])
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn another_connections_exclusive_queue_cannot_be_bound_or_unbound() {
    let t = target().await;
    let (owner, ch) = t.open().await;
    declare_exclusive_queue(&ch, "excl-q").await;
    bind_q(&ch, "excl-q", "amq.direct", "bound").await;
    let other = t.connect().await;
    let locked = (
        405,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            t.res("queue", "excl-q")
        ),
    );
    let ch = confirming(&other).await;
    assert_eq!(
        refused(
            ch.queue_bind(
                "excl-q".into(),
                "amq.direct".into(),
                "new".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        ),
        locked
    );
    // A missing source is reported first.
    let ch = confirming(&other).await;
    assert_eq!(
        refused(
            ch.queue_bind(
                "excl-q".into(),
                "nosuch-x".into(),
                "new".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        ),
        (
            404,
            format!("NOT_FOUND - no {}", t.res("exchange", "nosuch-x"))
        )
    );
    // Unbinding checks exclusivity only for a binding that exists.
    let ch = confirming(&other).await;
    ch.queue_unbind(
        "excl-q".into(),
        "amq.direct".into(),
        "never-bound".into(),
        FieldTable::default(),
    )
    .await
    .expect("nothing to unbind");
    assert_eq!(
        refused(
            ch.queue_unbind(
                "excl-q".into(),
                "amq.direct".into(),
                "bound".into(),
                FieldTable::default(),
            )
            .await
        ),
        locked
    );
    // Still bound.
    let ch = confirming(&owner).await;
    assert_eq!(
        reached(&ch, "amq.direct", "bound", None, &["excl-q"]).await,
        names(&["excl-q"])
    );
    other.close(200, "bye".into()).await.expect("close");
    owner.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_404() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = confirming(&conn).await;
    assert_eq!(
        refused(
            try_publish(
                &ch,
                "nosuch-x",
                "k",
                false,
                b"k",
                BasicProperties::default()
            )
            .await
        ),
        (
            404,
            format!("NOT_FOUND - no {}", t.res("exchange", "nosuch-x"))
        )
    );
    assert!(!ch.status().connected(), "a 404 closes the channel");
    // Without confirms the error arrives all the same; the connection lives on.
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_publish(
        "nosuch-x".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .expect("publish is asynchronous");
    assert!(
        eventually(true, async || !ch.status().connected()).await,
        "channel closed"
    );
    assert!(conn.status().connected());
    conn.close(200, "bye".into()).await.expect("close");
}

/// Exceptions name the method that failed (lapin does not show class and method ids).
#[tokio::test]
async fn exceptions_name_the_failing_method() {
    let t = target().await;
    let Some(addr) = t.addr else {
        return;
    };
    let declare = |name: &str, kind: &str| {
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        }))
    };
    let mut c = RawClient::open(addr).await;
    c.open_channel(1).await;
    // basic.publish to a missing exchange: 404 on basic.publish (60/40) once the content is in.
    c.send_raw(&publish_frames(1, "nosuch-x", "k", false, b""))
        .await;
    let (text, class, method) = c.expect_channel_close(1, 404).await;
    assert_eq!(
        (text.as_str(), class, method),
        ("NOT_FOUND - no exchange 'nosuch-x' in vhost '/'", 60, 40)
    );
    c.send_method(1, channel_close_ok()).await;
    c.open_channel(2).await;
    c.send_method(2, declare("amq.direct", "fanout")).await;
    let (text, class, method) = c.expect_channel_close(2, 406).await;
    assert_eq!((class, method), (40, 10), "{text}");
    c.send_method(2, channel_close_ok()).await;
    c.open_channel(3).await;
    // An unknown type is a connection error on exchange.declare (40/10).
    c.send_method(3, declare("raw-x", "foo")).await;
    let (text, class, method) = c.expect_connection_close(503).await;
    assert_eq!(
        (text.as_str(), class, method),
        ("COMMAND_INVALID - invalid exchange type 'foo'", 40, 10)
    );
    c.close_ok_and_expect_eof().await;
}

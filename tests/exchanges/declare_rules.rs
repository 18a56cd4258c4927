//! exchange.declare and exchange.delete: what is refused, with RabbitMQ's reply
//! codes and texts.

use lapin::ExchangeKind;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};

use crate::common::eventually;
use crate::common::lapin::{amqp_error, confirming, declare_queue, refused, table};
use crate::{
    DEFAULT_X, PASSIVE_X, alternate, bind_q, bind_x, declare_x, declare_x_with, target, x_exists,
};

#[tokio::test]
async fn declare_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = confirming(&conn).await;
    // Same properties again, and passive, are fine.
    declare_x(&ch, "decl-x", ExchangeKind::Direct).await;
    declare_x(&ch, "decl-x", ExchangeKind::Direct).await;
    declare_x_with(
        &ch,
        "decl-x",
        ExchangeKind::Fanout,
        PASSIVE_X,
        FieldTable::default(),
    )
    .await
    .expect("passive ignores type and flags");
    // The predeclared exchanges exist.
    for x in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
        "amq.rabbitmq.trace",
    ] {
        declare_x_with(
            &ch,
            x,
            ExchangeKind::Direct,
            PASSIVE_X,
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{x} exists: {e}"));
    }
    // Redeclaring a predeclared exchange with its own properties is fine.
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("same properties");
    declare_x_with(
        &ch,
        "amq.topic",
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("same properties");

    let x = |name: &str| t.res("exchange", name);
    let inequivalent = |arg: &str, name: &str, received: &str, current: &str| {
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for {}: received {received} but current is {current}",
                x(name)
            ),
        )
    };
    let cases = [
        (
            "amq.direct",
            ExchangeKind::Direct,
            DEFAULT_X,
            inequivalent("durable", "amq.direct", "'false'", "'true'"),
        ),
        (
            "decl-x",
            ExchangeKind::Fanout,
            DEFAULT_X,
            inequivalent("type", "decl-x", "'fanout'", "'direct'"),
        ),
        (
            "decl-x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..DEFAULT_X
            },
            inequivalent("auto_delete", "decl-x", "'true'", "'false'"),
        ),
        (
            "decl-x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal: true,
                ..DEFAULT_X
            },
            inequivalent("internal", "decl-x", "'true'", "'false'"),
        ),
        (
            "amq.foo",
            ExchangeKind::Direct,
            DEFAULT_X,
            (
                403,
                "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
                    .to_owned(),
            ),
        ),
        (
            "",
            ExchangeKind::Direct,
            DEFAULT_X,
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
        (
            "",
            ExchangeKind::Direct,
            PASSIVE_X,
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
        (
            "nosuch-x",
            ExchangeKind::Direct,
            PASSIVE_X,
            (404, format!("NOT_FOUND - no {}", x("nosuch-x"))),
        ),
        // Passive never creates, whatever the name.
        (
            "amq.nosuch",
            ExchangeKind::Direct,
            PASSIVE_X,
            (404, format!("NOT_FOUND - no {}", x("amq.nosuch"))),
        ),
    ];
    for (name, kind, options, expected) in cases {
        let ch = confirming(&conn).await;
        assert_eq!(
            refused(declare_x_with(&ch, name, kind.clone(), options, FieldTable::default()).await),
            expected,
            "declare '{name}' {kind:?} {options:?}"
        );
        assert!(!ch.status().connected(), "the error closes the channel");
    }
    // The failed declares created nothing.
    assert!(!x_exists(&conn, "amq.foo").await);
    assert!(!x_exists(&conn, "nosuch-x").await);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn alternate_exchange_argument_is_part_of_equivalence() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = confirming(&conn).await;
    declare_x_with(
        &ch,
        "aeq-x",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("alt-1"),
    )
    .await
    .expect("declare");
    declare_x_with(
        &ch,
        "aeq-x",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("alt-1"),
    )
    .await
    .expect("same alternate exchange");
    // Other arguments are not compared.
    let mut more = alternate("alt-1");
    more.insert("x-other".into(), AMQPValue::LongInt(1));
    declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, more)
        .await
        .expect("other arguments do not count");
    let prefix = format!(
        "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for {}: ",
        t.res("exchange", "aeq-x")
    );
    for (arguments, expected) in [
        (
            alternate("alt-2"),
            "received 'alt-2' but current is 'alt-1'",
        ),
        (
            table(&[("alternate-exchange", AMQPValue::LongInt(5))]),
            "received '5' but current is 'alt-1'",
        ),
        (
            FieldTable::default(),
            "received none but current is the value 'alt-1' of type 'longstr'",
        ),
    ] {
        let ch = confirming(&conn).await;
        assert_eq!(
            refused(declare_x_with(&ch, "aeq-x", ExchangeKind::Direct, DEFAULT_X, arguments).await),
            (406, format!("{prefix}{expected}"))
        );
    }
    declare_x(&ch, "aeq-none", ExchangeKind::Direct).await;
    let ch = confirming(&conn).await;
    assert_eq!(
        refused(
            declare_x_with(
                &ch,
                "aeq-none",
                ExchangeKind::Direct,
                DEFAULT_X,
                alternate("alt-1")
            )
            .await
        ),
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for {}: received the value 'alt-1' of type 'longstr' but current is none",
                t.res("exchange", "aeq-none")
            )
        )
    );
    // An alternate-exchange that is not a string is refused at declare.
    let ch = confirming(&conn).await;
    assert_eq!(
        refused(
            declare_x_with(
                &ch,
                "aeq-bad",
                ExchangeKind::Direct,
                DEFAULT_X,
                table(&[("alternate-exchange", AMQPValue::LongInt(1))])
            )
            .await
        ),
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in {}",
                t.res("exchange", "aeq-bad")
            )
        )
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection() {
    let t = target().await;
    // RabbitMQ says "invalid" for names that are atoms of its node, "unknown"
    // for the others, such as plugin types that are not enabled (Warren has
    // `x-delayed-message` built in: see tests/delayed).
    for (kind, expected) in [
        ("foo", "COMMAND_INVALID - invalid exchange type 'foo'"),
        (
            "x-no-such-plugin",
            "COMMAND_INVALID - unknown exchange type 'x-no-such-plugin'",
        ),
    ] {
        let conn = t.connect().await;
        let ch = confirming(&conn).await;
        let error = declare_x_with(
            &ch,
            "type-x",
            ExchangeKind::Custom(kind.into()),
            DEFAULT_X,
            FieldTable::default(),
        )
        .await
        .expect_err("unknown type");
        assert!(error.is_amqp_hard_error(), "{error}");
        assert_eq!(amqp_error(&error), (503, expected.to_owned()));
        assert!(
            eventually(true, async || !conn.status().connected()).await,
            "connection closed"
        );
    }
    // It created nothing.
    let conn = t.connect().await;
    assert!(!x_exists(&conn, "type-x").await);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn delete_rules_and_reply_texts() {
    let t = target().await;
    let conn = t.connect().await;
    let ch = confirming(&conn).await;
    // Deleting what does not exist is fine.
    ch.exchange_delete("del-nosuch".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete missing");
    declare_x(&ch, "del-used", ExchangeKind::Fanout).await;
    declare_x(&ch, "del-dest", ExchangeKind::Fanout).await;
    declare_queue(&ch, "del-q").await;
    bind_q(&ch, "del-q", "del-used", "").await;
    bind_x(&ch, "del-dest", "amq.fanout", "").await;
    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        nowait: false,
    };
    for (name, options, expected) in [
        (
            "del-used",
            if_unused,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - {} in use",
                    t.res("exchange", "del-used")
                ),
            ),
        ),
        (
            "amq.direct",
            ExchangeDeleteOptions::default(),
            (
                403,
                format!(
                    "ACCESS_REFUSED - deletion of system {} not allowed",
                    t.res("exchange", "amq.direct")
                ),
            ),
        ),
        // Any amq. name, even one that does not exist.
        (
            "amq.nosuch",
            ExchangeDeleteOptions::default(),
            (
                403,
                format!(
                    "ACCESS_REFUSED - deletion of system {} not allowed",
                    t.res("exchange", "amq.nosuch")
                ),
            ),
        ),
        (
            "",
            ExchangeDeleteOptions::default(),
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
            ),
        ),
    ] {
        let ch = confirming(&conn).await;
        assert_eq!(
            refused(ch.exchange_delete(name.into(), options).await),
            expected,
            "delete '{name}'"
        );
    }
    assert!(x_exists(&conn, "del-used").await);
    // Being a destination does not make an exchange used.
    let ch = confirming(&conn).await;
    ch.exchange_delete("del-dest".into(), if_unused)
        .await
        .expect("only a destination");
    assert!(!x_exists(&conn, "del-dest").await);
    ch.exchange_delete("del-used".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete");
    assert!(!x_exists(&conn, "del-used").await);
    conn.close(200, "bye".into()).await.expect("close");
}

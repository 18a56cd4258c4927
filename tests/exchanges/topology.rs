//! Exchanges bound to exchanges, alternate, auto-delete and internal exchanges,
//! mandatory returns, and what deleting an exchange does to its bindings.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, ExchangeKind};

use crate::common::lapin::{
    confirming, declare_exclusive_queue, declare_queue, refused, table, text, try_publish,
};
use crate::{
    DEFAULT_X, alternate, bind_q, bind_x, declare_x, declare_x_with, drain, eventually_x_exists,
    names, publish, reached, target, x_exists,
};

#[tokio::test]
async fn a_diamond_of_exchanges_delivers_once() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["dia-top", "dia-left", "dia-right", "dia-bottom"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    declare_queue(&ch, "dia-q").await;
    bind_x(&ch, "dia-left", "dia-top", "").await;
    bind_x(&ch, "dia-right", "dia-top", "").await;
    bind_x(&ch, "dia-bottom", "dia-left", "").await;
    bind_x(&ch, "dia-bottom", "dia-right", "").await;
    bind_q(&ch, "dia-q", "dia-bottom", "").await;
    bind_q(&ch, "dia-q", "dia-left", "").await;
    bind_q(&ch, "dia-q", "dia-top", "").await;
    publish(&ch, "dia-top", "m", None).await;
    assert_eq!(drain(&ch, "dia-q").await, vec!["m"]);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn exchange_to_exchange_bindings_chain_and_unbind() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "e2e-first", ExchangeKind::Topic).await;
    declare_x(&ch, "e2e-second", ExchangeKind::Direct).await;
    declare_x(&ch, "e2e-third", ExchangeKind::Fanout).await;
    let qs = ["e2e-q2", "e2e-q3"];
    for q in qs {
        declare_queue(&ch, q).await;
    }
    // first --k.*--> second --k.1--> q2; second --k.2--> third --> q3.
    bind_x(&ch, "e2e-second", "e2e-first", "k.*").await;
    bind_q(&ch, "e2e-q2", "e2e-second", "k.1").await;
    bind_x(&ch, "e2e-third", "e2e-second", "k.2").await;
    bind_q(&ch, "e2e-q3", "e2e-third", "").await;
    // Each exchange routes the message's own key by its own rules.
    for (key, expected) in [
        ("k.1", &["e2e-q2"][..]),
        ("k.2", &["e2e-q3"]),
        ("k.3", &[]),
        ("j.1", &[]),
    ] {
        assert_eq!(
            reached(&ch, "e2e-first", key, None, &qs).await,
            names(expected),
            "key '{key}'"
        );
    }
    // Publishing into the middle of the chain.
    assert_eq!(
        reached(&ch, "e2e-second", "k.2", None, &qs).await,
        names(&["e2e-q3"])
    );
    ch.exchange_unbind(
        "e2e-second".into(),
        "e2e-first".into(),
        "k.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    for key in ["k.1", "k.2"] {
        assert!(reached(&ch, "e2e-first", key, None, &qs).await.is_empty());
    }
    assert_eq!(
        reached(&ch, "e2e-second", "k.1", None, &qs).await,
        names(&["e2e-q2"])
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn exchange_binding_cycles_terminate() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["cyc-a", "cyc-b", "cyc-c"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    declare_queue(&ch, "cyc-q").await;
    // a -> b -> c -> a, a -> a, and the queue hangs off b.
    bind_x(&ch, "cyc-b", "cyc-a", "").await;
    bind_x(&ch, "cyc-c", "cyc-b", "").await;
    bind_x(&ch, "cyc-a", "cyc-c", "").await;
    bind_x(&ch, "cyc-a", "cyc-a", "").await;
    bind_q(&ch, "cyc-q", "cyc-b", "").await;
    for x in ["cyc-a", "cyc-b", "cyc-c"] {
        publish(&ch, x, x, None).await;
        assert_eq!(drain(&ch, "cyc-q").await, vec![x.to_owned()], "{x}");
    }
    // A cycle without queues routes nowhere (and returns the mandatory message).
    declare_x(&ch, "cyc-lonely", ExchangeKind::Fanout).await;
    bind_x(&ch, "cyc-lonely", "cyc-lonely", "").await;
    let confirmation = try_publish(
        &ch,
        "cyc-lonely",
        "k",
        true,
        b"k",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    // An alternate exchange may be internal: it is not published to directly.
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "ae-alt",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("declare internal");
    declare_x_with(
        &ch,
        "ae-main",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("ae-alt"),
    )
    .await
    .expect("declare with alternate-exchange");
    let qs = ["ae-q-main", "ae-q-alt"];
    for q in qs {
        declare_queue(&ch, q).await;
    }
    bind_q(&ch, "ae-q-main", "ae-main", "routed").await;
    bind_q(&ch, "ae-q-alt", "ae-alt", "").await;
    assert_eq!(
        reached(&ch, "ae-main", "routed", None, &qs).await,
        names(&["ae-q-main"])
    );
    assert_eq!(
        reached(&ch, "ae-main", "unrouted", None, &qs).await,
        names(&["ae-q-alt"])
    );
    // Mandatory: the alternate exchange routed it, so nothing comes back.
    let confirmation = try_publish(
        &ch,
        "ae-main",
        "unrouted",
        true,
        b"unrouted",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    let got = drain(&ch, "ae-q-alt").await;
    assert_eq!(got, vec!["unrouted"]);

    // An alternate exchange that does not exist: dropped, or returned if mandatory.
    declare_x_with(
        &ch,
        "ae-dangling",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("ae-nosuch"),
    )
    .await
    .expect("an alternate exchange need not exist");
    publish(&ch, "ae-dangling", "k", None).await;
    let confirmation = try_publish(
        &ch,
        "ae-dangling",
        "k",
        true,
        b"k",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(returned.delivery.exchange.as_str(), "ae-dangling");

    // Alternate exchanges chain: the alternate's own alternate is used too.
    declare_x_with(
        &ch,
        "ae-first",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("ae-second"),
    )
    .await
    .expect("declare");
    declare_x_with(
        &ch,
        "ae-second",
        ExchangeKind::Direct,
        DEFAULT_X,
        alternate("ae-alt"),
    )
    .await
    .expect("declare");
    assert_eq!(
        reached(&ch, "ae-first", "nowhere", None, &qs).await,
        names(&["ae-q-alt"])
    );
    // An exchange that routes to another exchange has routed, even if that one
    // finds no queue: its alternate exchange is not asked.
    declare_x(&ch, "ae-dead-end", ExchangeKind::Direct).await;
    bind_x(&ch, "ae-dead-end", "ae-main", "to-dead-end").await;
    assert!(
        reached(&ch, "ae-main", "to-dead-end", None, &qs)
            .await
            .is_empty()
    );
    // Alternate exchanges that name each other: tried once each, then returned.
    for (x, ae) in [("ae-ping", "ae-pong"), ("ae-pong", "ae-ping")] {
        declare_x_with(&ch, x, ExchangeKind::Direct, DEFAULT_X, alternate(ae))
            .await
            .expect("declare");
    }
    let confirmation = try_publish(&ch, "ae-ping", "k", true, b"k", BasicProperties::default())
        .await
        .expect("confirmed");
    assert_eq!(
        confirmation.take_message().expect("returned").reply_code,
        312
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    let auto = ExchangeDeclareOptions {
        auto_delete: true,
        ..DEFAULT_X
    };
    for x in ["ad-unbind", "ad-queue-gone", "ad-e2e", "ad-dest-only"] {
        declare_x_with(&ch, x, ExchangeKind::Direct, auto, FieldTable::default())
            .await
            .expect("declare auto-delete");
    }
    declare_x(&ch, "ad-plain", ExchangeKind::Direct).await;
    declare_queue(&ch, "ad-q").await;
    declare_queue(&ch, "ad-doomed").await;
    // Never bound: it stays.
    assert!(x_exists(&conn, "ad-unbind").await);

    // queue.unbind of the last binding deletes it; not before.
    bind_q(&ch, "ad-q", "ad-unbind", "k1").await;
    bind_q(&ch, "ad-q", "ad-unbind", "k2").await;
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k1".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    assert!(x_exists(&conn, "ad-unbind").await);
    // Unbinding what is not bound changes nothing.
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k1".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind missing binding");
    assert!(x_exists(&conn, "ad-unbind").await);
    ch.queue_unbind(
        "ad-q".into(),
        "ad-unbind".into(),
        "k2".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    eventually_x_exists(&conn, "ad-unbind", false).await;

    // Deleting the bound queue removes the binding and the exchange.
    bind_q(&ch, "ad-doomed", "ad-queue-gone", "k").await;
    ch.queue_delete("ad-doomed".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    eventually_x_exists(&conn, "ad-queue-gone", false).await;

    // An exclusive queue goes with its connection, and its bindings with it.
    declare_x_with(
        &ch,
        "ad-owner-gone",
        ExchangeKind::Fanout,
        auto,
        FieldTable::default(),
    )
    .await
    .expect("declare auto-delete");
    let owner = t.connect().await;
    let owner_ch = confirming(&owner).await;
    declare_exclusive_queue(&owner_ch, "ad-exclusive").await;
    bind_q(&owner_ch, "ad-exclusive", "ad-owner-gone", "").await;
    owner.close(200, "bye".into()).await.expect("close");
    eventually_x_exists(&conn, "ad-owner-gone", false).await;

    // Exchange-to-exchange: only bindings where it is the source count.
    bind_x(&ch, "ad-plain", "ad-e2e", "k").await;
    bind_x(&ch, "ad-dest-only", "ad-plain", "k").await;
    for (destination, source) in [("ad-plain", "ad-e2e"), ("ad-dest-only", "ad-plain")] {
        ch.exchange_unbind(
            destination.into(),
            source.into(),
            "k".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.unbind");
    }
    eventually_x_exists(&conn, "ad-e2e", false).await;
    assert!(x_exists(&conn, "ad-dest-only").await);

    // Deleting the destination exchange of its last binding deletes it too.
    bind_x(&ch, "ad-plain", "ad-dest-only", "k").await;
    ch.exchange_delete("ad-plain".into(), ExchangeDeleteOptions::default())
        .await
        .expect("exchange.delete");
    eventually_x_exists(&conn, "ad-dest-only", false).await;
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn internal_exchange_refuses_publishes_but_routes_bound_messages() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..DEFAULT_X
    };
    declare_x_with(
        &ch,
        "int-x",
        ExchangeKind::Fanout,
        internal,
        FieldTable::default(),
    )
    .await
    .expect("declare internal");
    declare_x(&ch, "int-front", ExchangeKind::Direct).await;
    declare_queue(&ch, "int-q").await;
    bind_q(&ch, "int-q", "int-x", "").await;
    bind_x(&ch, "int-x", "int-front", "k").await;
    publish(&ch, "int-front", "k", None).await;
    assert_eq!(drain(&ch, "int-q").await, vec!["k"]);

    for x in ["int-x", "amq.rabbitmq.trace"] {
        let ch = confirming(&conn).await;
        assert_eq!(
            refused(try_publish(&ch, x, "k", false, b"k", BasicProperties::default()).await),
            (
                403,
                format!(
                    "ACCESS_REFUSED - cannot publish to internal {}",
                    t.res("exchange", x)
                )
            )
        );
        assert!(!ch.status().connected(), "a 403 closes the channel");
    }
    let ch = confirming(&conn).await;
    assert!(drain(&ch, "int-q").await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_before_its_confirm() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_x(&ch, "ret-x", ExchangeKind::Direct).await;
    let properties = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(table(&[("h", text("v"))]));
    let confirmation = try_publish(&ch, "ret-x", "no-route", true, b"no-route", properties)
        .await
        .expect("confirmed");
    // lapin pairs a return with the confirm that follows it.
    let Confirmation::Ack(Some(returned)) = confirmation else {
        panic!("expected an ack carrying the returned message, got {confirmation:?}");
    };
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    let d = &returned.delivery;
    assert_eq!(
        (
            d.exchange.as_str(),
            d.routing_key.as_str(),
            d.data.as_slice()
        ),
        ("ret-x", "no-route", b"no-route".as_slice())
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        d.properties.headers().as_ref(),
        Some(&table(&[("h", text("v"))]))
    );
    // The default exchange returns a message for a queue that does not exist.
    let confirmation = try_publish(
        &ch,
        "",
        "ret-nosuch-q",
        true,
        b"ret-nosuch-q",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    let returned = confirmation.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.delivery.exchange.as_str(), "");
    // Not mandatory: silently dropped, still confirmed.
    let confirmation = try_publish(
        &ch,
        "ret-x",
        "no-route",
        false,
        b"no-route",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    // Mandatory and routed: no return.
    declare_queue(&ch, "ret-q").await;
    bind_q(&ch, "ret-q", "ret-x", "route").await;
    let confirmation = try_publish(
        &ch,
        "ret-x",
        "route",
        true,
        b"route",
        BasicProperties::default(),
    )
    .await
    .expect("confirmed");
    assert_eq!(confirmation, Confirmation::Ack(None));
    assert_eq!(drain(&ch, "ret-q").await, vec!["route"]);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn deleting_an_exchange_removes_its_bindings_both_ways() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    for x in ["delb-up", "delb-mid", "delb-down"] {
        declare_x(&ch, x, ExchangeKind::Fanout).await;
    }
    let qs = ["delb-q-mid", "delb-q-down"];
    for q in qs {
        declare_queue(&ch, q).await;
    }
    // up -> mid -> down; mid -> q-mid; down -> q-down.
    bind_x(&ch, "delb-mid", "delb-up", "").await;
    bind_x(&ch, "delb-down", "delb-mid", "").await;
    bind_q(&ch, "delb-q-mid", "delb-mid", "").await;
    bind_q(&ch, "delb-q-down", "delb-down", "").await;
    assert_eq!(reached(&ch, "delb-up", "k", None, &qs).await, names(&qs));
    ch.exchange_delete("delb-mid".into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete");
    // Recreated under the same name, it has none of the old bindings.
    declare_x(&ch, "delb-mid", ExchangeKind::Fanout).await;
    assert!(reached(&ch, "delb-up", "k", None, &qs).await.is_empty());
    assert!(reached(&ch, "delb-mid", "k", None, &qs).await.is_empty());
    assert_eq!(
        reached(&ch, "delb-down", "k", None, &qs).await,
        names(&["delb-q-down"])
    );
    // A deleted queue's bindings go too: a new queue of that name is unbound.
    ch.queue_delete("delb-q-down".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    declare_queue(&ch, "delb-q-down").await;
    assert!(reached(&ch, "delb-down", "k", None, &qs).await.is_empty());
    conn.close(200, "bye".into()).await.expect("close");
}

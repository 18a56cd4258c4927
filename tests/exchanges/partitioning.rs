//! Partitioning by key: `x-consistent-hash` (the plugin's semantics: the
//! binding key is a weight; the routing key, a `hash-header` or a
//! `hash-property` is hashed) and `x-modulus-hash` (RabbitMQ 4.3). With a
//! single active consumer on each partition queue, a pool of consumers
//! keeps per-key order.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use crate::common::lapin::{confirming, connect, refused, table, text};
use crate::common::{WAIT, start_at};
use crate::{DEFAULT_X, bind_q, declare_x_with, drain, publish, target};

fn kind(name: &str) -> ExchangeKind {
    ExchangeKind::Custom(name.into())
}

async fn declare_hash_x(ch: &Channel, name: &str, type_name: &str, args: FieldTable) {
    declare_x_with(ch, name, kind(type_name), DEFAULT_X, args)
        .await
        .unwrap_or_else(|e| panic!("declare {type_name} {name}: {e}"));
}

async fn declare_q(ch: &Channel, name: &str, durable: bool, args: FieldTable) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

/// Publishes each key once and says which of `queues` each reached (exactly one).
async fn assignment(ch: &Channel, x: &str, keys: &[String], queues: &[&str]) -> Vec<String> {
    for key in keys {
        publish(ch, x, key, None).await;
    }
    let mut owner = BTreeMap::new();
    for q in queues {
        for body in drain(ch, q).await {
            assert!(
                owner.insert(body.clone(), (*q).to_owned()).is_none(),
                "{body} twice"
            );
        }
    }
    keys.iter()
        .map(|k| {
            owner
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} reached no queue"))
        })
        .collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

#[tokio::test]
async fn consistent_hash_keeps_per_key_order_with_single_active_consumers() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_hash_x(&ch, "ph-orders", "x-consistent-hash", FieldTable::default()).await;
    let partitions = ["ph-p0", "ph-p1", "ph-p2", "ph-p3"];
    let sac = table(&[("x-single-active-consumer", AMQPValue::Boolean(true))]);
    for q in partitions {
        declare_q(&ch, q, false, sac.clone()).await;
        bind_q(&ch, q, "ph-orders", "1").await;
    }
    // A pool of two workers per partition: only one of each pair is active.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for q in partitions {
        for w in 0..2 {
            let wch = conn.create_channel().await.expect("channel");
            let mut consumer = wch
                .basic_consume(
                    q.into(),
                    format!("{q}-w{w}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("consume");
            let tx = tx.clone();
            workers.push(tokio::spawn(async move {
                while let Some(Ok(d)) = consumer.next().await {
                    let body = String::from_utf8_lossy(&d.data).into_owned();
                    let _ = tx.send((d.routing_key.to_string(), body, q, w));
                    let _ = d.ack(BasicAckOptions::default()).await;
                }
            }));
        }
    }
    let total = 20 * 20;
    for seq in 0..20 {
        for k in 0..20 {
            let key = format!("customer-{k}");
            let props = BasicProperties::default();
            let confirm = ch
                .basic_publish(
                    "ph-orders".into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    seq.to_string().as_bytes(),
                    props,
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(confirm.is_ack());
        }
    }
    let mut last: BTreeMap<String, (i32, &str)> = BTreeMap::new();
    let mut active: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..total {
        let (key, body, q, w) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("delivery in time")
            .expect("workers alive");
        let seq: i32 = body.parse().expect("sequence number");
        if let Some((prev, prev_q)) = last.get(&key) {
            assert_eq!(*prev_q, q, "{key} stays on one partition");
            assert_eq!(*prev + 1, seq, "{key} in order");
        } else {
            assert_eq!(seq, 0, "{key} starts at 0");
        }
        last.insert(key, (seq, q));
        assert_eq!(
            *active.entry(q).or_insert(w),
            w,
            "one active consumer on {q}"
        );
    }
    let used: BTreeSet<&str> = last.values().map(|(_, q)| *q).collect();
    assert!(
        used.len() >= 3,
        "20 keys spread over the partitions: {used:?}"
    );
    for w in workers {
        w.abort();
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn weight_zero_and_non_numeric_binding_keys_are_refused() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_hash_x(
        &ch,
        "ph-weights",
        "x-consistent-hash",
        FieldTable::default(),
    )
    .await;
    declare_q(&ch, "ph-w", false, FieldTable::default()).await;
    for (key, text) in [
        (
            "0",
            "PRECONDITION_FAILED - The binding key must be greater than 0",
        ),
        (
            "-3",
            "PRECONDITION_FAILED - The binding key must be greater than 0",
        ),
        (
            "abc",
            "PRECONDITION_FAILED - The binding key must be an integer: <<\"abc\">>",
        ),
    ] {
        let ch = conn.create_channel().await.expect("channel");
        let result = ch
            .queue_bind(
                "ph-w".into(),
                "ph-weights".into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(refused(result), (406, text.to_owned()), "key '{key}'");
    }
    // Nothing was bound: the message is unroutable.
    bind_q(&ch, "ph-w", "ph-weights", "2").await;
    publish(&ch, "ph-weights", "k", None).await;
    assert_eq!(drain(&ch, "ph-w").await, vec!["k".to_owned()]);
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn unbinding_a_partition_moves_only_its_keys() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_hash_x(&ch, "ph-unbind", "x-consistent-hash", FieldTable::default()).await;
    let qs = ["ph-u0", "ph-u1", "ph-u2", "ph-u3"];
    for q in qs {
        declare_q(&ch, q, false, FieldTable::default()).await;
        bind_q(&ch, q, "ph-unbind", "1").await;
    }
    let keys = keys(200);
    let before = assignment(&ch, "ph-unbind", &keys, &qs).await;
    assert!(before.iter().any(|q| q == "ph-u2"));
    ch.queue_unbind(
        "ph-u2".into(),
        "ph-unbind".into(),
        "1".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    let after = assignment(&ch, "ph-unbind", &keys, &qs).await;
    for ((k, b), a) in keys.iter().zip(&before).zip(&after) {
        assert_ne!(a, "ph-u2", "{k} no longer goes to the unbound partition");
        if b != "ph-u2" {
            assert_eq!(a, b, "{k} was not on the unbound partition: it stays");
        }
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn bad_declare_arguments_are_refused() {
    let t = target().await;
    let conn = t.connect().await;
    for (args, text) in [
        (
            table(&[
                ("hash-header", text("h")),
                ("hash-property", text("message_id")),
            ]),
            "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive",
        ),
        (
            table(&[("hash-property", text("user_id"))]),
            "PRECONDITION_FAILED - Unsupported property: user_id",
        ),
    ] {
        let ch = conn.create_channel().await.expect("channel");
        let result =
            declare_x_with(&ch, "ph-bad", kind("x-consistent-hash"), DEFAULT_X, args).await;
        assert_eq!(refused(result), (406, text.to_owned()));
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn hash_header_and_hash_property_choose_what_is_hashed() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_hash_x(
        &ch,
        "ph-header",
        "x-consistent-hash",
        table(&[("hash-header", text("customer"))]),
    )
    .await;
    let qs = ["ph-h0", "ph-h1", "ph-h2"];
    for q in qs {
        declare_q(&ch, q, false, FieldTable::default()).await;
        bind_q(&ch, q, "ph-header", "1").await;
    }
    let mut used = BTreeSet::new();
    for c in 0..30 {
        let headers = table(&[("customer", text(&format!("c{c}")))]);
        let mut seen = BTreeSet::new();
        for rk in ["a", "b", "c"] {
            publish(&ch, "ph-header", rk, Some(headers.clone())).await;
            for q in qs {
                if !drain(&ch, q).await.is_empty() {
                    seen.insert(q);
                }
            }
        }
        assert_eq!(
            seen.len(),
            1,
            "customer c{c}: one partition whatever the key"
        );
        used.extend(seen);
    }
    assert_eq!(used.len(), 3);
    // Without the header every message goes to one (arbitrary) partition.
    let mut seen = BTreeSet::new();
    for rk in ["a", "b", "c", "d"] {
        publish(&ch, "ph-header", rk, None).await;
        for q in qs {
            if !drain(&ch, q).await.is_empty() {
                seen.insert(q);
            }
        }
    }
    assert_eq!(seen.len(), 1);

    declare_hash_x(
        &ch,
        "ph-property",
        "x-consistent-hash",
        table(&[("hash-property", text("message_id"))]),
    )
    .await;
    for q in qs {
        bind_q(&ch, q, "ph-property", "1").await;
    }
    for m in 0..10 {
        let mut seen = BTreeSet::new();
        for rk in ["a", "b"] {
            let props = BasicProperties::default().with_message_id(format!("m{m}").into());
            ch.basic_publish(
                "ph-property".into(),
                rk.into(),
                BasicPublishOptions::default(),
                b"x",
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
            for q in qs {
                if !drain(&ch, q).await.is_empty() {
                    seen.insert(q);
                }
            }
        }
        assert_eq!(seen.len(), 1, "message_id m{m}: one partition");
    }
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn modulus_hash_sends_each_key_to_one_queue() {
    let t = target().await;
    let (conn, ch) = t.open().await;
    declare_hash_x(&ch, "ph-mod", "x-modulus-hash", FieldTable::default()).await;
    let qs = ["ph-m0", "ph-m1", "ph-m2"];
    // Binding keys are ignored.
    for (q, key) in qs.iter().zip(["", "anything", "7"]) {
        declare_q(&ch, q, false, FieldTable::default()).await;
        bind_q(&ch, q, "ph-mod", key).await;
    }
    let keys = keys(60);
    let first = assignment(&ch, "ph-mod", &keys, &qs).await;
    let second = assignment(&ch, "ph-mod", &keys, &qs).await;
    assert_eq!(first, second, "stable while the bindings stay");
    let used: BTreeSet<&String> = first.iter().collect();
    assert_eq!(used.len(), 3, "spread over every queue");
    conn.close(200, "bye".into()).await.expect("close");
}

async fn open(uri: &str) -> (Connection, Channel) {
    let conn = connect(uri).await;
    let ch = confirming(&conn).await;
    (conn, ch)
}

#[tokio::test]
async fn partitioning_exchanges_survive_a_restart() {
    let dir = tempfile::tempdir().expect("data dir");
    let broker = start_at(dir.path(), |_| {}).await;
    let (conn, ch) = open(&broker.uri("")).await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..DEFAULT_X
    };
    let qs = ["ph-r0", "ph-r1", "ph-r2"];
    for q in qs {
        declare_q(&ch, q, true, FieldTable::default()).await;
    }
    declare_x_with(
        &ch,
        "ph-rch",
        kind("x-consistent-hash"),
        durable,
        FieldTable::default(),
    )
    .await
    .expect("declare");
    declare_x_with(
        &ch,
        "ph-rmod",
        kind("x-modulus-hash"),
        durable,
        FieldTable::default(),
    )
    .await
    .expect("declare");
    for (q, w) in qs.iter().zip(["1", "2", "3"]) {
        bind_q(&ch, q, "ph-rch", w).await;
        bind_q(&ch, q, "ph-rmod", "").await;
    }
    let keys = keys(60);
    let ring = assignment(&ch, "ph-rch", &keys, &qs).await;
    let modulus = assignment(&ch, "ph-rmod", &keys, &qs).await;
    conn.close(200, "bye".into()).await.expect("close");
    broker.stop().await;

    let broker = start_at(dir.path(), |_| {}).await;
    let (conn, ch) = open(&broker.uri("")).await;
    assert_eq!(assignment(&ch, "ph-rch", &keys, &qs).await, ring);
    assert_eq!(assignment(&ch, "ph-rmod", &keys, &qs).await, modulus);
    // Redeclaring with the same type is equivalent.
    declare_x_with(
        &ch,
        "ph-rch",
        kind("x-consistent-hash"),
        durable,
        FieldTable::default(),
    )
    .await
    .expect("redeclare");
    conn.close(200, "bye".into()).await.expect("close");
    broker.stop().await;
}

//! Dead-lettering: `x-dead-letter-exchange`, `x-dead-letter-routing-key`, the
//! `x-death` header field by field, `x-first-death-*` / `x-last-death-*`,
//! cycles, and what does not dead-letter.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, LongString};
use lapin::{BasicProperties, ExchangeKind};

use crate::common::lapin::{table, text};
use crate::{
    bind, deaths, declare, drain, eventually_get, eventually_ready, exchange, expiring, get,
    get_some, header, header_str, int, nack, publish, publish_with, ready, send, setup, x_death,
};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn strings(values: &[&str]) -> AMQPValue {
    let values: Vec<AMQPValue> = values
        .iter()
        .map(|s| AMQPValue::LongString(LongString::from(*s)))
        .collect();
    AMQPValue::FieldArray(FieldArray::from(values))
}

#[tokio::test]
async fn a_rejected_message_carries_x_death_as_rabbitmq_writes_it() {
    let (_broker, _client, ch) = setup().await;
    exchange(&ch, "work", ExchangeKind::Direct).await;
    exchange(&ch, "dlx", ExchangeKind::Direct).await;
    declare(
        &ch,
        "q",
        &[
            ("x-dead-letter-exchange", text("dlx")),
            ("x-dead-letter-routing-key", text("dead-key")),
        ],
    )
    .await;
    declare(&ch, "dlq", &[]).await;
    bind(&ch, "q", "work", "k").await;
    bind(&ch, "dlq", "dlx", "dead-key").await;
    let headers = table(&[("app", text("v")), ("CC", strings(&["cc1"]))]);
    let properties = BasicProperties::default()
        .with_headers(headers)
        .with_expiration("60000".into())
        .with_priority(2)
        .with_message_id("m-1".into())
        .with_timestamp(1_700_000_000);
    let before = now_secs();
    assert!(send(&ch, "work", "k", b"body", properties).await.is_ack());
    let got = get_some(&ch, "q").await;
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let dead = eventually_get(&ch, "dlq").await.delivery;
    let after = now_secs();

    assert_eq!(dead.data, b"body", "the body is untouched");
    assert_eq!(dead.exchange.as_str(), "dlx");
    assert_eq!(dead.routing_key.as_str(), "dead-key");
    assert!(!dead.redelivered);
    let p = &dead.properties;
    assert_eq!(*p.expiration(), None, "expiration is removed");
    assert_eq!(*p.priority(), Some(2));
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m-1"));
    assert_eq!(*p.timestamp(), Some(1_700_000_000));
    assert_eq!(header_str(&dead, "app").as_deref(), Some("v"));
    assert_eq!(header(&dead, "CC"), Some(&strings(&["cc1"])));

    let entries = x_death(&dead);
    assert_eq!(entries.len(), 1);
    let death = entries[0].inner();
    let keys: BTreeSet<&str> = death.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "count",
            "reason",
            "queue",
            "time",
            "exchange",
            "routing-keys",
            "original-expiration"
        ])
    );
    assert_eq!(death.get("count"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(death.get("reason"), Some(&text("rejected")));
    assert_eq!(death.get("queue"), Some(&text("q")));
    assert_eq!(death.get("exchange"), Some(&text("work")));
    assert_eq!(death.get("routing-keys"), Some(&strings(&["k", "cc1"])));
    assert_eq!(death.get("original-expiration"), Some(&text("60000")));
    match death.get("time") {
        Some(AMQPValue::Timestamp(t)) => assert!(
            (before..=after).contains(t),
            "time {t} not in {before}..={after}"
        ),
        other => panic!("time is not a timestamp: {other:?}"),
    }
    for (key, value) in [
        ("x-first-death-reason", "rejected"),
        ("x-first-death-queue", "q"),
        ("x-first-death-exchange", "work"),
        ("x-last-death-reason", "rejected"),
        ("x-last-death-queue", "q"),
        ("x-last-death-exchange", "work"),
    ] {
        assert_eq!(header_str(&dead, key).as_deref(), Some(value), "{key}");
    }
}

/// Without a dead-letter routing key the message keeps its own; nack with
/// requeue=false dead-letters as reject does.
#[tokio::test]
async fn nack_without_requeue_dead_letters_with_the_original_routing_key() {
    let (_broker, _client, ch) = setup().await;
    exchange(&ch, "dlx", ExchangeKind::Fanout).await;
    declare(&ch, "q", &[("x-dead-letter-exchange", text("dlx"))]).await;
    declare(&ch, "dlq", &[]).await;
    bind(&ch, "dlq", "dlx", "").await;
    publish(&ch, "q", b"m").await;
    get_some(&ch, "q")
        .await
        .delivery
        .nack(nack(false))
        .await
        .expect("nack");
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(
        (dead.exchange.as_str(), dead.routing_key.as_str()),
        ("dlx", "q")
    );
    let death = &x_death(&dead)[0];
    assert_eq!(death.inner().get("exchange"), Some(&text("")));
    assert_eq!(death.inner().get("routing-keys"), Some(&strings(&["q"])));
    assert!(!death.inner().contains_key("original-expiration"));
    assert_eq!(deaths(&dead), [("q".to_owned(), "rejected".to_owned(), 1)]);
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_with_reason_expired() {
    let (_broker, _client, ch) = setup().await;
    declare(&ch, "dlq", &[]).await;
    let dlx = [
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("dlq")),
    ];
    declare(
        &ch,
        "queue-ttl",
        &[&dlx[..], &[("x-message-ttl", int(50))]].concat(),
    )
    .await;
    declare(&ch, "message-ttl", &dlx).await;
    publish(&ch, "queue-ttl", b"by queue ttl").await;
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(dead.data, b"by queue ttl");
    assert_eq!(
        deaths(&dead),
        [("queue-ttl".to_owned(), "expired".to_owned(), 1)]
    );
    assert!(!x_death(&dead)[0].contains_key("original-expiration"));
    assert_eq!(
        header_str(&dead, "x-first-death-reason").as_deref(),
        Some("expired")
    );

    publish_with(&ch, "message-ttl", b"by expiration", expiring("50")).await;
    let dead = eventually_get(&ch, "dlq").await.delivery;
    assert_eq!(dead.data, b"by expiration");
    assert_eq!(*dead.properties.expiration(), None);
    assert_eq!(
        x_death(&dead)[0].inner().get("original-expiration"),
        Some(&text("50"))
    );
}

/// One entry per queue and reason, the newest first; a repeated death counts
/// up in its entry (which moves to the front) and keeps its first time.
#[tokio::test]
async fn deaths_are_counted_per_queue_and_reason_newest_first() {
    let (_broker, _client, ch) = setup().await;
    declare(
        &ch,
        "a",
        &[
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("b")),
        ],
    )
    .await;
    declare(
        &ch,
        "b",
        &[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("a")),
        ],
    )
    .await;
    publish(&ch, "a", b"m").await;
    // Expired from a into b.
    let first = eventually_get(&ch, "b").await;
    assert_eq!(
        deaths(&first.delivery),
        [("a".to_owned(), "expired".to_owned(), 1)]
    );
    let first_time = x_death(&first.delivery)[0].inner().get("time").cloned();
    // Rejected from b into a, expired from a into b again.
    first
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let second = eventually_get(&ch, "b").await.delivery;
    assert_eq!(
        deaths(&second),
        [
            ("a".to_owned(), "expired".to_owned(), 2),
            ("b".to_owned(), "rejected".to_owned(), 1),
        ]
    );
    assert_eq!(x_death(&second)[0].inner().get("time").cloned(), first_time);
    assert_eq!(x_death(&second)[1].inner().get("exchange"), Some(&text("")));
    assert_eq!(
        x_death(&second)[1].inner().get("routing-keys"),
        Some(&strings(&["b"]))
    );
    for (key, value) in [
        ("x-first-death-queue", "a"),
        ("x-first-death-reason", "expired"),
        ("x-first-death-exchange", ""),
        ("x-last-death-queue", "a"),
        ("x-last-death-reason", "expired"),
        ("x-last-death-exchange", ""),
    ] {
        assert_eq!(header_str(&second, key).as_deref(), Some(value), "{key}");
    }
}

/// A message that expires and is dead-lettered back into the same queue with
/// no rejection on the way is dropped there; other queues still get it.
#[tokio::test]
async fn an_expiry_cycle_back_into_the_same_queue_is_dropped() {
    let (_broker, client, ch) = setup().await;
    exchange(&ch, "dlx", ExchangeKind::Fanout).await;
    declare(
        &ch,
        "q",
        &[
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", text("dlx")),
        ],
    )
    .await;
    declare(&ch, "observer", &[]).await;
    bind(&ch, "q", "dlx", "").await;
    bind(&ch, "observer", "dlx", "").await;
    publish(&ch, "q", b"m").await;
    let seen = eventually_get(&ch, "observer").await.delivery;
    assert_eq!(deaths(&seen), [("q".to_owned(), "expired".to_owned(), 1)]);
    assert_eq!(ready(&client, "q").await, 0);
    // Into itself through the default exchange: the same.
    declare(
        &ch,
        "self",
        &[
            ("x-message-ttl", int(50)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("self")),
        ],
    )
    .await;
    publish(&ch, "self", b"m").await;
    eventually_ready(&client, "self", 0).await;
    assert!(get(&ch, "self").await.is_none());
}

/// Cycles with a rejection are the client's doing and are allowed.
#[tokio::test]
async fn a_rejection_cycle_is_allowed_and_counts_up() {
    let (_broker, _client, ch) = setup().await;
    declare(
        &ch,
        "q",
        &[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("q")),
        ],
    )
    .await;
    publish(&ch, "q", b"m").await;
    for count in 1..=3 {
        get_some(&ch, "q")
            .await
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        let back = eventually_get(&ch, "q").await;
        assert_eq!(
            deaths(&back.delivery),
            [("q".to_owned(), "rejected".to_owned(), count)]
        );
        back.delivery.nack(nack(true)).await.expect("back in place");
    }
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_silently() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "q", &[("x-dead-letter-exchange", text("missing"))]).await;
    publish(&ch, "q", b"m").await;
    get_some(&ch, "q")
        .await
        .delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    // The channel is fine and the message is gone.
    publish(&ch, "q", b"next").await;
    assert_eq!(drain(&ch, "q").await, [b"next".to_vec()]);
    assert_eq!(ready(&client, "q").await, 0);
}

#[tokio::test]
async fn purge_and_delete_dead_letter_nothing() {
    let (_broker, client, ch) = setup().await;
    declare(&ch, "dlq", &[]).await;
    let args = [
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("dlq")),
    ];
    declare(&ch, "q", &args).await;
    for _ in 0..3 {
        publish(&ch, "q", b"m").await;
    }
    let purged = ch
        .queue_purge("q".into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(purged, 3);
    publish(&ch, "q", b"m").await;
    let _unacked = get_some(&ch, "q").await;
    publish(&ch, "q", b"m").await;
    let deleted = ch
        .queue_delete("q".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    assert_eq!(ready(&client, "dlq").await, 0);
}

/// Without a dead-letter routing key the message is routed again by all its
/// keys (its CC keys too); with one, by that key alone.
#[tokio::test]
async fn dead_letter_routing_uses_cc_keys_unless_a_routing_key_is_set() {
    let (_broker, client, ch) = setup().await;
    exchange(&ch, "dlx", ExchangeKind::Direct).await;
    for (q, key) in [("by-key", "q1"), ("by-cc", "cc"), ("by-dlrk", "dlrk")] {
        declare(&ch, q, &[]).await;
        bind(&ch, q, "dlx", key).await;
    }
    declare(&ch, "q1", &[("x-dead-letter-exchange", text("dlx"))]).await;
    declare(
        &ch,
        "q2",
        &[
            ("x-dead-letter-exchange", text("dlx")),
            ("x-dead-letter-routing-key", text("dlrk")),
        ],
    )
    .await;
    let cc = BasicProperties::default().with_headers(table(&[("CC", strings(&["cc"]))]));
    for q in ["q1", "q2"] {
        publish_with(&ch, q, b"m", cc.clone()).await;
        get_some(&ch, q)
            .await
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
    }
    let from_q2 = eventually_get(&ch, "by-dlrk").await.delivery;
    assert_eq!(
        x_death(&from_q2)[0].inner().get("routing-keys"),
        Some(&strings(&["q2", "cc"]))
    );
    // q2's copy, dead-lettered after q1's, has arrived: both are done.
    assert_eq!(ready(&client, "by-key").await, 1);
    assert_eq!(ready(&client, "by-cc").await, 1);
}

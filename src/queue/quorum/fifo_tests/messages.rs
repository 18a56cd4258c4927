//! Messages: enqueue, returns and the delivery limit, length limits, TTL,
//! purge, basic.get, configuration changes, snapshots.

use super::*;

#[test]
fn enqueue_then_consume_delivers_in_order() {
    let mut f = Fifo::default();
    for id in 1..=3 {
        assert_eq!(enqueue(&mut f, id, 0).reply, Reply::Accepted);
    }
    assert_eq!(f.messages_ready(), 3);
    assert_eq!(f.ready_bytes(), 30);
    let a = consume(&mut f, &key(1, 1, "a"), 0, 0);
    assert_eq!(
        deliveries(&a),
        [("a".into(), 1), ("a".into(), 2), ("a".into(), 3)]
    );
    assert_eq!((f.messages_ready(), f.messages_unacked()), (0, 3));
    assert_eq!(f.unacked_bytes(), 30);
}

#[test]
fn enqueue_ids_must_grow() {
    let mut f = Fifo::default();
    enqueue(&mut f, 5, 0);
    assert_eq!(enqueue(&mut f, 5, 0).reply, Reply::Duplicate);
    assert_eq!(enqueue(&mut f, 3, 0).reply, Reply::Duplicate);
    assert_eq!(f.messages_ready(), 1);
}

#[test]
fn returns_go_to_the_head_in_id_order_counted() {
    let mut f = Fifo::default();
    for id in 1..=4 {
        enqueue(&mut f, id, 0);
    }
    let k = key(1, 1, "a");
    consume(&mut f, &k, 3, 0);
    f.apply(Command::Cancel { key: k.clone() });
    f.apply(Command::Return {
        key: k.clone(),
        ids: ids(&[3, 1]),
        failed: true,
    });
    let order: Vec<u64> = f.ready_headers().map(|h| h.id.0).collect();
    assert_eq!(order, [1, 3, 4]);
    let heads: Vec<(u32, bool)> = f
        .ready_headers()
        .map(|h| (h.delivery_count, h.acquired))
        .collect();
    assert_eq!(heads, [(1, true), (1, true), (0, false)]);
    let a = consume(&mut f, &key(1, 2, "b"), 0, 0);
    let first = a.effects.first().cloned();
    assert_eq!(
        first,
        Some(Effect::Deliver {
            key: key(1, 2, "b"),
            id: MsgId(1),
            delivery_count: 1,
            redelivered: true,
        })
    );
    assert_eq!(
        deliveries(&a),
        [("b".into(), 1), ("b".into(), 3), ("b".into(), 4)]
    );
}

#[test]
fn delivery_limit_dead_letters_past_the_limit() {
    let mut f = Fifo::new(Config {
        delivery_limit: Some(2),
        ..with_dlx()
    });
    enqueue(&mut f, 1, 0);
    let k = key(1, 1, "a");
    consume(&mut f, &k, 1, 0);
    let mut counts = Vec::new();
    for _ in 0..2 {
        let a = f.apply(Command::Return {
            key: k.clone(),
            ids: ids(&[1]),
            failed: true,
        });
        counts.extend(a.effects.iter().filter_map(|e| match e {
            Effect::Deliver { delivery_count, .. } => Some(*delivery_count),
            _ => None,
        }));
    }
    assert_eq!(counts, [1, 2]);
    let a = f.apply(Command::Return {
        key: k.clone(),
        ids: ids(&[1]),
        failed: true,
    });
    assert_eq!(dead(&a), [(1, Reason::DeliveryLimit)]);
    assert_eq!(released(&a), [1]);
    // The release comes after the dead letter that still reads the body.
    assert!(matches!(a.effects.last(), Some(Effect::Release { .. })));
    assert_eq!((f.messages_ready(), f.messages_unacked()), (0, 0));
}

#[test]
fn delivery_limit_without_dlx_drops_and_none_is_unlimited() {
    let mut f = Fifo::new(Config {
        delivery_limit: Some(0),
        ..Config::default()
    });
    enqueue(&mut f, 1, 0);
    let k = key(1, 1, "a");
    consume(&mut f, &k, 0, 0);
    let a = f.apply(Command::Return {
        key: k.clone(),
        ids: ids(&[1]),
        failed: true,
    });
    assert!(dead(&a).is_empty());
    assert_eq!(released(&a), [1]);

    let mut f = Fifo::new(Config {
        delivery_limit: None,
        ..Config::default()
    });
    enqueue(&mut f, 1, 0);
    consume(&mut f, &k, 0, 0);
    for _ in 0..50 {
        f.apply(Command::Return {
            key: k.clone(),
            ids: ids(&[1]),
            failed: true,
        });
    }
    assert_eq!(
        f.consumer(&k)
            .map(|c| c.checked_out[&MsgId(1)].delivery_count),
        Some(50)
    );
}

#[test]
fn default_delivery_limit_is_rabbitmq_4s_20() {
    assert_eq!(Config::default().delivery_limit, Some(20));
}

#[test]
fn discard_dead_letters_as_rejected_or_drops() {
    let mut f = Fifo::new(with_dlx());
    enqueue(&mut f, 1, 0);
    let k = key(1, 1, "a");
    consume(&mut f, &k, 0, 0);
    let a = f.apply(Command::Discard {
        key: k.clone(),
        ids: ids(&[1]),
    });
    assert_eq!(dead(&a), [(1, Reason::Rejected)]);
    assert_eq!(released(&a), [1]);
    assert_eq!(f.messages_unacked(), 0);
}

#[test]
fn drop_head_drops_oldest_and_dead_letters_with_dlx() {
    let mut f = Fifo::new(Config {
        max_length: Some(2),
        ..with_dlx()
    });
    for id in 1..=2 {
        enqueue(&mut f, id, 0);
    }
    let a = enqueue(&mut f, 3, 0);
    assert_eq!(a.reply, Reply::Accepted);
    assert_eq!(dead(&a), [(1, Reason::Maxlen)]);
    assert_eq!(released(&a), [1]);
    let order: Vec<u64> = f.ready_headers().map(|h| h.id.0).collect();
    assert_eq!(order, [2, 3]);
}

#[test]
fn max_length_bytes_drops_until_within() {
    let mut f = Fifo::new(Config {
        max_length_bytes: Some(25),
        ..Config::default()
    });
    enqueue_sized(&mut f, 1, 10, None, 0);
    enqueue_sized(&mut f, 2, 10, None, 0);
    let a = enqueue_sized(&mut f, 3, 20, None, 0);
    assert_eq!(released(&a), [1, 2]);
    assert!(dead(&a).is_empty());
    assert_eq!(f.ready_bytes(), 20);
}

#[test]
fn reject_publish_refuses_and_counts_only_ready() {
    let mut f = Fifo::new(Config {
        max_length: Some(2),
        overflow: Overflow::RejectPublish,
        ..Config::default()
    });
    assert_eq!(enqueue(&mut f, 1, 0).reply, Reply::Accepted);
    assert_eq!(enqueue(&mut f, 2, 0).reply, Reply::Accepted);
    let a = enqueue(&mut f, 3, 0);
    assert_eq!(a.reply, Reply::Rejected);
    assert!(a.effects.is_empty());
    // Delivered messages do not count: room again.
    consume(&mut f, &key(1, 1, "a"), 1, 0);
    assert_eq!(enqueue(&mut f, 4, 0).reply, Reply::Accepted);
    assert_eq!(f.messages_ready(), 2);
}

#[test]
fn ttl_expires_at_the_head_on_tick() {
    let mut f = Fifo::new(Config {
        message_ttl: Some(100),
        ..with_dlx()
    });
    enqueue(&mut f, 1, 1_000);
    enqueue_sized(&mut f, 2, 10, Some(1_050), 1_010);
    enqueue(&mut f, 3, 1_020);
    assert_eq!(f.next_expiry(), Some(1_100));
    assert!(f.apply(Command::Tick { ts: 1_099 }).effects.is_empty());
    let a = f.apply(Command::Tick { ts: 1_100 });
    // 1 expires at 1100, 2 (its own expiration, 1050) behind it then too.
    assert_eq!(dead(&a), [(1, Reason::Expired), (2, Reason::Expired)]);
    assert_eq!(released(&a), [1, 2]);
    assert_eq!(f.next_expiry(), Some(1_120));
}

#[test]
fn ttl_only_at_the_head() {
    let mut f = Fifo::default();
    enqueue_sized(&mut f, 1, 10, Some(5_000), 0);
    enqueue_sized(&mut f, 2, 10, Some(100), 0);
    // 2 is past its time, but 1 is not: 2 waits behind it, as in RabbitMQ.
    assert!(released(&f.apply(Command::Tick { ts: 200 })).is_empty());
    assert_eq!(f.messages_ready(), 2);
}

#[test]
fn ttl_expiry_before_assignment_uses_the_commands_clock() {
    let mut f = Fifo::new(Config {
        message_ttl: Some(100),
        ..Config::default()
    });
    enqueue(&mut f, 1, 0);
    // The enqueue of 2 at ts 150 expires 1 before a consumer could get it.
    enqueue(&mut f, 2, 150);
    let a = consume(&mut f, &key(1, 1, "a"), 0, 0);
    assert_eq!(deliveries(&a), [("a".into(), 2)]);
    assert_eq!(f.messages_ready(), 0);
    // A basic.get at ts 400 finds 3 (due at 350) gone, not handed out.
    f.apply(Command::Cancel {
        key: key(1, 1, "a"),
    });
    enqueue(&mut f, 3, 250);
    let a = f.apply(Command::Dequeue {
        key: key(1, 1, "get"),
        settlement: Settlement::Settled,
        ts: 400,
    });
    assert_eq!((&a.reply, released(&a)), (&Reply::Empty, vec![3]));
}

#[test]
fn clock_never_goes_back() {
    let mut f = Fifo::new(Config {
        message_ttl: Some(10),
        ..Config::default()
    });
    f.apply(Command::Tick { ts: 1_000 });
    // An enqueue stamped earlier (a new leader's slower clock) uses 1000.
    enqueue(&mut f, 1, 500);
    assert_eq!(f.next_expiry(), Some(1_010));
}

#[test]
fn purge_drops_ready_only() {
    let mut f = Fifo::default();
    for id in 1..=4 {
        enqueue(&mut f, id, 0);
    }
    let k = key(1, 1, "a");
    consume(&mut f, &k, 2, 0);
    f.apply(Command::Cancel { key: k.clone() });
    f.apply(Command::Return {
        key: k.clone(),
        ids: ids(&[1]),
        failed: true,
    });
    let a = f.apply(Command::Purge);
    assert_eq!(a.reply, Reply::Purged(3));
    assert_eq!(released(&a), [1, 3, 4]);
    assert!(dead(&a).is_empty());
    assert_eq!(
        (f.messages_ready(), f.ready_bytes(), f.messages_unacked()),
        (0, 0, 1)
    );
}

#[test]
fn dequeue_settled_and_unsettled() {
    let mut f = Fifo::default();
    for id in 1..=3 {
        enqueue(&mut f, id, 0);
    }
    let get = key(1, 1, "get");
    let a = f.apply(Command::Dequeue {
        key: get.clone(),
        settlement: Settlement::Settled,
        ts: 0,
    });
    assert!(matches!(&a.reply, Reply::Dequeued { header, ready: 2 } if header.id == MsgId(1)));
    assert_eq!(released(&a), [1]);
    for expected in [2, 3] {
        let a = f.apply(Command::Dequeue {
            key: get.clone(),
            settlement: Settlement::Unsettled,
            ts: 0,
        });
        assert!(matches!(&a.reply, Reply::Dequeued { header, .. } if header.id == MsgId(expected)));
    }
    // Unsettled gets stay out under the get's key, which takes no deliveries.
    assert_eq!((f.messages_unacked(), f.consumer_count()), (2, 0));
    let a = f.apply(Command::Dequeue {
        key: get.clone(),
        settlement: Settlement::Unsettled,
        ts: 0,
    });
    assert_eq!(a.reply, Reply::Empty);
    f.apply(Command::Return {
        key: get.clone(),
        ids: ids(&[2]),
        failed: true,
    });
    f.apply(Command::Settle {
        key: get.clone(),
        ids: ids(&[3]),
    });
    assert!(f.consumer(&get).is_none());
    let a = f.apply(Command::Dequeue {
        key: get.clone(),
        settlement: Settlement::Settled,
        ts: 0,
    });
    let Reply::Dequeued { header, ready } = a.reply else {
        panic!("expected a message, got {:?}", a.reply);
    };
    assert_eq!(
        (header.id, header.delivery_count, header.acquired, ready),
        (MsgId(2), 1, true, 0)
    );
}

#[test]
fn update_config_applies_new_limits_at_once() {
    let mut f = Fifo::default();
    for id in 1..=5 {
        enqueue(&mut f, id, 0);
    }
    let a = f.apply(Command::UpdateConfig(Config {
        max_length: Some(2),
        ..with_dlx()
    }));
    assert_eq!(released(&a), [1, 2, 3]);
    assert_eq!(dead(&a).len(), 3);
    assert_eq!(f.config().max_length, Some(2));
}

#[test]
fn state_round_trips_through_postcard() {
    let mut f = Fifo::new(with_dlx());
    for id in 1..=3 {
        enqueue(&mut f, id, 0);
    }
    consume(&mut f, &key(1, 1, "a"), 2, 3);
    let bytes = postcard::to_allocvec(&f).expect("serialise");
    let back: Fifo = postcard::from_bytes(&bytes).expect("deserialise");
    assert_eq!(back, f);
    let cmd = Command::Checkout {
        key: key(1, 1, "a"),
        prefetch: 1,
        priority: -1,
        resume: Some(ids(&[1])),
    };
    let bytes = postcard::to_allocvec(&cmd).expect("serialise");
    assert_eq!(
        postcard::from_bytes::<Command>(&bytes).expect("deserialise"),
        cmd
    );
}

#[test]
fn a_return_not_failed_is_not_counted() {
    let mut f = Fifo::new(Config {
        delivery_limit: Some(0),
        ..with_dlx()
    });
    enqueue(&mut f, 1, 0);
    let k = key(1, 1, "a");
    consume(&mut f, &k, 0, 0);
    let a = f.apply(Command::Return {
        key: k.clone(),
        ids: ids(&[1]),
        failed: false,
    });
    assert_eq!(
        a.effects,
        [Effect::Deliver {
            key: k.clone(),
            id: MsgId(1),
            delivery_count: 0,
            redelivered: true,
        }]
    );
}

//! Consumers: assignment, prefetch, single active consumer, resume, channels
//! and nodes going down.

use super::*;

#[test]
fn equal_priorities_round_robin() {
    let mut f = Fifo::default();
    consume(&mut f, &key(1, 1, "a"), 0, 0);
    consume(&mut f, &key(2, 1, "b"), 0, 0);
    consume(&mut f, &key(3, 1, "c"), 0, 0);
    let got: Vec<String> = (1..=6)
        .flat_map(|id| deliveries(&enqueue(&mut f, id, 0)))
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn higher_priority_first_lower_only_when_it_is_full() {
    let mut f = Fifo::default();
    consume(&mut f, &key(1, 1, "low"), 0, 0);
    consume(&mut f, &key(1, 2, "high"), 2, 5);
    let got: Vec<String> = (1..=4)
        .flat_map(|id| deliveries(&enqueue(&mut f, id, 0)))
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(got, ["high", "high", "low", "low"]);
    // An ack gives the high-priority consumer room again: it gets the next one.
    f.apply(Command::Settle {
        key: key(1, 2, "high"),
        ids: ids(&[1]),
    });
    assert_eq!(deliveries(&enqueue(&mut f, 5, 0)), [("high".into(), 5)]);
}

#[test]
fn prefetch_is_never_exceeded_and_acks_refill() {
    let mut f = Fifo::default();
    for id in 1..=5 {
        enqueue(&mut f, id, 0);
    }
    let k = key(1, 1, "a");
    let a = consume(&mut f, &k, 2, 0);
    assert_eq!(deliveries(&a).len(), 2);
    assert_eq!(f.messages_ready(), 3);
    let a = f.apply(Command::Settle {
        key: k.clone(),
        ids: ids(&[1]),
    });
    assert_eq!(deliveries(&a), [("a".into(), 3)]);
    assert_eq!(released(&a), [1]);
    assert_eq!(f.consumer(&k).map(|c| c.checked_out.len()), Some(2));
}

#[test]
fn settle_of_ids_not_out_to_the_key_is_ignored() {
    let mut f = Fifo::default();
    enqueue(&mut f, 1, 0);
    consume(&mut f, &key(1, 1, "a"), 0, 0);
    let a = f.apply(Command::Settle {
        key: key(1, 1, "b"),
        ids: ids(&[1]),
    });
    assert!(a.effects.is_empty());
    assert_eq!(f.messages_unacked(), 1);
}

#[test]
fn single_active_consumer_hands_over_on_cancel() {
    let mut f = Fifo::new(Config {
        single_active_consumer: true,
        ..Config::default()
    });
    let (a, b, c) = (key(1, 1, "a"), key(2, 1, "b"), key(3, 1, "c"));
    let r = consume(&mut f, &a, 0, 0);
    assert_eq!(
        r.effects,
        [Effect::ActiveChanged {
            key: a.clone(),
            active: true
        }]
    );
    let r = consume(&mut f, &b, 0, 9);
    assert_eq!(
        r.effects,
        [Effect::ActiveChanged {
            key: b.clone(),
            active: false
        }]
    );
    consume(&mut f, &c, 0, 0);
    let got: Vec<String> = (1..=3)
        .flat_map(|id| deliveries(&enqueue(&mut f, id, 0)))
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(got, ["a", "a", "a"]);
    let r = f.apply(Command::Cancel { key: a.clone() });
    assert_eq!(
        r.effects,
        [Effect::ActiveChanged {
            key: b.clone(),
            active: true
        }]
    );
    assert_eq!(f.active_consumer(), Some(&b));
    // a's messages stay out until it settles them.
    assert_eq!(f.consumer(&a).map(|c| c.checked_out.len()), Some(3));
    assert_eq!(deliveries(&enqueue(&mut f, 4, 0)), [("b".into(), 4)]);
    f.apply(Command::Settle {
        key: a.clone(),
        ids: ids(&[1, 2, 3]),
    });
    assert!(f.consumer(&a).is_none());
    // b's channel closes: c takes over and gets b's message back, redelivered.
    let r = f.apply(Command::ChannelDown {
        node: 2,
        connection: 1,
        channel: 1,
    });
    assert_eq!(
        r.effects[0],
        Effect::ActiveChanged {
            key: c.clone(),
            active: true
        }
    );
    assert_eq!(deliveries(&r), [("c".into(), 4)]);
}

#[test]
fn resume_returns_only_the_ids_not_held() {
    let mut f = Fifo::default();
    for id in 1..=4 {
        enqueue(&mut f, id, 0);
    }
    let k = key(1, 1, "a");
    consume(&mut f, &k, 4, 0);
    // New leader: the node holds 2 and 4 unacked; 1 and 3 never arrived.
    let a = f.apply(Command::Checkout {
        key: k.clone(),
        prefetch: 4,
        priority: 0,
        resume: Some(ids(&[2, 4])),
    });
    // They come straight back to the same consumer (it has room), redelivered,
    // not counted as failed deliveries.
    let redelivered: Vec<(u64, u32, bool)> = a
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                id,
                delivery_count,
                redelivered,
                ..
            } => Some((id.0, *delivery_count, *redelivered)),
            _ => None,
        })
        .collect();
    assert_eq!(redelivered, [(1, 0, true), (3, 0, true)]);
    let out: Vec<u64> = f
        .consumer(&k)
        .map_or(Vec::new(), |c| c.checked_out.keys().map(|i| i.0).collect());
    assert_eq!(out, [1, 2, 3, 4]);
}

#[test]
fn fresh_checkout_on_a_known_key_keeps_what_is_out() {
    let mut f = Fifo::default();
    enqueue(&mut f, 1, 0);
    let k = key(1, 1, "a");
    consume(&mut f, &k, 0, 0);
    f.apply(Command::Cancel { key: k.clone() });
    consume(&mut f, &k, 0, 0);
    assert_eq!(f.messages_unacked(), 1);
    assert_eq!(f.messages_ready(), 0);
}

#[test]
fn channel_down_returns_everything_of_that_channel_only() {
    let mut f = Fifo::new(Config {
        delivery_limit: None,
        ..Config::default()
    });
    for id in 1..=4 {
        enqueue(&mut f, id, 0);
    }
    consume(&mut f, &key(1, 1, "a"), 1, 0);
    consume(&mut f, &key(1, 1, "b"), 1, 0);
    consume(&mut f, &key(1, 2, "c"), 1, 0);
    assert_eq!(f.messages_unacked(), 3);
    let a = f.apply(Command::ChannelDown {
        node: 1,
        connection: 1,
        channel: 1,
    });
    assert!(deliveries(&a).is_empty());
    assert_eq!(f.consumer_count(), 1);
    let order: Vec<(u64, u32)> = f
        .ready_headers()
        .map(|h| (h.id.0, h.delivery_count))
        .collect();
    assert_eq!(order, [(1, 1), (2, 1), (4, 0)]);
    assert_eq!(f.messages_unacked(), 1);
}

#[test]
fn node_down_returns_everything_of_that_node() {
    let mut f = Fifo::default();
    for id in 1..=3 {
        enqueue(&mut f, id, 0);
    }
    consume(&mut f, &key(7, 1, "a"), 1, 0);
    consume(&mut f, &key(7, 2, "b"), 1, 0);
    let get = ConsumerKey::new(7, 3, 1, "get");
    f.apply(Command::Dequeue {
        key: get.clone(),
        settlement: Settlement::Unsettled,
        ts: 0,
    });
    assert_eq!(f.messages_unacked(), 3);
    consume(&mut f, &key(8, 1, "c"), 0, 0);
    let a = f.apply(Command::NodeDown { node: 7 });
    assert_eq!(
        deliveries(&a),
        [("c".into(), 1), ("c".into(), 2), ("c".into(), 3)]
    );
    assert!(f.consumer(&get).is_none());
    assert_eq!(f.consumer_count(), 1);
}

#[test]
fn dequeue_is_refused_with_single_active_consumer() {
    let mut f = Fifo::new(Config {
        single_active_consumer: true,
        ..Config::default()
    });
    enqueue(&mut f, 1, 0);
    let a = f.apply(Command::Dequeue {
        key: key(1, 1, "get"),
        settlement: Settlement::Settled,
        ts: 0,
    });
    assert_eq!(a.reply, Reply::Unsupported);
    assert_eq!(f.messages_ready(), 1);
}

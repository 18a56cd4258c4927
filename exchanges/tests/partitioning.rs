//! The partitioning kinds over many keys: `x-consistent-hash` shares keys
//! in proportion to weights, sends a key to one place, and moves only the
//! keys a changed binding owned; `x-modulus-hash` spreads keys evenly.

use std::collections::HashMap;

use amq_protocol_types::{AMQPValue, FieldTable, ShortString};
use warren_exchanges::{Exchange, ExchangeKind, MessageProperties};

const KEYS: usize = 10_000;

fn none() -> FieldTable {
    FieldTable::default()
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn one(x: &Exchange<String>, key: &str) -> String {
    let mut out = Vec::new();
    x.route(key, None, &mut out);
    assert_eq!(out.len(), 1, "exactly one destination for {key}");
    out.remove(0)
}

fn assignment(x: &Exchange<String>) -> Vec<String> {
    (0..KEYS).map(|i| one(x, &format!("key-{i}"))).collect()
}

fn counts(assigned: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in assigned {
        *counts.entry(d.clone()).or_insert(0) += 1;
    }
    counts
}

fn ring(weights: &[(&str, &str)]) -> Exchange<String> {
    let mut x = Exchange::new(ExchangeKind::ConsistentHash);
    for (q, w) in weights {
        assert_eq!(x.bind(q.to_string(), w, &none()), Ok(true));
    }
    x
}

#[test]
fn consistent_hash_shares_keys_by_weight() {
    let x = ring(&[("q1", "1"), ("q2", "1"), ("q3", "2"), ("q4", "4")]);
    let c = counts(&assignment(&x));
    let share = |q: &str| c.get(q).copied().unwrap_or(0) as f64 / KEYS as f64;
    for (q, due) in [("q1", 0.125), ("q2", 0.125), ("q3", 0.25), ("q4", 0.5)] {
        let got = share(q);
        assert!(
            (got - due).abs() < due * 0.25,
            "{q}: {got} of the keys, due {due}"
        );
    }
}

#[test]
fn a_key_always_goes_to_the_same_place_whatever_the_binding_order() {
    let a = ring(&[("q1", "1"), ("q2", "2"), ("q3", "3")]);
    let b = ring(&[("q3", "3"), ("q1", "1"), ("q2", "2")]);
    assert_eq!(assignment(&a), assignment(&b));
    assert_eq!(assignment(&a), assignment(&a.clone()));
}

#[test]
fn removing_one_of_n_bindings_moves_only_its_keys() {
    let names: Vec<String> = (0..8).map(|i| format!("q{i}")).collect();
    let mut x = Exchange::new(ExchangeKind::ConsistentHash);
    for q in &names {
        x.bind(q.clone(), "1", &none()).expect("weight");
    }
    let before = assignment(&x);
    assert!(x.unbind(&"q3".to_owned(), "1", &none()));
    let after = assignment(&x);
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if b != a {
            assert_eq!(b, "q3", "only the removed binding's keys move");
            moved += 1;
        }
        assert_ne!(a, "q3");
    }
    let expected = KEYS / names.len();
    assert!(
        moved > expected / 2 && moved < expected * 3 / 2,
        "{moved} keys moved"
    );
    // Binding it again gives the same keys back.
    x.bind("q3".to_owned(), "1", &none()).expect("weight");
    assert_eq!(assignment(&x), before);
}

#[test]
fn adding_a_binding_takes_keys_only_for_itself() {
    let mut x = ring(&[("q1", "1"), ("q2", "1"), ("q3", "1")]);
    let before = assignment(&x);
    x.bind("q4".to_owned(), "1", &none()).expect("weight");
    let after = assignment(&x);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    for (b, a) in before.iter().zip(&after) {
        assert!(b == a || a == "q4");
    }
    assert!(
        moved > KEYS / 8 && moved < KEYS * 3 / 8,
        "{moved} keys moved"
    );
}

#[test]
fn weights_are_checked_at_bind() {
    let mut x: Exchange<String> = Exchange::new(ExchangeKind::ConsistentHash);
    for bad in ["0", "-1", "abc", "", "1.5"] {
        assert!(x.bind("q".into(), bad, &none()).is_err(), "{bad}");
    }
    assert!(x.is_empty());
    let mut out = Vec::new();
    x.route("k", None, &mut out);
    assert!(out.is_empty(), "no bindings, no destination");
}

#[test]
fn hash_header_and_property_choose_what_is_hashed() {
    let args = table(&[("hash-header", AMQPValue::LongString("user".into()))]);
    let mut x: Exchange<String> =
        Exchange::declare(ExchangeKind::ConsistentHash, &args).expect("valid");
    for q in ["q1", "q2", "q3", "q4"] {
        x.bind(q.into(), "1", &none()).expect("weight");
    }
    let route = |headers: Option<&FieldTable>, key: &str| {
        let mut out = Vec::new();
        x.route_message([key], headers, &MessageProperties::default(), &mut out);
        assert_eq!(out.len(), 1);
        out.remove(0)
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let h = table(&[(
            "user",
            AMQPValue::LongString(format!("u{i}").as_str().into()),
        )]);
        let first = route(Some(&h), "a");
        assert_eq!(
            route(Some(&h), "b"),
            first,
            "the routing key does not count"
        );
        seen.insert(first);
    }
    assert_eq!(seen.len(), 4, "headers spread over every partition");
    // Without the header: one fixed partition.
    let without = route(None, "a");
    assert_eq!(route(Some(&none()), "z"), without);

    let args = table(&[("hash-property", AMQPValue::LongString("message_id".into()))]);
    let mut x: Exchange<String> =
        Exchange::declare(ExchangeKind::ConsistentHash, &args).expect("valid");
    for q in ["q1", "q2", "q3", "q4"] {
        x.bind(q.into(), "1", &none()).expect("weight");
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let id = format!("m{i}");
        let props = MessageProperties {
            message_id: Some(&id),
            ..MessageProperties::default()
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        x.route_message(["a"], None, &props, &mut a);
        x.route_message(["b"], None, &props, &mut b);
        assert_eq!(a, b);
        seen.extend(a);
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn declare_arguments_are_checked() {
    let s = |v: &str| AMQPValue::LongString(v.into());
    let both = table(&[("hash-header", s("h")), ("hash-property", s("message_id"))]);
    let e = Exchange::<String>::declare(ExchangeKind::ConsistentHash, &both).expect_err("both");
    assert_eq!(
        e.to_string(),
        "hash-header and hash-property are mutually exclusive"
    );
    // Other kinds ignore them, as RabbitMQ does.
    assert!(Exchange::<String>::declare(ExchangeKind::Direct, &both).is_ok());
}

#[test]
fn modulus_hash_spreads_keys_evenly_and_ignores_binding_keys() {
    let mut x = Exchange::new(ExchangeKind::ModulusHash);
    for (q, key) in [("q1", "anything"), ("q2", ""), ("q3", "5"), ("q4", "x")] {
        x.bind(q.to_owned(), key, &none()).expect("any key");
    }
    // A second binding to q1 does not give it a second share.
    x.bind("q1".to_owned(), "again", &none()).expect("any key");
    let assigned = assignment(&x);
    let c = counts(&assigned);
    for q in ["q1", "q2", "q3", "q4"] {
        let n = c.get(q).copied().unwrap_or(0);
        assert!((2000..3000).contains(&n), "{q}: {n}");
    }
    assert_eq!(assignment(&x), assigned, "stable");
    // CC keys count for x-modulus-hash (RabbitMQ hashes all the routing keys).
    let mut with_cc = Vec::new();
    let mut moved = 0;
    for (i, alone) in assigned.iter().enumerate().take(100) {
        let key = format!("key-{i}");
        with_cc.clear();
        x.route_keys([key.as_str(), "cc"], None, &mut with_cc);
        assert_eq!(with_cc.len(), 1);
        moved += usize::from(&with_cc[0] != alone);
    }
    assert!(moved > 0);
}

#[test]
fn partition_says_what_was_hashed() {
    let x = ring(&[("q1", "1"), ("q2", "1")]);
    let p = x
        .partition(["k"], None, &MessageProperties::default())
        .expect("bound");
    assert_eq!(p.hashed, "routing key");
    assert_eq!(p.destination, one(&x, "k"));
    assert_eq!(p.of, 2 * warren_exchanges::POINTS_PER_WEIGHT as usize);
    let direct: Exchange<String> = Exchange::new(ExchangeKind::Direct);
    assert!(
        direct
            .partition(["k"], None, &MessageProperties::default())
            .is_none()
    );
}

#[test]
fn matching_bindings_names_the_bindings_taken() {
    let mut x = Exchange::new(ExchangeKind::Topic);
    x.bind("q1".to_owned(), "a.*", &none()).expect("ok");
    x.bind("q1".to_owned(), "b.*", &none()).expect("ok");
    x.bind("q2".to_owned(), "#", &none()).expect("ok");
    let found: Vec<(String, String)> = x
        .matching_bindings(["a.x"], None, &MessageProperties::default())
        .into_iter()
        .map(|(d, k, _)| (d.clone(), k.to_owned()))
        .collect();
    assert_eq!(
        found,
        vec![("q1".into(), "a.*".into()), ("q2".into(), "#".into())]
    );
    let x = ring(&[("q1", "1"), ("q2", "3")]);
    let found = x.matching_bindings(["k"], None, &MessageProperties::default());
    assert_eq!(found.len(), 1);
    assert_eq!(*found[0].0, one(&x, "k"));
}

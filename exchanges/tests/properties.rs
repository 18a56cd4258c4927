//! Property tests: the routing core agrees with small, obviously-correct
//! reference models (a recursive topic matcher, an Erlang-term model of
//! RabbitMQ's headers matching, and a plain list of bindings).

use std::collections::{BTreeSet, HashMap};

use amq_protocol_types::{AMQPValue as V, DecimalValue, FieldArray, FieldTable, ShortString};
use proptest::prelude::*;
use warren_exchanges::{Exchange, ExchangeKind};

// ---------------------------------------------------------------- topic --

/// RabbitMQ's word split: no words for "", else split on every dot.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

/// Backtracking matcher straight from the definition of `*` and `#`.
fn topic_ref(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| topic_ref(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && topic_ref(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && topic_ref(rest, &key[1..]),
    }
}

fn topic_matches(pattern: &str, key: &str) -> bool {
    topic_ref(&words(pattern), &words(key))
}

/// Dot-joined words from a tiny alphabet, so that patterns and keys collide often.
fn dotted(alphabet: &'static [&'static str], max_words: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..=max_words).prop_map(|w| w.join("."))
}

const TOPIC_WORDS: &[&str] = &["a", "b", "", "*", "#"];

// -------------------------------------------------------------- headers --

/// RabbitMQ's decoded form of a field value (rabbit_binary_parser).
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Int(i128),
    Float(f64),
    Bin(Vec<u8>),
    Atom(&'static str),
    Tuple(Vec<Term>),
    List(Vec<Term>),
}

fn type_atom(v: &V) -> &'static str {
    match v {
        V::Boolean(_) => "bool",
        V::ShortShortInt(_) => "byte",
        V::ShortShortUInt(_) => "unsignedbyte",
        V::ShortInt(_) => "short",
        V::ShortUInt(_) => "unsignedshort",
        V::LongInt(_) => "signedint",
        V::LongUInt(_) => "unsignedint",
        V::LongLongInt(_) => "long",
        V::Float(_) => "float",
        V::Double(_) => "double",
        V::DecimalValue(_) => "decimal",
        V::ShortString(_) | V::LongString(_) => "longstr",
        V::FieldArray(_) => "array",
        V::Timestamp(_) => "timestamp",
        V::FieldTable(_) => "table",
        V::ByteArray(_) => "binary",
        V::Void => "void",
    }
}

fn term(v: &V) -> Term {
    match v {
        V::Boolean(b) => Term::Atom(if *b { "true" } else { "false" }),
        V::ShortShortInt(n) => Term::Int((*n).into()),
        V::ShortShortUInt(n) => Term::Int((*n).into()),
        V::ShortInt(n) => Term::Int((*n).into()),
        V::ShortUInt(n) => Term::Int((*n).into()),
        V::LongInt(n) => Term::Int((*n).into()),
        V::LongUInt(n) => Term::Int((*n).into()),
        V::LongLongInt(n) => Term::Int((*n).into()),
        V::Timestamp(n) => Term::Int((*n).into()),
        V::Float(f) => Term::Float((*f).into()),
        V::Double(f) => Term::Float(*f),
        V::DecimalValue(d) => {
            Term::Tuple(vec![Term::Int(d.scale.into()), Term::Int(d.value.into())])
        }
        V::ShortString(s) => Term::Bin(s.as_str().as_bytes().to_vec()),
        V::LongString(s) => Term::Bin(s.as_bytes().to_vec()),
        V::ByteArray(b) => Term::Bin(b.as_slice().to_vec()),
        V::Void => Term::Atom("undefined"),
        V::FieldTable(t) => Term::List(
            t.inner()
                .iter()
                .map(|(k, v)| {
                    Term::Tuple(vec![
                        Term::Bin(k.as_str().as_bytes().to_vec()),
                        Term::Atom(type_atom(v)),
                        term(v),
                    ])
                })
                .collect(),
        ),
        V::FieldArray(a) => Term::List(
            a.as_slice()
                .iter()
                .map(|v| Term::Tuple(vec![Term::Atom(type_atom(v)), term(v)]))
                .collect(),
        ),
    }
}

/// mc_amqpl:routing_value: top-level timestamp headers become milliseconds.
fn routing_term(v: &V) -> Term {
    match v {
        V::Timestamp(t) => Term::Int(i128::from(*t) * 1000),
        other => term(other),
    }
}

/// rabbit_exchange_type_headers, 3.13: `None` if the binding is invalid.
fn headers_ref(args: &FieldTable, headers: Option<&FieldTable>) -> Option<bool> {
    let (all, with_x) = match args.inner().get("x-match") {
        None => (true, false),
        Some(V::LongString(s)) => match s.as_bytes() {
            b"all" => (true, false),
            b"any" => (false, false),
            b"all-with-x" => (true, true),
            b"any-with-x" => (false, true),
            _ => return None,
        },
        Some(_) => return None,
    };
    let m: HashMap<&str, Term> = headers
        .map(|h| {
            h.inner()
                .iter()
                .map(|(k, v)| (k.as_str(), routing_term(v)))
                .collect()
        })
        .unwrap_or_default();
    // Some(result) per argument, None for a skipped one.
    let results = args.inner().iter().map(|(k, v)| {
        let k = k.as_str();
        let skip = if with_x {
            k == "x-match"
        } else {
            k.starts_with("x-")
        };
        if skip {
            None
        } else if *v == V::Void {
            Some(m.contains_key(k))
        } else {
            Some(m.get(k) == Some(&term(v)))
        }
    });
    let mut results = results.flatten();
    Some(if all {
        results.all(|r| r)
    } else {
        results.any(|r| r)
    })
}

fn table_of(entries: Vec<(&'static str, V)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(k), v);
    }
    t
}

/// Small field values whose types collide across classes on purpose.
fn leaf() -> impl Strategy<Value = V> {
    let small = || -1i64..3;
    prop_oneof![
        1 => small().prop_map(|n| V::ShortShortInt(n as i8)),
        1 => (0u8..3).prop_map(V::ShortShortUInt),
        1 => small().prop_map(|n| V::ShortInt(n as i16)),
        1 => (0u16..3).prop_map(V::ShortUInt),
        1 => small().prop_map(|n| V::LongInt(n as i32)),
        1 => (0u32..3).prop_map(V::LongUInt),
        1 => small().prop_map(V::LongLongInt),
        // Timestamp headers count in milliseconds: make those collisions frequent.
        3 => prop::sample::select(&[0i64, 1000, 2000][..]).prop_map(V::LongLongInt),
        3 => (0u64..3).prop_map(V::Timestamp),
        1 => prop::sample::select(&[0.0f32, 1.0, 1.5, 0.1][..]).prop_map(V::Float),
        1 => prop::sample::select(&[0.0f64, 1.0, 1.5, 0.1][..]).prop_map(V::Double),
        1 => (0u8..2, 0u32..2).prop_map(|(scale, value)| V::DecimalValue(DecimalValue { scale, value })),
        1 => prop::sample::select(&["", "1", "a"][..]).prop_map(|s| V::LongString(s.into())),
        1 => prop::sample::select(&["", "1", "a"][..]).prop_map(|s| V::ByteArray(s.as_bytes().to_vec().into())),
        1 => prop::sample::select(&["1", "a"][..]).prop_map(|s| V::ShortString(s.into())),
        1 => any::<bool>().prop_map(V::Boolean),
        1 => Just(V::Void),
    ]
}

/// Arrays and tables of `inner` values.
fn composite(inner: BoxedStrategy<V>) -> BoxedStrategy<V> {
    prop_oneof![
        prop::collection::vec(inner.clone(), 0..3).prop_map(|v| V::FieldArray(FieldArray::from(v))),
        prop::collection::vec((prop::sample::select(&["a", "b"][..]), inner), 0..3)
            .prop_map(|e| V::FieldTable(table_of(e))),
    ]
    .boxed()
}

/// Mostly scalars, some tables and arrays nested up to two deep.
fn value() -> impl Strategy<Value = V> {
    let nested = prop_oneof![3 => leaf(), 1 => composite(leaf().boxed())].boxed();
    prop_oneof![6 => leaf(), 1 => composite(nested)]
}

const HEADER_KEYS: &[&str] = &["a", "b", "x-a"];

fn headers() -> impl Strategy<Value = Option<FieldTable>> {
    prop::option::weighted(
        0.9,
        prop::collection::vec((prop::sample::select(HEADER_KEYS), value()), 0..4)
            .prop_map(table_of),
    )
}

fn x_match() -> impl Strategy<Value = Option<V>> {
    prop_oneof![
        4 => Just(None),
        8 => prop::sample::select(&["all", "any", "all-with-x", "any-with-x"][..])
            .prop_map(|m| Some(V::LongString(m.into()))),
        1 => Just(Some(V::LongString("some".into()))),
        1 => Just(Some(V::LongInt(1))),
    ]
}

fn binding_arguments() -> impl Strategy<Value = FieldTable> {
    (
        x_match(),
        prop::collection::vec((prop::sample::select(HEADER_KEYS), value()), 0..3),
    )
        .prop_map(|(mode, entries)| {
            let mut t = table_of(entries);
            if let Some(mode) = mode {
                t.insert(ShortString::from("x-match"), mode);
            }
            t
        })
}

fn routed(x: &Exchange<usize>, key: &str, headers: Option<&FieldTable>) -> Vec<usize> {
    let mut out = Vec::new();
    x.route(key, headers, &mut out);
    out.sort_unstable();
    let len = out.len();
    out.dedup();
    assert_eq!(out.len(), len, "a destination was routed twice");
    out
}

// ----------------------------------------------------- binding sequences --

#[derive(Debug, Clone)]
enum Op {
    Bind(u8, &'static str, usize),
    Unbind(u8, &'static str, usize),
    RemoveDestination(u8),
    Route(&'static str, usize),
}

const OP_KEYS: &[&str] = &["", "a", "a.b", "a.*", "*.b", "#", "a.#", "b"];

/// A few argument tables, some equal in every way but type, one invalid for headers.
fn op_arguments() -> Vec<FieldTable> {
    vec![
        FieldTable::default(),
        table_of(vec![
            ("x-match", V::LongString("any".into())),
            ("a", V::LongString("1".into())),
        ]),
        table_of(vec![("a", V::Void)]),
        table_of(vec![("a", V::LongString("1".into()))]),
        table_of(vec![("a", V::LongInt(1))]),
        table_of(vec![("a", V::LongLongInt(1))]),
        table_of(vec![("x-match", V::LongString("bogus".into()))]),
    ]
}

fn op_headers() -> Vec<Option<FieldTable>> {
    vec![
        None,
        Some(FieldTable::default()),
        Some(table_of(vec![("a", V::LongString("1".into()))])),
        Some(table_of(vec![("a", V::ShortShortUInt(1))])),
        Some(table_of(vec![
            ("a", V::Boolean(true)),
            ("b", V::LongString("1".into())),
        ])),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let dest = || 0u8..4;
    let key = || prop::sample::select(OP_KEYS);
    prop_oneof![
        5 => (dest(), key(), 0..op_arguments().len()).prop_map(|(d, k, a)| Op::Bind(d, k, a)),
        2 => (dest(), key(), 0..op_arguments().len()).prop_map(|(d, k, a)| Op::Unbind(d, k, a)),
        1 => dest().prop_map(Op::RemoveDestination),
        3 => (key(), 0..op_headers().len()).prop_map(|(k, h)| Op::Route(k, h)),
    ]
}

fn model_matches(
    kind: ExchangeKind,
    key: &str,
    args: &FieldTable,
    rk: &str,
    h: Option<&FieldTable>,
) -> bool {
    match kind {
        ExchangeKind::Direct => key == rk,
        ExchangeKind::Fanout | ExchangeKind::Deduplication => true,
        ExchangeKind::Topic => topic_matches(key, rk),
        ExchangeKind::Headers => headers_ref(args, h) == Some(true),
        // Not generated below: tests/partitioning.rs covers them.
        ExchangeKind::ConsistentHash | ExchangeKind::ModulusHash => false,
    }
}

fn kind() -> impl Strategy<Value = ExchangeKind> {
    prop::sample::select(&ExchangeKind::ALL[..4])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn topic_agrees_with_reference(
        patterns in prop::collection::vec(dotted(TOPIC_WORDS, 5), 1..12),
        keys in prop::collection::vec(dotted(TOPIC_WORDS, 6), 1..12),
    ) {
        let mut x = Exchange::new(ExchangeKind::Topic);
        for (i, p) in patterns.iter().enumerate() {
            x.bind(i, p, &FieldTable::default()).expect("valid binding");
        }
        for key in &keys {
            let expected: Vec<usize> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| topic_matches(p, key))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(routed(&x, key, None), expected, "key {:?}", key);
        }
    }

    #[test]
    fn topic_with_many_hashes_agrees_with_reference(
        pattern in dotted(&["#", "#", "*", "a"], 8),
        key in dotted(&["a", "b"], 10),
    ) {
        let mut x = Exchange::new(ExchangeKind::Topic);
        x.bind(0, &pattern, &FieldTable::default()).expect("valid binding");
        prop_assert_eq!(!routed(&x, &key, None).is_empty(), topic_matches(&pattern, &key));
    }

    #[test]
    fn headers_agree_with_reference(
        bindings in prop::collection::vec(binding_arguments(), 1..6),
        messages in prop::collection::vec(headers(), 1..6),
    ) {
        let mut x = Exchange::new(ExchangeKind::Headers);
        let mut valid = Vec::new();
        for (i, args) in bindings.iter().enumerate() {
            let accepted = x.bind(i, "", args).is_ok();
            prop_assert_eq!(accepted, headers_ref(args, None).is_some(), "{:?}", args);
            if accepted {
                valid.push(i);
            }
        }
        for h in &messages {
            let expected: Vec<usize> = valid
                .iter()
                .copied()
                .filter(|&i| headers_ref(&bindings[i], h.as_ref()) == Some(true))
                .collect();
            prop_assert_eq!(routed(&x, "", h.as_ref()), expected, "headers {:?}", h);
        }
    }

    #[test]
    fn binding_sequences_agree_with_a_list_model(kind in kind(), ops in prop::collection::vec(op(), 0..40)) {
        let arguments = op_arguments();
        let all_headers = op_headers();
        let mut x = Exchange::new(kind);
        // The model: a plain list of distinct (destination, key, arguments) bindings.
        let mut model: Vec<(usize, &str, usize)> = Vec::new();
        let same = |a: usize, b: usize| arguments[a] == arguments[b];
        for op in ops {
            match op {
                Op::Bind(d, k, a) => {
                    let d = usize::from(d);
                    let valid = kind != ExchangeKind::Headers || headers_ref(&arguments[a], None).is_some();
                    let exists = model.iter().any(|&(md, mk, ma)| md == d && mk == k && same(ma, a));
                    match x.bind(d, k, &arguments[a]) {
                        Ok(new) => {
                            prop_assert!(valid);
                            prop_assert_eq!(new, !exists);
                            if new {
                                model.push((d, k, a));
                            }
                        }
                        Err(_) => prop_assert!(!valid),
                    }
                }
                Op::Unbind(d, k, a) => {
                    let d = usize::from(d);
                    let at = model.iter().position(|&(md, mk, ma)| md == d && mk == k && same(ma, a));
                    prop_assert_eq!(x.unbind(&d, k, &arguments[a]), at.is_some());
                    if let Some(at) = at {
                        model.remove(at);
                    }
                }
                Op::RemoveDestination(d) => {
                    let d = usize::from(d);
                    let before = model.len();
                    model.retain(|&(md, _, _)| md != d);
                    prop_assert_eq!(x.remove_destination(&d), before - model.len());
                }
                Op::Route(rk, h) => {
                    let h = all_headers[h].as_ref();
                    let expected: BTreeSet<usize> = model
                        .iter()
                        .filter(|&&(_, k, a)| model_matches(kind, k, &arguments[a], rk, h))
                        .map(|&(d, _, _)| d)
                        .collect();
                    let got = routed(&x, rk, h);
                    prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
                }
            }
            prop_assert_eq!(x.binding_count(), model.len());
            prop_assert_eq!(x.is_empty(), model.is_empty());
            for d in 0..4 {
                prop_assert_eq!(x.has_bindings_to(&d), model.iter().any(|b| b.0 == d));
            }
        }
        let mut listed: Vec<(usize, String, FieldTable)> =
            x.bindings().map(|(d, k, a)| (*d, k.to_owned(), a.clone())).collect();
        let mut expected: Vec<(usize, String, FieldTable)> =
            model.iter().map(|&(d, k, a)| (d, k.to_owned(), arguments[a].clone())).collect();
        let order = |a: &(usize, String, FieldTable), b: &(usize, String, FieldTable)| {
            (a.0, &a.1, format!("{:?}", a.2)).cmp(&(b.0, &b.1, format!("{:?}", b.2)))
        };
        listed.sort_by(order);
        expected.sort_by(order);
        prop_assert_eq!(listed, expected);
    }
}

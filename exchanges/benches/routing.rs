//! Routing benchmarks: topic (1k and 100k bindings), headers (1k), direct (100k),
//! and the cost of cloning a large exchange (what a copy-on-write snapshot pays).
//!
//! Short run: `cargo bench -p warren-exchanges --bench routing -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use std::hint::black_box;

use amq_protocol_types::{AMQPValue, FieldTable, ShortString};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warren_exchanges::{Exchange, ExchangeKind};

/// Small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Topic keys shaped `region.service.entity.event` (10 x 50 x 200 x 20 words).
fn topic_word(rng: &mut Rng, level: usize) -> String {
    match level {
        0 => format!("region{}", rng.below(10)),
        1 => format!("svc{}", rng.below(50)),
        2 => format!("entity{}", rng.below(200)),
        _ => format!("event{}", rng.below(20)),
    }
}

/// A binding key: mostly literal, ~10% `*` per word, ~5% `x.y.#`, ~0.5% `#.event`.
fn topic_pattern(rng: &mut Rng) -> String {
    let mut words: Vec<String> = (0..4)
        .map(|level| {
            if rng.chance(10) {
                "*".to_owned()
            } else {
                topic_word(rng, level)
            }
        })
        .collect();
    if rng.chance(5) {
        words.truncate(2);
        words.push("#".to_owned());
    } else if rng.below(1000) < 5 {
        words.drain(..3);
        words.insert(0, "#".to_owned());
    }
    words.join(".")
}

/// A routing key made by filling in a bound pattern, so most messages match something.
fn topic_key(rng: &mut Rng, pattern: &str) -> String {
    let words: Vec<&str> = pattern.split('.').collect();
    if words.first() == Some(&"#") {
        let mut key: Vec<String> = (0..3).map(|level| topic_word(rng, level)).collect();
        key.extend(words[1..].iter().map(|w| w.to_string()));
        return key.join(".");
    }
    let mut key = Vec::with_capacity(4);
    for (level, word) in words.iter().enumerate() {
        match *word {
            "*" => key.push(topic_word(rng, level)),
            "#" => key.extend((level..4).map(|l| topic_word(rng, l))),
            w => key.push(w.to_owned()),
        }
    }
    key.join(".")
}

fn topic_exchange(bindings: usize) -> (Exchange<u32>, Vec<String>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut x = Exchange::new(ExchangeKind::Topic);
    let mut patterns = Vec::with_capacity(bindings);
    let empty = FieldTable::default();
    for i in 0..bindings {
        let pattern = topic_pattern(&mut rng);
        // About ten bindings per queue, as when each service binds a few patterns.
        let _ = x.bind((i / 10) as u32, &pattern, &empty);
        patterns.push(pattern);
    }
    let keys = (0..1024)
        .map(|_| {
            let pattern = &patterns[rng.below(patterns.len())];
            topic_key(&mut rng, pattern)
        })
        .collect();
    (x, keys)
}

fn bench_topic(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_route");
    for bindings in [1_000, 100_000] {
        let (x, keys) = topic_exchange(bindings);
        let mut out = Vec::new();
        let total: usize = keys
            .iter()
            .map(|k| {
                out.clear();
                x.route(k, None, &mut out);
                out.len()
            })
            .sum();
        println!(
            "topic {bindings} bindings: {:.1} destinations per message on average",
            total as f64 / keys.len() as f64
        );
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(bindings), |b| {
            b.iter(|| {
                out.clear();
                x.route(black_box(&keys[i % keys.len()]), None, &mut out);
                i += 1;
                black_box(out.len())
            })
        });
    }
    group.finish();

    let (x, _) = topic_exchange(100_000);
    c.bench_function("topic_clone/100000", |b| b.iter(|| black_box(x.clone())));
}

const HEADER_NAMES: [&str; 10] = [
    "format", "region", "type", "priority", "tenant", "source", "env", "version", "kind", "lang",
];

fn header_value(rng: &mut Rng) -> AMQPValue {
    if rng.chance(70) {
        AMQPValue::LongString(format!("v{}", rng.below(5)).into())
    } else {
        AMQPValue::LongInt(rng.below(5) as i32)
    }
}

fn bench_headers(c: &mut Criterion) {
    let mut rng = Rng(42);
    let mut x = Exchange::new(ExchangeKind::Headers);
    for i in 0..1_000u32 {
        let mut args = FieldTable::default();
        let mode = if rng.chance(80) { "all" } else { "any" };
        args.insert(
            ShortString::from("x-match"),
            AMQPValue::LongString(mode.into()),
        );
        for _ in 0..1 + rng.below(3) {
            let name = HEADER_NAMES[rng.below(HEADER_NAMES.len())];
            args.insert(ShortString::from(name), header_value(&mut rng));
        }
        let _ = x.bind(i, "", &args);
    }
    let messages: Vec<FieldTable> = (0..256)
        .map(|_| {
            let mut headers = FieldTable::default();
            for _ in 0..3 + rng.below(3) {
                let name = HEADER_NAMES[rng.below(HEADER_NAMES.len())];
                headers.insert(ShortString::from(name), header_value(&mut rng));
            }
            headers
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    c.bench_function("headers_route/1000", |b| {
        b.iter(|| {
            out.clear();
            x.route("", black_box(Some(&messages[i % messages.len()])), &mut out);
            i += 1;
            black_box(out.len())
        })
    });
}

fn bench_direct(c: &mut Criterion) {
    let mut x = Exchange::new(ExchangeKind::Direct);
    let empty = FieldTable::default();
    for i in 0..100_000u32 {
        let _ = x.bind(i, &format!("orders.customer-{i}"), &empty);
    }
    let mut rng = Rng(7);
    let keys: Vec<String> = (0..1024)
        .map(|_| format!("orders.customer-{}", rng.below(100_000)))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    c.bench_function("direct_route/100000", |b| {
        b.iter(|| {
            out.clear();
            x.route(black_box(&keys[i % keys.len()]), None, &mut out);
            i += 1;
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench_topic, bench_headers, bench_direct);
criterion_main!(benches);

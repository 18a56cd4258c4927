//! The topic-1000 workload: binding patterns with `*` and `#`, the routing keys
//! the producer cycles through, and how many queues each key reaches (so the
//! consumers know when they have everything, and a routing mistake shows up as
//! a count mismatch).

use std::collections::HashSet;

/// Words per position of a routing key: keys are `aI.bJ.cK` (and some
/// `aI.bJ` and `aI.bJ.cK.dL`), with I, J, K, L below this.
const WORDS: u64 = 20;

/// A small deterministic PRNG (xorshift64*), so that every run and every
/// broker sees the same bindings and keys.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Bindings, keys and the deliveries each key yields.
pub struct TopicPlan {
    /// (queue index, binding pattern); patterns are distinct.
    pub bindings: Vec<(usize, String)>,
    /// Routing keys, cycled by the producers.
    pub keys: Vec<String>,
    /// For each key, the number of distinct queues it is routed to.
    pub weights: Vec<u64>,
}

/// `bindings` distinct patterns spread over `queues` queues, and `keys`
/// routing keys with the number of queues each one reaches.
pub fn plan(bindings: usize, queues: usize, keys: usize) -> TopicPlan {
    let mut rng = Rng::new(0x5EED_1000);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(bindings);
    while out.len() < bindings {
        let (a, b, c) = (rng.below(WORDS), rng.below(WORDS), rng.below(WORDS));
        let pattern = match rng.below(10) {
            0..=3 => format!("a{a}.b{b}.c{c}"),
            4 => format!("a{a}.*.c{c}"),
            5 => format!("a{a}.b{b}.*"),
            6 => format!("*.b{b}.c{c}"),
            7 => format!("a{a}.b{b}.#"),
            8 => match rng.below(3) {
                0 => format!("a{a}.#"),
                1 => format!("#.c{c}"),
                _ => format!("*.b{b}.#"),
            },
            _ => format!("#.b{b}.*.d{c}"),
        };
        if seen.insert(pattern.clone()) {
            let q = out.len() % queues;
            out.push((q, pattern));
        }
    }
    let keys: Vec<String> = (0..keys)
        .map(|_| {
            let (a, b, c, d) = (
                rng.below(WORDS),
                rng.below(WORDS),
                rng.below(WORDS),
                rng.below(WORDS),
            );
            match rng.below(8) {
                0 => format!("a{a}.b{b}"),
                1 => format!("a{a}.b{b}.c{c}.d{d}"),
                _ => format!("a{a}.b{b}.c{c}"),
            }
        })
        .collect();
    let weights = keys
        .iter()
        .map(|k| {
            let mut hit = vec![false; queues];
            for (q, p) in &out {
                if !hit[*q] && matches(p, k) {
                    hit[*q] = true;
                }
            }
            hit.iter().filter(|h| **h).count() as u64
        })
        .collect();
    TopicPlan {
        bindings: out,
        keys,
        weights,
    }
}

/// AMQP topic matching: words separated by '.', `*` matches exactly one word,
/// `#` matches zero or more words.
pub fn matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    match_words(&p, &k)
}

fn match_words(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| match_words(rest, &k[i..])),
        Some((&"*", rest)) => !k.is_empty() && match_words(rest, &k[1..]),
        Some((w, rest)) => k.first() == Some(w) && match_words(rest, &k[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.c"));
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(matches("#.c", "c"));
        assert!(matches("#", "x.y"));
        assert!(matches("#.b.*.d", "a.b.c.d"));
        assert!(!matches("#.b.*.d", "a.b.c"));
        assert!(!matches("a.b", "a.b.c"));
    }

    #[test]
    fn plan_has_distinct_patterns_and_routable_keys() {
        let p = plan(1000, 5, 1024);
        let distinct: HashSet<_> = p.bindings.iter().map(|(_, b)| b).collect();
        assert_eq!(distinct.len(), 1000);
        assert!(p.weights.iter().any(|w| *w > 1));
        assert!(p.weights.iter().all(|w| *w <= 5));
    }
}

//! `x-consistent-hash`: each binding puts points on a hash ring, as many as
//! its weight (the binding key, a positive integer) times
//! [`POINTS_PER_WEIGHT`]; a message goes to the owner of the first point at
//! or after its hash (wrapping around). A point's place depends only on its
//! destination and its number, never on the other bindings or their order,
//! so adding a binding takes keys only for the new destination, removing
//! one moves only the keys it owned, and the ring is the same after a
//! restart.

use std::hash::{Hash, Hasher};

use crate::error::BindError;
use crate::hashing::{StableHasher, mix};

/// Ring points per unit of weight: enough that a weight-1 binding's share
/// of the ring is within a few percent of its due.
pub const POINTS_PER_WEIGHT: u32 = 128;

/// The largest weight Warren takes (the plugin has no limit, and advises
/// single digits); it bounds the ring at `MAX_WEIGHT * POINTS_PER_WEIGHT`
/// points per binding.
pub const MAX_WEIGHT: u32 = 1000;

/// A binding key read as a weight, with the plugin's texts
/// (`rabbit_exchange_type_consistent_hash:validate_binding`).
pub fn weight(routing_key: &str) -> Result<u32, BindError> {
    // Erlang's list_to_integer: an optional sign, then decimal digits.
    let digits = routing_key
        .strip_prefix('+')
        .or_else(|| routing_key.strip_prefix('-'))
        .unwrap_or(routing_key);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BindError::WeightNotAnInteger {
            key: routing_key.to_owned(),
        });
    }
    if routing_key.starts_with('-') || digits.bytes().all(|b| b == b'0') {
        return Err(BindError::WeightNotPositive);
    }
    match digits.parse::<u32>() {
        Ok(w) if w <= MAX_WEIGHT => Ok(w),
        _ => Err(BindError::WeightTooLarge { max: MAX_WEIGHT }),
    }
}

/// The ring: points sorted by position (then destination, so equal
/// positions order the same way in every run).
#[derive(Debug, Clone)]
pub(crate) struct ConsistentHashIndex<D> {
    ring: Vec<(u64, D)>,
}

impl<D> Default for ConsistentHashIndex<D> {
    fn default() -> Self {
        ConsistentHashIndex { ring: Vec::new() }
    }
}

impl<D: Clone + Ord + Hash> ConsistentHashIndex<D> {
    /// Adds `weight` units of points for `destination`.
    pub(crate) fn insert(&mut self, destination: D, weight: u32) {
        self.ring
            .extend(points(&destination, weight).map(|p| (p, destination.clone())));
        self.ring.sort_unstable();
    }

    /// Removes `weight` units of points of `destination` (one binding's).
    pub(crate) fn remove(&mut self, destination: &D, weight: u32) {
        for p in points(destination, weight) {
            let at = self
                .ring
                .binary_search_by(|(q, d)| (*q, d).cmp(&(p, destination)));
            if let Ok(at) = at {
                self.ring.remove(at);
            }
        }
    }

    /// The owner of the first point at or after `hash`, wrapping around.
    pub(crate) fn route(&self, hash: u64) -> Option<&D> {
        let at = self.ring.partition_point(|(p, _)| *p < hash);
        self.ring
            .get(at)
            .or_else(|| self.ring.first())
            .map(|(_, d)| d)
    }

    /// How many points the ring holds.
    pub(crate) fn points(&self) -> usize {
        self.ring.len()
    }
}

/// Where `destination`'s points go: its first `weight * POINTS_PER_WEIGHT`.
fn points<D: Hash>(destination: &D, weight: u32) -> impl Iterator<Item = u64> {
    let mut h = StableHasher::default();
    destination.hash(&mut h);
    let base = h.finish();
    (0..u64::from(weight) * u64::from(POINTS_PER_WEIGHT))
        .map(move |i| mix(base ^ mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_plugin() {
        assert_eq!(weight("1"), Ok(1));
        assert_eq!(weight("+3"), Ok(3));
        assert_eq!(weight("007"), Ok(7));
        assert_eq!(weight("0"), Err(BindError::WeightNotPositive));
        assert_eq!(weight("-2"), Err(BindError::WeightNotPositive));
        assert_eq!(
            weight("abc").expect_err("not a number").to_string(),
            "The binding key must be an integer: <<\"abc\">>"
        );
        assert!(matches!(
            weight(""),
            Err(BindError::WeightNotAnInteger { .. })
        ));
        assert!(matches!(
            weight("1.5"),
            Err(BindError::WeightNotAnInteger { .. })
        ));
        assert_eq!(weight("1000"), Ok(1000));
        assert!(matches!(
            weight("1001"),
            Err(BindError::WeightTooLarge { .. })
        ));
        assert!(matches!(
            weight("99999999999999999999"),
            Err(BindError::WeightTooLarge { .. })
        ));
    }

    #[test]
    fn removing_puts_the_ring_back() {
        let mut ring = ConsistentHashIndex::default();
        ring.insert("a", 2);
        let before = ring.ring.clone();
        ring.insert("b", 1);
        ring.insert("a", 1);
        ring.remove(&"a", 1);
        ring.remove(&"b", 1);
        assert_eq!(ring.ring, before);
        ring.remove(&"a", 2);
        assert_eq!(ring.points(), 0);
        assert_eq!(ring.route(5), None);
    }
}

//! `x-modulus-hash` (RabbitMQ 4.3): the hash of the message's routing keys
//! modulo the number of bound destinations picks one of them, the
//! destinations in order. Binding keys are ignored; a destination bound
//! several times counts once. Stable while the bindings stay the same.

use std::collections::BTreeMap;

/// Destination -> number of bindings leading there, in order.
#[derive(Debug, Clone)]
pub(crate) struct ModulusIndex<D> {
    destinations: BTreeMap<D, u32>,
    /// The keys of `destinations`, for picking the n-th in O(1).
    ordered: Vec<D>,
}

impl<D> Default for ModulusIndex<D> {
    fn default() -> Self {
        ModulusIndex {
            destinations: BTreeMap::new(),
            ordered: Vec::new(),
        }
    }
}

impl<D: Clone + Ord> ModulusIndex<D> {
    /// Records one more binding to `destination`.
    pub(crate) fn insert(&mut self, destination: D) {
        let count = self.destinations.entry(destination).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.ordered = self.destinations.keys().cloned().collect();
        }
    }

    /// Forgets one binding to `destination`.
    pub(crate) fn remove(&mut self, destination: &D) {
        if let Some(count) = self.destinations.get_mut(destination) {
            *count -= 1;
            if *count == 0 {
                self.destinations.remove(destination);
                self.ordered = self.destinations.keys().cloned().collect();
            }
        }
    }

    /// The destination `hash mod n` picks, and n.
    pub(crate) fn route(&self, hash: u64) -> Option<(&D, usize)> {
        let n = self.ordered.len();
        let at = usize::try_from(hash % u64::try_from(n).ok()?.max(1)).ok()?;
        self.ordered.get(at).map(|d| (d, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_hash_mod_distinct_destinations() {
        let mut index = ModulusIndex::default();
        assert_eq!(index.route(3), None);
        index.insert("c");
        index.insert("a");
        index.insert("b");
        index.insert("a");
        assert_eq!(index.route(0), Some((&"a", 3)));
        assert_eq!(index.route(4), Some((&"b", 3)));
        assert_eq!(index.route(5), Some((&"c", 3)));
        index.remove(&"a");
        assert_eq!(index.route(0), Some((&"a", 3)));
        index.remove(&"a");
        assert_eq!(index.route(0), Some((&"b", 2)));
    }
}

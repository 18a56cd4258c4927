//! Direct exchange: a message goes to the bindings whose routing key equals
//! its routing key exactly. One hash lookup per routed key.

use std::collections::{BTreeMap, HashMap};

/// Routing key -> destinations, each with the number of bindings (differing
/// only in arguments) that lead there under that key.
#[derive(Debug, Clone)]
pub(crate) struct DirectIndex<D> {
    by_key: HashMap<Box<str>, BTreeMap<D, u32>>,
}

impl<D> Default for DirectIndex<D> {
    fn default() -> Self {
        DirectIndex {
            by_key: HashMap::new(),
        }
    }
}

impl<D: Clone + Ord> DirectIndex<D> {
    /// Records one more binding of `destination` under `routing_key`.
    pub(crate) fn insert(&mut self, destination: D, routing_key: &str) {
        let destinations = match self.by_key.get_mut(routing_key) {
            Some(destinations) => destinations,
            None => self.by_key.entry(routing_key.into()).or_default(),
        };
        *destinations.entry(destination).or_insert(0) += 1;
    }

    /// Forgets one binding of `destination` under `routing_key`.
    pub(crate) fn remove(&mut self, destination: &D, routing_key: &str) {
        let Some(destinations) = self.by_key.get_mut(routing_key) else {
            return;
        };
        if let Some(count) = destinations.get_mut(destination) {
            *count -= 1;
            if *count == 0 {
                destinations.remove(destination);
            }
        }
        if destinations.is_empty() {
            self.by_key.remove(routing_key);
        }
    }

    /// Appends the destinations bound under `routing_key` (distinct, in order).
    pub(crate) fn route(&self, routing_key: &str, out: &mut Vec<D>) {
        if let Some(destinations) = self.by_key.get(routing_key) {
            out.extend(destinations.keys().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(index: &DirectIndex<u32>, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.route(key, &mut out);
        out
    }

    #[test]
    fn routes_by_exact_key() {
        let mut index = DirectIndex::default();
        index.insert(1, "a");
        index.insert(2, "a");
        index.insert(3, "b");
        index.insert(4, "");
        assert_eq!(routed(&index, "a"), vec![1, 2]);
        assert_eq!(routed(&index, "b"), vec![3]);
        assert_eq!(routed(&index, ""), vec![4]);
        assert!(routed(&index, "A").is_empty());
        assert!(routed(&index, "a ").is_empty());
    }

    #[test]
    fn wildcards_mean_nothing_to_a_direct_exchange() {
        let mut index = DirectIndex::default();
        index.insert(1, "*");
        index.insert(2, "#");
        assert!(routed(&index, "a").is_empty());
        assert_eq!(routed(&index, "#"), vec![2]);
    }

    #[test]
    fn a_destination_stays_until_its_last_binding_goes() {
        let mut index = DirectIndex::default();
        index.insert(1, "a");
        index.insert(1, "a");
        index.remove(&1, "a");
        assert_eq!(routed(&index, "a"), vec![1]);
        index.remove(&1, "a");
        assert!(routed(&index, "a").is_empty());
        assert!(index.by_key.is_empty());
    }
}

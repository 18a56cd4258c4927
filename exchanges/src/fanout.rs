//! Fanout exchange: a message goes to every bound destination; the routing
//! key and headers are ignored.

use std::collections::BTreeMap;

/// Destination -> number of bindings leading there.
#[derive(Debug, Clone)]
pub(crate) struct FanoutIndex<D> {
    destinations: BTreeMap<D, u32>,
}

impl<D> Default for FanoutIndex<D> {
    fn default() -> Self {
        FanoutIndex {
            destinations: BTreeMap::new(),
        }
    }
}

impl<D: Clone + Ord> FanoutIndex<D> {
    /// Records one more binding to `destination`.
    pub(crate) fn insert(&mut self, destination: D) {
        *self.destinations.entry(destination).or_insert(0) += 1;
    }

    /// Forgets one binding to `destination`.
    pub(crate) fn remove(&mut self, destination: &D) {
        if let Some(count) = self.destinations.get_mut(destination) {
            *count -= 1;
            if *count == 0 {
                self.destinations.remove(destination);
            }
        }
    }

    /// Appends every bound destination (distinct, in order).
    pub(crate) fn route(&self, out: &mut Vec<D>) {
        out.extend(self.destinations.keys().cloned());
    }

    /// Every bound destination (distinct, in order), by reference.
    pub(crate) fn destinations(&self) -> std::collections::btree_map::Keys<'_, D, u32> {
        self.destinations.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_everywhere_once() {
        let mut index = FanoutIndex::default();
        index.insert(2);
        index.insert(1);
        index.insert(2);
        let mut out = Vec::new();
        index.route(&mut out);
        assert_eq!(out, vec![1, 2]);
        index.remove(&2);
        out.clear();
        index.route(&mut out);
        assert_eq!(out, vec![1, 2]);
        index.remove(&2);
        index.remove(&7);
        out.clear();
        index.route(&mut out);
        assert_eq!(out, vec![1]);
    }
}

//! The set of bindings of one exchange, keyed by their identity
//! (destination, routing key, arguments). Routing does not look here; the
//! per-kind indexes do. This set answers "is this binding new?" and lists.

use std::collections::BTreeMap;

use amq_protocol_types::FieldTable;

use crate::value;

/// Bindings grouped by destination, then routing key; each key holds the
/// distinct argument tables bound with it (almost always one).
#[derive(Debug, Clone)]
pub(crate) struct BindingSet<D> {
    by_destination: BTreeMap<D, BTreeMap<Box<str>, Vec<FieldTable>>>,
    len: usize,
}

impl<D> Default for BindingSet<D> {
    fn default() -> Self {
        BindingSet {
            by_destination: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<D: Ord> BindingSet<D> {
    /// Adds the binding; false if an identical one is already there.
    pub(crate) fn insert(
        &mut self,
        destination: D,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let by_key = self.by_destination.entry(destination).or_default();
        match by_key.get_mut(routing_key) {
            Some(tables) => {
                if tables.iter().any(|t| value::identical_tables(t, arguments)) {
                    return false;
                }
                tables.push(arguments.clone());
            }
            None => {
                by_key.insert(routing_key.into(), vec![arguments.clone()]);
            }
        }
        self.len += 1;
        true
    }

    /// Removes the binding; false if it was not there.
    pub(crate) fn remove(
        &mut self,
        destination: &D,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let Some(by_key) = self.by_destination.get_mut(destination) else {
            return false;
        };
        let Some(tables) = by_key.get_mut(routing_key) else {
            return false;
        };
        let Some(at) = tables
            .iter()
            .position(|t| value::identical_tables(t, arguments))
        else {
            return false;
        };
        tables.swap_remove(at);
        if tables.is_empty() {
            by_key.remove(routing_key);
            if by_key.is_empty() {
                self.by_destination.remove(destination);
            }
        }
        self.len -= 1;
        true
    }

    /// Removes and returns every (routing key, arguments) bound to `destination`.
    pub(crate) fn remove_destination(&mut self, destination: &D) -> Vec<(Box<str>, FieldTable)> {
        let removed: Vec<_> = self
            .by_destination
            .remove(destination)
            .into_iter()
            .flatten()
            .flat_map(|(key, tables)| tables.into_iter().map(move |t| (key.clone(), t)))
            .collect();
        self.len -= removed.len();
        removed
    }

    /// True if some binding leads to `destination`.
    pub(crate) fn has_destination(&self, destination: &D) -> bool {
        self.by_destination.contains_key(destination)
    }

    /// How many bindings there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every binding, ordered by destination then routing key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&D, &str, &FieldTable)> + '_ {
        self.by_destination
            .iter()
            .flat_map(|(destination, by_key)| {
                by_key.iter().flat_map(move |(key, tables)| {
                    tables.iter().map(move |t| (destination, &**key, t))
                })
            })
    }
}

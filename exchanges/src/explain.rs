//! What route explain asks of an exchange beyond routing: which of its
//! bindings a message goes through, and for the partitioning kinds which
//! partition and why. Never on the publish path.

use std::hash::Hash;

use amq_protocol_types::FieldTable;

use crate::{Exchange, Index, MessageProperties, hashing};

/// Which destination a partitioning exchange picked for a message, and why
/// (what route explain shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition<D> {
    /// What was hashed: `routing key`, `header 'h'`, `property 'p'`, `routing keys`.
    pub hashed: String,
    /// The hash.
    pub hash: u64,
    /// The destination picked.
    pub destination: D,
    /// `x-modulus-hash`: how many destinations share the keys;
    /// `x-consistent-hash`: how many points the ring has.
    pub of: usize,
}

impl<D: Clone + Ord + Hash> Exchange<D> {
    /// For `x-consistent-hash` and `x-modulus-hash`: which destination the
    /// message goes to and what was hashed; `None` for other kinds or
    /// without bindings.
    pub fn partition<'k>(
        &self,
        routing_keys: impl IntoIterator<Item = &'k str>,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
    ) -> Option<Partition<D>> {
        match &self.index {
            Index::ConsistentHash(index, hash_on) => {
                let hash = hash_on.hash(routing_keys.into_iter(), headers, properties);
                index.route(hash).map(|destination| Partition {
                    hashed: hash_on.describe(),
                    hash,
                    destination: destination.clone(),
                    of: index.points(),
                })
            }
            Index::ModulusHash(index) => {
                let hash = hashing::hash_routing_keys(routing_keys.into_iter());
                index.route(hash).map(|(destination, n)| Partition {
                    hashed: "routing keys".to_owned(),
                    hash,
                    destination: destination.clone(),
                    of: n,
                })
            }
            _ => None,
        }
    }

    /// The bindings a message goes through: those of the destinations it
    /// reaches that match it on their own (for the partitioning kinds and
    /// fanout, every binding to a reached destination). For route explain:
    /// costs a routing per binding, never on the publish path.
    pub fn matching_bindings<'k>(
        &self,
        routing_keys: impl IntoIterator<Item = &'k str> + Clone,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
    ) -> Vec<(&D, &str, &FieldTable)> {
        let mut reached = Vec::new();
        self.route_message(routing_keys.clone(), headers, properties, &mut reached);
        let one_by_one = matches!(
            self.index,
            Index::Direct(_) | Index::Topic(_) | Index::Headers(_)
        );
        let mut out = Vec::new();
        for (destination, key, arguments) in self.bindings() {
            if !reached.contains(destination) {
                continue;
            }
            if one_by_one {
                let mut alone = Exchange::new(self.kind);
                let mut found = Vec::new();
                if alone.bind(destination.clone(), key, arguments).is_err() {
                    continue;
                }
                alone.route_message(routing_keys.clone(), headers, properties, &mut found);
                if found.is_empty() {
                    continue;
                }
            }
            out.push((destination, key, arguments));
        }
        out
    }
}

//! Topic exchange: binding keys are patterns of dot-separated words where
//! `*` matches exactly one word and `#` matches zero or more words.
//!
//! Words follow RabbitMQ (rabbit_db_topic_exchange:split_topic_key): the
//! empty key has zero words; otherwise the key is split on every `.`, so
//! "." is two empty words and "a." is `a` then an empty word.
//!
//! Patterns live in a trie with one edge per literal word plus at most one
//! `*` and one `#` edge per node. Routing walks the trie with a *set* of
//! states, one step per word, instead of backtracking: a `#` node that
//! consumes a word stays where it is. Each step costs at most the number of
//! live states, so `#.#.#.#.a` cannot blow up the way naive backtracking can.

use std::collections::{BTreeMap, HashMap};

type NodeId = usize;

const ROOT: NodeId = 0;

/// One word of a binding key, as a trie edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge<'a> {
    Word(&'a str),
    Star,
    Hash,
}

impl<'a> Edge<'a> {
    fn of(word: &'a str) -> Self {
        match word {
            "*" => Edge::Star,
            "#" => Edge::Hash,
            _ => Edge::Word(word),
        }
    }
}

/// The words of a routing or binding key (none for the empty key).
fn words(key: &str) -> impl Iterator<Item = &str> {
    (!key.is_empty())
        .then(|| key.split('.'))
        .into_iter()
        .flatten()
}

#[derive(Debug, Clone)]
struct Node<D> {
    words: HashMap<Box<str>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    /// Reached over a `#` edge: consuming a word leaves the walk here.
    is_hash: bool,
    /// Destinations whose binding key ends here, with their binding counts.
    destinations: BTreeMap<D, u32>,
}

impl<D> Node<D> {
    fn new(is_hash: bool) -> Self {
        Node {
            words: HashMap::new(),
            star: None,
            hash: None,
            is_hash,
            destinations: BTreeMap::new(),
        }
    }

    fn is_unused(&self) -> bool {
        self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
            && self.destinations.is_empty()
    }
}

/// The trie of binding keys of one topic exchange.
#[derive(Debug, Clone)]
pub(crate) struct TopicIndex<D> {
    /// Arena of nodes; `ROOT` is always live, freed slots are reused.
    nodes: Vec<Node<D>>,
    free: Vec<NodeId>,
}

impl<D> Default for TopicIndex<D> {
    fn default() -> Self {
        TopicIndex {
            nodes: vec![Node::new(false)],
            free: Vec::new(),
        }
    }
}

impl<D: Clone + Ord> TopicIndex<D> {
    /// Records one more binding of `destination` with this binding key.
    pub(crate) fn insert(&mut self, destination: D, binding_key: &str) {
        let mut at = ROOT;
        for word in words(binding_key) {
            let edge = Edge::of(word);
            at = match self.child(at, edge) {
                Some(next) => next,
                None => self.add_child(at, edge),
            };
        }
        *self.nodes[at].destinations.entry(destination).or_insert(0) += 1;
    }

    /// Forgets one binding of `destination` with this binding key, pruning
    /// nodes that no longer lead anywhere.
    pub(crate) fn remove(&mut self, destination: &D, binding_key: &str) {
        let edges: Vec<Edge<'_>> = words(binding_key).map(Edge::of).collect();
        let mut path = Vec::with_capacity(edges.len() + 1);
        path.push(ROOT);
        let mut at = ROOT;
        for &edge in &edges {
            match self.child(at, edge) {
                Some(next) => at = next,
                None => return,
            }
            path.push(at);
        }
        let destinations = &mut self.nodes[at].destinations;
        match destinations.get_mut(destination) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                destinations.remove(destination);
            }
            None => return,
        }
        // path[i + 1] hangs off path[i] by edges[i]; unlink from the leaf up.
        for (i, &edge) in edges.iter().enumerate().rev() {
            let node = path[i + 1];
            if !self.nodes[node].is_unused() {
                break;
            }
            let parent = &mut self.nodes[path[i]];
            match edge {
                Edge::Word(word) => {
                    parent.words.remove(word);
                }
                Edge::Star => parent.star = None,
                Edge::Hash => parent.hash = None,
            }
            self.free.push(node);
        }
    }

    /// Appends the destinations of every binding key matching `routing_key`
    /// (may repeat a destination; the caller deduplicates).
    pub(crate) fn route(&self, routing_key: &str, out: &mut Vec<D>) {
        let mut states = Vec::with_capacity(8);
        states.push(ROOT);
        self.enter_hashes(&mut states);
        let mut next = Vec::with_capacity(8);
        for word in words(routing_key) {
            next.clear();
            for &at in &states {
                let node = &self.nodes[at];
                if node.is_hash {
                    next.push(at);
                }
                // Routing-key words "*" and "#" are plain words here; they
                // never equal a literal edge, and the wildcards match them anyway.
                if let Some(&child) = node.words.get(word) {
                    next.push(child);
                }
                if let Some(child) = node.star {
                    next.push(child);
                }
            }
            if next.is_empty() {
                return;
            }
            self.enter_hashes(&mut next);
            next.sort_unstable();
            next.dedup();
            std::mem::swap(&mut states, &mut next);
        }
        for &at in &states {
            out.extend(self.nodes[at].destinations.keys().cloned());
        }
    }

    /// Adds, for every state, the `#` nodes reachable by matching zero words.
    fn enter_hashes(&self, states: &mut Vec<NodeId>) {
        let mut i = 0;
        while let Some(&at) = states.get(i) {
            if let Some(hash) = self.nodes[at].hash {
                states.push(hash);
            }
            i += 1;
        }
    }

    fn child(&self, at: NodeId, edge: Edge<'_>) -> Option<NodeId> {
        let node = &self.nodes[at];
        match edge {
            Edge::Word(word) => node.words.get(word).copied(),
            Edge::Star => node.star,
            Edge::Hash => node.hash,
        }
    }

    fn add_child(&mut self, at: NodeId, edge: Edge<'_>) -> NodeId {
        let fresh = Node::new(edge == Edge::Hash);
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = fresh;
                id
            }
            None => {
                self.nodes.push(fresh);
                self.nodes.len() - 1
            }
        };
        let parent = &mut self.nodes[at];
        match edge {
            Edge::Word(word) => {
                parent.words.insert(word.into(), id);
            }
            Edge::Star => parent.star = Some(id),
            Edge::Hash => parent.hash = Some(id),
        }
        id
    }

    #[cfg(test)]
    fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        let mut index = TopicIndex::default();
        index.insert((), pattern);
        let mut out = Vec::new();
        index.route(key, &mut out);
        !out.is_empty()
    }

    #[test]
    fn words_follow_rabbitmq() {
        let w = |k| words(k).collect::<Vec<_>>();
        assert!(w("").is_empty());
        assert_eq!(w("."), vec!["", ""]);
        assert_eq!(w("a."), vec!["a", ""]);
        assert_eq!(w(".a"), vec!["", "a"]);
        assert_eq!(w("a..b"), vec!["a", "", "b"]);
    }

    #[test]
    fn literal_words() {
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b.d"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("a", ""));
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(matches("*", "a"));
        assert!(!matches("*", ""));
        assert!(!matches("*", "a.b"));
        assert!(matches("*", "*"));
        assert!(matches("*.*", "."));
        assert!(!matches("*.*", "a"));
        assert!(matches("a.*.b", "a..b"));
        assert!(matches("a.*", "a."));
        assert!(!matches("a.*", "a"));
        assert!(matches("*.b", ".b"));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(matches("#", ""));
        assert!(matches("#", "a"));
        assert!(matches("#", "."));
        assert!(matches("#", "a.b.c"));
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(!matches("a.#", "b.a"));
        assert!(matches("#.a", "a"));
        assert!(matches("#.a", "x.y.a"));
        assert!(!matches("#.a", "a.x"));
        assert!(matches("a.#.b", "a.b"));
        assert!(matches("a.#.b", "a.x.y.b"));
        assert!(matches("a.#.b", "a.b.b"));
        assert!(!matches("a.#.b", "a.b.c"));
        assert!(matches("#.#", ""));
        assert!(matches("#.*", "a"));
        assert!(!matches("#.*", ""));
        assert!(matches("*.#", "a.b"));
        assert!(matches("#.b.#", "b"));
        assert!(!matches("#.b.#", "a.c"));
        assert!(matches("a.#", "a."));
        assert!(matches("#.", "a."));
        assert!(!matches("#.", "a"));
    }

    #[test]
    fn many_hashes_do_not_blow_up() {
        let pattern = vec!["#"; 40].join(".") + ".a";
        let key = vec!["b"; 200].join(".");
        assert!(!matches(&pattern, &key));
        assert!(matches(&pattern, &(key.clone() + ".a")));
        let mixed = vec!["#.*"; 30].join(".") + ".a";
        assert!(!matches(&mixed, &key));
        assert!(matches(&mixed, &(key + ".a")));
    }

    #[test]
    fn overlapping_patterns_report_each_binding() {
        let mut index = TopicIndex::default();
        index.insert(1, "a.b");
        index.insert(2, "a.*");
        index.insert(3, "#");
        index.insert(4, "*.c");
        index.insert(1, "#.b");
        let mut out = Vec::new();
        index.route("a.b", &mut out);
        out.sort();
        assert_eq!(out, vec![1, 1, 2, 3]);
    }

    #[test]
    fn removing_prunes_dead_branches() {
        let mut index = TopicIndex::default();
        index.insert(1, "a.b.c");
        index.insert(1, "a.#.c");
        index.insert(2, "a.*");
        index.insert(2, "a.*");
        assert_eq!(index.live_nodes(), 7);
        index.remove(&1, "a.b.c");
        assert_eq!(index.live_nodes(), 5);
        index.remove(&2, "a.*");
        assert_eq!(index.live_nodes(), 5);
        index.remove(&2, "a.*");
        index.remove(&9, "a.#.c");
        index.remove(&1, "x.y");
        assert_eq!(index.live_nodes(), 4);
        index.remove(&1, "a.#.c");
        assert_eq!(index.live_nodes(), 1);
        let mut out = Vec::new();
        index.route("a.b.c", &mut out);
        assert!(out.is_empty());
        // Freed slots are reused.
        index.insert(3, "p.q.r");
        assert_eq!(index.nodes.len(), 7);
        index.route("p.q.r", &mut out);
        assert_eq!(out, vec![3]);
    }

    #[test]
    fn binding_the_empty_key_lives_at_the_root() {
        let mut index = TopicIndex::default();
        index.insert(1, "");
        let mut out = Vec::new();
        index.route("", &mut out);
        assert_eq!(out, vec![1]);
        index.remove(&1, "");
        out.clear();
        index.route("", &mut out);
        assert!(out.is_empty());
        assert_eq!(index.live_nodes(), 1);
    }
}

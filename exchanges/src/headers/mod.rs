//! Headers exchange: a message goes to the bindings whose arguments match
//! its headers. `matching.rs` says what a binding means; this file keeps the
//! bindings of one exchange and routes over them.

mod matching;

use std::collections::{BTreeMap, HashMap};

use amq_protocol_types::{AMQPValue, FieldTable};

use crate::value;

pub(crate) use matching::Matcher;
use matching::{Expected, Mode};

/// The header names that bindings test, each given a slot, so that routing
/// looks up each message header once rather than once per binding.
#[derive(Debug, Clone, Default)]
struct HeaderNames {
    by_name: HashMap<Box<str>, usize>,
    /// Per slot: its name and how many binding tests use it (0 = free).
    slots: Vec<(Box<str>, u32)>,
    free: Vec<usize>,
}

impl HeaderNames {
    fn acquire(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.by_name.get(name) {
            self.slots[slot].1 += 1;
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = (name.into(), 1);
                slot
            }
            None => {
                self.slots.push((name.into(), 1));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.into(), slot);
        slot
    }

    fn release(&mut self, slot: usize) {
        let Some((name, uses)) = self.slots.get_mut(slot) else {
            return;
        };
        *uses -= 1;
        if *uses == 0 {
            self.by_name.remove(&**name);
            self.free.push(slot);
        }
    }
}

/// A binding's arguments (its identity) and their tests, by header slot.
#[derive(Debug, Clone)]
struct HeadersBinding {
    arguments: FieldTable,
    mode: Mode,
    tests: Vec<(usize, Expected)>,
}

impl HeadersBinding {
    /// `found[slot]` is the message's header for that slot, if it has one.
    fn matches(&self, found: &[Option<&AMQPValue>]) -> bool {
        let passes = |(slot, expected): &(usize, Expected)| {
            found
                .get(*slot)
                .copied()
                .flatten()
                .is_some_and(|header| expected.matches(header))
        };
        match self.mode {
            Mode::All => self.tests.iter().all(passes),
            Mode::Any => self.tests.iter().any(passes),
        }
    }
}

/// The bindings of one headers exchange, grouped by destination so that each
/// destination is tested until its first matching binding and reported once.
#[derive(Debug, Clone)]
pub(crate) struct HeadersIndex<D> {
    by_destination: BTreeMap<D, Vec<HeadersBinding>>,
    names: HeaderNames,
}

impl<D> Default for HeadersIndex<D> {
    fn default() -> Self {
        HeadersIndex {
            by_destination: BTreeMap::new(),
            names: HeaderNames::default(),
        }
    }
}

impl<D: Clone + Ord> HeadersIndex<D> {
    /// Records one more binding to `destination`.
    pub(crate) fn insert(&mut self, destination: D, arguments: FieldTable, matcher: Matcher) {
        let tests = matcher
            .tests
            .into_iter()
            .map(|(name, expected)| (self.names.acquire(name.as_str()), expected))
            .collect();
        let binding = HeadersBinding {
            arguments,
            mode: matcher.mode,
            tests,
        };
        self.by_destination
            .entry(destination)
            .or_default()
            .push(binding);
    }

    /// Forgets one binding to `destination` with these arguments.
    ///
    /// Bindings differing only in routing key have the same arguments and
    /// route alike, so removing any one of them is right.
    pub(crate) fn remove(&mut self, destination: &D, arguments: &FieldTable) {
        let Some(bindings) = self.by_destination.get_mut(destination) else {
            return;
        };
        if let Some(at) = bindings
            .iter()
            .position(|b| value::identical_tables(&b.arguments, arguments))
        {
            let removed = bindings.swap_remove(at);
            for (slot, _) in removed.tests {
                self.names.release(slot);
            }
        }
        if bindings.is_empty() {
            self.by_destination.remove(destination);
        }
    }

    /// Appends every destination with a binding that matches these headers (distinct, in order).
    pub(crate) fn route(&self, headers: Option<&FieldTable>, out: &mut Vec<D>) {
        let mut found = vec![None; self.names.slots.len()];
        for (name, header) in headers.into_iter().flat_map(|h| h.inner()) {
            if let Some(&slot) = self.names.by_name.get(name.as_str()) {
                found[slot] = Some(header);
            }
        }
        for (destination, bindings) in &self.by_destination {
            if bindings.iter().any(|b| b.matches(&found)) {
                out.push(destination.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AMQPValue as V;
    use amq_protocol_types::{DecimalValue, FieldArray, ShortString};

    fn table(entries: &[(&str, V)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    fn s(text: &str) -> V {
        V::LongString(text.into())
    }

    /// Whether a message with these headers reaches a binding with these arguments.
    fn routes(arguments: &FieldTable, headers: Option<&FieldTable>) -> bool {
        let mut index = HeadersIndex::default();
        index.insert(
            (),
            arguments.clone(),
            Matcher::parse(arguments).expect("valid arguments"),
        );
        let mut out = Vec::new();
        index.route(headers, &mut out);
        !out.is_empty()
    }

    fn matches(arguments: &[(&str, V)], headers: &[(&str, V)]) -> bool {
        routes(&table(arguments), Some(&table(headers)))
    }

    #[test]
    fn all_is_the_default_and_needs_every_key() {
        let args = [("a", s("1")), ("b", s("2"))];
        assert!(matches(
            &args,
            &[("a", s("1")), ("b", s("2")), ("c", s("3"))]
        ));
        assert!(!matches(&args, &[("a", s("1"))]));
        assert!(!matches(&args, &[("a", s("1")), ("b", s("x"))]));
        let explicit = [("x-match", s("all")), ("a", s("1")), ("b", s("2"))];
        assert!(matches(&explicit, &[("a", s("1")), ("b", s("2"))]));
        assert!(!matches(&explicit, &[("b", s("2"))]));
    }

    #[test]
    fn any_needs_one_key() {
        let args = [("x-match", s("any")), ("a", s("1")), ("b", s("2"))];
        assert!(matches(&args, &[("b", s("2"))]));
        assert!(matches(&args, &[("a", s("1")), ("b", s("x"))]));
        assert!(!matches(&args, &[("a", s("x")), ("c", s("1"))]));
        assert!(!matches(&args, &[]));
    }

    #[test]
    fn empty_all_matches_everything_and_empty_any_nothing() {
        assert!(matches(&[], &[]));
        assert!(matches(&[("x-match", s("all"))], &[("a", s("1"))]));
        assert!(!matches(&[("x-match", s("any"))], &[("a", s("1"))]));
        assert!(routes(&FieldTable::default(), None));
        assert!(!routes(&table(&[("x-match", s("any"))]), None));
    }

    #[test]
    fn no_headers_is_an_empty_table() {
        let args = table(&[("a", V::Void)]);
        assert!(!routes(&args, None));
        let any = table(&[("x-match", s("any")), ("a", V::Void)]);
        assert!(!routes(&any, None));
    }

    #[test]
    fn x_arguments_are_ignored_unless_with_x() {
        let plain = [("x-match", s("all")), ("x-k", s("1"))];
        assert!(matches(&plain, &[]));
        let any = [("x-match", s("any")), ("x-k", s("1"))];
        assert!(!matches(&any, &[("x-k", s("1"))]));
        let all_x = [("x-match", s("all-with-x")), ("x-k", s("1"))];
        assert!(matches(&all_x, &[("x-k", s("1"))]));
        assert!(!matches(&all_x, &[]));
        let any_x = [("x-match", s("any-with-x")), ("x-k", s("1")), ("a", s("2"))];
        assert!(matches(&any_x, &[("x-k", s("1"))]));
        assert!(matches(&any_x, &[("a", s("2"))]));
        assert!(!matches(&any_x, &[("x-match", s("any-with-x"))]));
        // x-match itself never takes part, even with-x.
        assert!(matches(&[("x-match", s("all-with-x"))], &[]));
        assert!(!matches(
            &[("x-match", s("any-with-x"))],
            &[("x-match", s("any-with-x"))]
        ));
    }

    #[test]
    fn void_means_present() {
        let args = [("a", V::Void)];
        assert!(matches(&args, &[("a", s("anything"))]));
        assert!(matches(&args, &[("a", V::Void)]));
        assert!(matches(
            &args,
            &[("a", V::FieldTable(table(&[("n", V::LongInt(1))])))]
        ));
        assert!(!matches(&args, &[("b", s("1"))]));
        // A void header equals nothing but a presence test.
        assert!(!matches(&[("a", s(""))], &[("a", V::Void)]));
    }

    #[test]
    fn integers_compare_by_value_across_widths() {
        let ints = [
            V::ShortShortInt(7),
            V::ShortShortUInt(7),
            V::ShortInt(7),
            V::ShortUInt(7),
            V::LongInt(7),
            V::LongUInt(7),
            V::LongLongInt(7),
        ];
        for a in &ints {
            for h in &ints {
                assert!(
                    matches(&[("n", a.clone())], &[("n", h.clone())]),
                    "{a:?} {h:?}"
                );
            }
        }
        assert!(!matches(
            &[("n", V::LongInt(-1))],
            &[("n", V::LongUInt(u32::MAX))]
        ));
        assert!(!matches(
            &[("n", V::ShortShortInt(-1))],
            &[("n", V::ShortShortUInt(255))]
        ));
    }

    #[test]
    fn types_do_not_cross_classes() {
        assert!(!matches(&[("n", V::LongInt(1))], &[("n", s("1"))]));
        assert!(!matches(&[("n", s("1"))], &[("n", V::LongInt(1))]));
        assert!(!matches(
            &[("n", V::Boolean(true))],
            &[("n", V::LongInt(1))]
        ));
        assert!(!matches(
            &[("n", V::LongInt(1))],
            &[("n", V::Boolean(true))]
        ));
        assert!(!matches(&[("n", V::LongInt(1))], &[("n", V::Double(1.0))]));
        assert!(!matches(&[("n", V::Double(1.0))], &[("n", V::LongInt(1))]));
        let dec = V::DecimalValue(DecimalValue { scale: 0, value: 1 });
        assert!(!matches(&[("n", dec.clone())], &[("n", V::LongInt(1))]));
        assert!(matches(&[("n", dec.clone())], &[("n", dec)]));
        assert!(matches(
            &[("b", V::Boolean(false))],
            &[("b", V::Boolean(false))]
        ));
        assert!(!matches(
            &[("b", V::Boolean(false))],
            &[("b", V::Boolean(true))]
        ));
    }

    #[test]
    fn longstr_equals_binary_with_the_same_bytes() {
        let bin = V::ByteArray(b"abc".to_vec().into());
        assert!(matches(&[("k", s("abc"))], &[("k", bin.clone())]));
        assert!(matches(&[("k", bin.clone())], &[("k", s("abc"))]));
        assert!(!matches(&[("k", bin)], &[("k", s("abd"))]));
        assert!(matches(
            &[("k", V::ShortString("abc".into()))],
            &[("k", s("abc"))]
        ));
    }

    #[test]
    fn floats_compare_with_floats() {
        assert!(matches(&[("f", V::Float(1.5))], &[("f", V::Double(1.5))]));
        assert!(matches(&[("f", V::Double(1.5))], &[("f", V::Float(1.5))]));
        // 0.1f32 widened is not 0.1f64, as in Erlang.
        assert!(!matches(&[("f", V::Float(0.1))], &[("f", V::Double(0.1))]));
        assert!(!matches(
            &[("f", V::Double(f64::NAN))],
            &[("f", V::Double(f64::NAN))]
        ));
    }

    #[test]
    fn timestamp_headers_count_in_milliseconds() {
        assert!(matches(
            &[("t", V::LongLongInt(5000))],
            &[("t", V::Timestamp(5))]
        ));
        assert!(!matches(
            &[("t", V::LongLongInt(5))],
            &[("t", V::Timestamp(5))]
        ));
        assert!(!matches(
            &[("t", V::Timestamp(5))],
            &[("t", V::Timestamp(5))]
        ));
        assert!(matches(
            &[("t", V::Timestamp(5000))],
            &[("t", V::Timestamp(5))]
        ));
        assert!(matches(&[("t", V::Timestamp(5))], &[("t", V::LongInt(5))]));
        assert!(matches(
            &[("t", V::Timestamp(0))],
            &[("t", V::Timestamp(0))]
        ));
        assert!(matches(
            &[("t", V::LongLongInt(i64::MAX))],
            &[("t", V::LongLongInt(i64::MAX))]
        ));
        // No overflow for the largest timestamps.
        assert!(!matches(
            &[("t", V::LongLongInt(1))],
            &[("t", V::Timestamp(u64::MAX))]
        ));
    }

    #[test]
    fn tables_and_arrays_compare_type_and_value() {
        let t1 = V::FieldTable(table(&[("a", V::LongInt(1)), ("b", s("x"))]));
        let t2 = V::FieldTable(table(&[("a", V::LongLongInt(1)), ("b", s("x"))]));
        assert!(matches(&[("t", t1.clone())], &[("t", t1.clone())]));
        assert!(!matches(&[("t", t1.clone())], &[("t", t2)]));
        let a1 = V::FieldArray(vec![V::LongInt(1), s("x")].into());
        let a2 = V::FieldArray(vec![V::LongInt(1)].into());
        assert!(matches(&[("a", a1.clone())], &[("a", a1.clone())]));
        assert!(!matches(&[("a", a1.clone())], &[("a", a2)]));
        assert!(!matches(&[("a", a1)], &[("a", t1)]));
        // Nested timestamps are not rescaled.
        let ts = V::FieldArray(vec![V::Timestamp(5)].into());
        assert!(matches(&[("a", ts.clone())], &[("a", ts)]));
        // Both empty: Erlang's [] =:= [].
        let empty_t = V::FieldTable(FieldTable::default());
        let empty_a = V::FieldArray(FieldArray::default());
        assert!(matches(
            &[("e", empty_t.clone())],
            &[("e", empty_a.clone())]
        ));
        assert!(matches(&[("e", empty_a)], &[("e", empty_t)]));
    }

    #[test]
    fn index_reports_each_destination_once() {
        let mut index = HeadersIndex::default();
        let a = table(&[("x-match", s("any")), ("k", s("1"))]);
        let b = table(&[("k", V::Void)]);
        for (d, args) in [(1, &a), (1, &b), (2, &b), (3, &a)] {
            index.insert(
                d,
                args.clone(),
                Matcher::parse(args).expect("valid arguments"),
            );
        }
        let mut out = Vec::new();
        index.route(Some(&table(&[("k", s("1"))])), &mut out);
        assert_eq!(out, vec![1, 2, 3]);
        out.clear();
        index.route(Some(&table(&[("k", s("2"))])), &mut out);
        assert_eq!(out, vec![1, 2]);
        index.remove(&1, &b);
        index.remove(&2, &b);
        out.clear();
        index.route(Some(&table(&[("k", s("2"))])), &mut out);
        assert!(out.is_empty());
        // Header names are released with the last binding testing them, and slots reused.
        index.remove(&1, &a);
        index.remove(&3, &a);
        assert!(index.by_destination.is_empty());
        assert!(index.names.by_name.is_empty());
        let c = table(&[("other", s("1"))]);
        index.insert(4, c.clone(), Matcher::parse(&c).expect("valid arguments"));
        assert_eq!(index.names.slots.len(), 1);
        index.route(Some(&table(&[("other", s("1")), ("k", s("1"))])), &mut out);
        assert_eq!(out, vec![4]);
    }
}

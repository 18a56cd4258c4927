//! Raft's safety properties checked across the WALs of several nodes (the fault test's
//! checker, `warren-walcheck`, and the raft tests use it).
//!
//! A fault test that only counts messages misses a replica that applied a different entry at
//! some index: a restarted leader that re-used log ids its followers held was found by
//! reading the WALs. So after a run, every pair of nodes holding a group is compared on the
//! indexes both still hold (entries below a purge point are gone):
//! - Log Matching: the same log id (index and term) carries byte-identical payloads, and
//!   below the highest index where two logs share a log id, they share every log id.
//! - State Machine Safety: at or below the smaller of the two saved committed ids, both
//!   hold the same log id (and, by the first rule, the same payload).
//! - Each node's log is contiguous from its first kept index (or from its purge point).

use std::collections::BTreeSet;
use std::fmt;

use openraft::EntryPayload;
use openraft::entry::RaftEntry;

use super::scan::{GroupLog, WalScan};
use crate::types::{Entry, GroupId, LogId};

/// How many leading payload bytes a report shows.
const SHOWN: usize = 12;

/// One node's scanned WAL, named for the report.
#[derive(Debug, Clone)]
pub struct NodeScan {
    /// The node's name in the report (a data dir's name, a node id).
    pub name: String,
    /// What its WAL holds.
    pub scan: WalScan,
}

/// Which property a pair of entries breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The same log id with different payloads.
    SameLogId,
    /// Different log ids at or below both nodes' committed index.
    Committed,
    /// Different log ids below an index where the logs share a log id.
    Prefix,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::SameLogId => "same log id, different payload (Log Matching)",
            Rule::Committed => {
                "different entries at or below both committed ids (State Machine Safety)"
            }
            Rule::Prefix => "different entries below a shared log id (Log Matching)",
        })
    }
}

/// One node's entry in a [`Mismatch`].
#[derive(Debug, Clone)]
pub struct Side {
    /// The node's name.
    pub node: String,
    /// The entry's log id.
    pub log_id: LogId,
    /// A short description of its payload: kind, length and first bytes.
    pub payload: String,
}

/// Two nodes holding entries at one index that Raft says cannot both exist.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The group.
    pub group: GroupId,
    /// The index.
    pub index: u64,
    /// The property broken.
    pub rule: Rule,
    /// The first node's entry.
    pub a: Side,
    /// The second node's entry.
    pub b: Side,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} index {}: {}: {} has {} ({}), {} has {} ({})",
            self.group,
            self.index,
            self.rule,
            self.a.node,
            self.a.log_id,
            self.a.payload,
            self.b.node,
            self.b.log_id,
            self.b.payload
        )
    }
}

/// A hole in one node's log.
#[derive(Debug, Clone)]
pub struct Gap {
    /// The group.
    pub group: GroupId,
    /// The node.
    pub node: String,
    /// The last index before the hole (an entry's or the purge point's).
    pub after: u64,
    /// The next index held.
    pub next: u64,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {}: {}'s log jumps from index {} to {}",
            self.group, self.node, self.after, self.next
        )
    }
}

/// What the check found for one group.
#[derive(Debug, Clone)]
pub struct GroupCheck {
    /// The group.
    pub group: GroupId,
    /// The nodes holding it.
    pub nodes: Vec<String>,
    /// Entries compared: one per index held by both nodes of a pair.
    pub compared: u64,
    /// Pairs of entries that break a property.
    pub mismatches: Vec<Mismatch>,
    /// Holes in a node's log.
    pub gaps: Vec<Gap>,
}

/// What [`check`] found, group by group.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every group some node holds, by id.
    pub groups: Vec<GroupCheck>,
}

impl Report {
    /// Whether nothing broke a property.
    pub fn ok(&self) -> bool {
        self.groups
            .iter()
            .all(|g| g.mismatches.is_empty() && g.gaps.is_empty())
    }

    /// How many groups were held by two or more nodes (and so compared).
    pub fn groups_compared(&self) -> usize {
        self.groups.iter().filter(|g| g.nodes.len() >= 2).count()
    }

    /// Entries compared in every group.
    pub fn compared(&self) -> u64 {
        self.groups.iter().map(|g| g.compared).sum()
    }

    /// Mismatches in every group.
    pub fn mismatches(&self) -> usize {
        self.groups.iter().map(|g| g.mismatches.len()).sum()
    }

    /// Gaps in every group.
    pub fn gaps(&self) -> usize {
        self.groups.iter().map(|g| g.gaps.len()).sum()
    }
}

/// Checks Log Matching, State Machine Safety and contiguity across `nodes`' WALs.
pub fn check(nodes: &[NodeScan]) -> Report {
    let ids: BTreeSet<GroupId> = nodes
        .iter()
        .flat_map(|n| n.scan.groups.keys().copied())
        .collect();
    let mut report = Report::default();
    for group in ids {
        let holders: Vec<(&str, &GroupLog)> = nodes
            .iter()
            .filter_map(|n| Some((n.name.as_str(), n.scan.groups.get(&group)?)))
            .collect();
        let mut result = GroupCheck {
            group,
            nodes: holders.iter().map(|(n, _)| n.to_string()).collect(),
            compared: 0,
            mismatches: Vec::new(),
            gaps: Vec::new(),
        };
        for (name, log) in &holders {
            gaps(group, name, log, &mut result.gaps);
        }
        for (i, a) in holders.iter().enumerate() {
            for b in &holders[i + 1..] {
                compare(group, *a, *b, &mut result);
            }
        }
        report.groups.push(result);
    }
    report
}

/// Adds the holes in `log` to `out`.
fn gaps(group: GroupId, node: &str, log: &GroupLog, out: &mut Vec<Gap>) {
    let mut previous = log.purged.map(|p| p.index());
    for index in log.entries.keys().copied() {
        if let Some(after) = previous
            && index != after + 1
        {
            out.push(Gap {
                group,
                node: node.to_string(),
                after,
                next: index,
            });
        }
        previous = Some(index);
    }
}

/// Compares the entries both `a` and `b` hold.
fn compare(group: GroupId, a: (&str, &GroupLog), b: (&str, &GroupLog), out: &mut GroupCheck) {
    let common: Vec<(u64, &Entry, &Entry)> =
        a.1.entries
            .iter()
            .filter_map(|(index, ea)| Some((*index, ea, b.1.entries.get(index)?)))
            .collect();
    // Below the highest shared log id the logs must agree on every log id.
    let shared = common
        .iter()
        .rev()
        .find(|(_, ea, eb)| ea.log_id() == eb.log_id())
        .map(|(index, _, _)| *index);
    let committed = match (a.1.committed, b.1.committed) {
        (Some(ca), Some(cb)) => Some(ca.index().min(cb.index())),
        _ => None,
    };
    for (index, ea, eb) in common {
        out.compared += 1;
        let rule = if ea.log_id() == eb.log_id() {
            if same_payload(ea, eb) {
                continue;
            }
            Rule::SameLogId
        } else if committed.is_some_and(|c| index <= c) {
            Rule::Committed
        } else if shared.is_some_and(|s| index < s) {
            Rule::Prefix
        } else {
            // Different terms past both commit points: an uncommitted entry one node
            // has not yet had overwritten, which Raft allows.
            continue;
        };
        out.mismatches.push(Mismatch {
            group,
            index,
            rule,
            a: side(a.0, ea),
            b: side(b.0, eb),
        });
    }
}

/// Whether two entries' payloads are byte-identical as the WAL encodes them.
fn same_payload(a: &Entry, b: &Entry) -> bool {
    match (
        postcard::to_allocvec(&a.payload),
        postcard::to_allocvec(&b.payload),
    ) {
        (Ok(x), Ok(y)) => x == y,
        // Both were decoded from postcard, so both encode; if not, compare by value.
        _ => a.payload == b.payload,
    }
}

fn side(node: &str, entry: &Entry) -> Side {
    Side {
        node: node.to_string(),
        log_id: entry.log_id(),
        payload: describe(entry),
    }
}

/// A payload's kind, length and first bytes in hex.
pub fn describe(entry: &Entry) -> String {
    match &entry.payload {
        EntryPayload::Blank => "blank".to_string(),
        EntryPayload::Normal(command) => {
            let bytes = &command.payload;
            let hex: String = bytes
                .iter()
                .take(SHOWN)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if bytes.len() > SHOWN { ".." } else { "" };
            format!("normal, {} bytes: {hex}{more}", bytes.len())
        }
        EntryPayload::Membership(m) => format!("membership {m}"),
    }
}

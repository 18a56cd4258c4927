//! The WAL consistency checker (`wal::scan` + `wal::check::check`) on WAL directories built
//! with the WAL's own API: agreeing logs pass, each broken property is reported, and a scan
//! changes nothing on disk.

use std::path::Path;

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::type_config::TypeConfigExt;
use warren_raft::types::{Entry, LogId, Vote};
use warren_raft::wal::check::{NodeScan, Rule, check};
use warren_raft::wal::scan;
use warren_raft::{Command, Wal, Wr};

const GROUP: u64 = 5;

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<Wr>(term, 1, index)
}

fn entry(term: u64, index: u64, text: &str) -> Entry {
    Entry::new_normal(
        log_id(term, index),
        Command {
            payload: Bytes::from(format!("{text} {index}")),
        },
    )
}

/// Writes `entries` and the committed id to a fresh WAL in `dir`, durably.
async fn write(dir: &Path, entries: Vec<Entry>, committed: Option<LogId>) {
    let wal = Wal::open(dir).expect("open");
    let (tx, rx) = Wr::oneshot();
    wal.append(GROUP, entries, IOFlushed::signal(tx))
        .expect("append");
    rx.await.expect("callback").expect("durable");
    wal.save_committed(GROUP, committed).expect("committed");
    // A vote waits for its flush, which carries the committed id too.
    wal.save_vote(GROUP, Vote::new(1, 1)).await.expect("vote");
}

fn scans(dirs: &[&Path]) -> Vec<NodeScan> {
    dirs.iter()
        .enumerate()
        .map(|(i, dir)| NodeScan {
            name: format!("n{}", i + 1),
            scan: scan(dir).expect("scan"),
        })
        .collect()
}

fn log(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| entry(term, i, "cmd")).collect()
}

#[tokio::test]
async fn identical_logs_pass() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    write(a.path(), log(1, 1..=20), Some(log_id(1, 18))).await;
    write(b.path(), log(1, 1..=20), Some(log_id(1, 15))).await;
    let report = check(&scans(&[a.path(), b.path()]));
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.groups_compared(), 1);
    assert_eq!(report.compared(), 20);
}

#[tokio::test]
async fn the_same_log_id_with_another_payload_fails() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    write(a.path(), log(1, 1..=10), Some(log_id(1, 10))).await;
    // What a restarted leader that lost its unsynced tail wrote: index 7 of term 1 again.
    let mut other = log(1, 1..=10);
    other[6] = entry(1, 7, "different");
    write(b.path(), other, Some(log_id(1, 5))).await;
    let report = check(&scans(&[a.path(), b.path()]));
    assert!(!report.ok());
    assert_eq!(report.mismatches(), 1, "{report:?}");
    let m = &report.groups[0].mismatches[0];
    assert_eq!((m.group, m.index, m.rule), (GROUP, 7, Rule::SameLogId));
    assert_eq!((m.a.node.as_str(), m.b.node.as_str()), ("n1", "n2"));
    assert_eq!(m.a.log_id, m.b.log_id);
    assert!(m.to_string().contains("index 7"), "{m}");
    assert!(
        m.a.payload.starts_with("normal, 5 bytes: 636d642037"),
        "{m}"
    );
}

#[tokio::test]
async fn different_terms_below_the_commit_point_or_a_shared_id_fail() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    write(dirs[0].path(), log(1, 1..=10), Some(log_id(1, 8))).await;
    // n2: index 4 of another term although both committed past it.
    let mut n2 = log(1, 1..=10);
    n2[3] = entry(2, 4, "cmd");
    write(dirs[1].path(), n2, Some(log_id(1, 6))).await;
    // n3: nothing committed, index 9 differs below the shared log id at 10.
    let mut n3 = log(1, 1..=10);
    n3[8] = entry(2, 9, "cmd");
    write(dirs[2].path(), n3, None).await;
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let report = check(&scans(&paths));
    let found: Vec<(u64, Rule, &str, &str)> = report.groups[0]
        .mismatches
        .iter()
        .map(|m| (m.index, m.rule, m.a.node.as_str(), m.b.node.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (4, Rule::Committed, "n1", "n2"),
            (9, Rule::Prefix, "n1", "n3"),
            (4, Rule::Prefix, "n2", "n3"),
            (9, Rule::Prefix, "n2", "n3"),
        ]
    );
    assert_eq!(report.compared(), 30);
}

#[tokio::test]
async fn an_uncommitted_tail_of_another_term_passes() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let mut old = log(1, 1..=5);
    old.extend(log(2, 6..=8));
    write(a.path(), old, Some(log_id(1, 5))).await;
    let mut new = log(1, 1..=5);
    new.extend(log(3, 6..=7));
    write(b.path(), new, Some(log_id(1, 5))).await;
    let report = check(&scans(&[a.path(), b.path()]));
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.compared(), 7);
}

#[tokio::test]
async fn a_hole_in_a_log_fails() {
    let dir = tempfile::tempdir().expect("dir");
    let mut entries = log(1, 1..=3);
    entries.extend(log(1, 6..=7));
    write(dir.path(), entries, None).await;
    let report = check(&scans(&[dir.path()]));
    assert_eq!(report.gaps(), 1);
    let gap = &report.groups[0].gaps[0];
    assert_eq!((gap.after, gap.next), (3, 6));
    assert!(!report.ok());
    assert_eq!(report.groups_compared(), 0, "one node: nothing to compare");
}

#[tokio::test]
async fn a_scan_reads_past_nothing_torn_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), log(1, 1..=4), Some(log_id(1, 4))).await;
    let file = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .expect("a WAL file");
    let mut bytes = std::fs::read(&file).expect("read");
    // A torn tail: the start of a record that never got its body.
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
    std::fs::write(&file, &bytes).expect("tear");
    let scanned = scan(dir.path()).expect("scan");
    let group = &scanned.groups[&GROUP];
    assert_eq!(
        group.entries.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(group.committed, Some(log_id(1, 4)));
    assert_eq!(group.vote, Some(Vote::new(1, 1)));
    assert_eq!(scanned.tear.as_ref().map(|t| t.dropped), Some(6));
    assert_eq!(std::fs::read(&file).expect("reread"), bytes, "untouched");
}

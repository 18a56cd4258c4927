//! A leader killed before its WAL flushed entries its followers already hold: it must not
//! lead again in its old term, and once it rejoins every node's log satisfies Log Matching.
//!
//! The leader replicates entries before its own WAL fsyncs them, so a leader killed before
//! that fsync comes back with a shorter log. With openraft's leader restore it led again in
//! the same term and appended different entries under log ids its followers held (found by
//! the fault test's WAL check, not by its message counts). Here a flush hook holds the
//! leader's flusher while it writes, then makes its flush fail, so the unflushed tail never
//! reaches the disk: what a `kill -9` before the fsync leaves behind. Every command has its
//! own payload, so a re-used log id shows as a mismatch in the WAL check. With
//! `enable_leader_restore: Some(true)` this test fails: the node leads again in its term and
//! its new command lands at a log id the followers hold with another command.

mod common;

use common::{eventually, start_durable_node};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use warren_raft::wal::check::{NodeScan, check};
use warren_raft::wal::scan;
use warren_raft::{BasicNode, Command, Group, METADATA_GROUP, NodeId};
use warren_storage::{FlushHook, StorageError};

/// Commands written before the leader's flusher is held.
const BEFORE: u64 = 3;
/// Commands the leader replicates but never flushes.
const LOST: u64 = 5;

/// A command of its own: same log id with another payload must show as a mismatch.
fn command(n: u64) -> Command {
    Command {
        payload: Bytes::from(format!("command {n}")),
    }
}

/// What the gate does with a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hold,
    Crash,
}

/// A flush hook on the leader's WAL: holds its flushes, then fails them (the crash:
/// the flusher stops before writing the buffer, so the buffer is lost).
struct Gate {
    state: Mutex<(Mode, bool)>,
    changed: Condvar,
}

impl Gate {
    fn set(&self, mode: Mode) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = mode;
        self.changed.notify_all();
    }

    /// Whether the flusher is waiting at the gate (no flush is under way).
    fn held(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

impl FlushHook for Gate {
    fn flush(&self) -> Result<(), StorageError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match s.0 {
                Mode::Crash => return Err(StorageError::Closed),
                Mode::Hold => {
                    s.1 = true;
                    s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

/// Polls `probe` every 10 ms for up to `cap`; whether it came true.
async fn within<F, Fut>(cap: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + cap;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn agreed_leader(groups: &[Option<Group>]) -> Option<usize> {
    let mut seen = None;
    for g in groups.iter().flatten() {
        let l = g.raft.current_leader().await?;
        if seen.is_some_and(|s| s != l) {
            return None;
        }
        seen = Some(l);
    }
    seen.map(|l| (l - 1) as usize)
}

async fn applied_everywhere(groups: &[Option<Group>], n: u64) -> bool {
    for g in groups.iter().flatten() {
        if g.sm.applied_commands().await < n {
            return false;
        }
    }
    true
}

fn last_index(group: &Group) -> Option<u64> {
    group.raft.metrics().borrow_watched().last_log_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_unflushed_tail_does_not_lead_again_in_its_term() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut nodes = Vec::new();
    let mut groups = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let (node, group) = start_durable_node(i as u64 + 1, any, dir.path()).await;
        nodes.push(Some(node));
        groups.push(Some(group));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.local_addr()).collect();
    let members: BTreeMap<NodeId, BasicNode> = (1..=3)
        .zip(&addrs)
        .map(|(id, addr)| (id, BasicNode::new(addr.to_string())))
        .collect();
    nodes[0]
        .as_ref()
        .expect("node 1")
        .initialize(METADATA_GROUP, members)
        .await
        .expect("initialize group 0");
    let cap = Duration::from_secs(10);
    // A first leader may step down at once; the writes go to one that serves.
    for n in 0..BEFORE {
        eventually("a leader takes a write", || async {
            let x = agreed_leader(&groups).await?;
            groups[x].as_ref()?.raft.client_write(command(n)).await.ok()
        })
        .await;
    }
    assert!(within(cap, || applied_everywhere(&groups, BEFORE)).await);
    let l = eventually("a leader all nodes agree on", || agreed_leader(&groups)).await;
    let leader = groups[l].clone().expect("leader group");

    // Hold the leader's flusher: what it appends from now on stays in its buffer.
    let gate = Arc::new(Gate {
        state: Mutex::new((Mode::Hold, false)),
        changed: Condvar::new(),
    });
    let hook: Arc<dyn FlushHook> = gate.clone();
    let leader_node = nodes[l].take().expect("leader node");
    leader_node
        .wal()
        .expect("a WAL")
        .add_flush_hook(Arc::downgrade(&hook));
    let term = leader.raft.metrics().borrow_watched().current_term;
    // The first write wakes the flusher, which stops at the gate; the rest are surely
    // behind it. The followers flush them, a quorum without the leader: they commit.
    for n in BEFORE..BEFORE + LOST {
        let write = leader.raft.client_write(command(n));
        tokio::time::timeout(cap, write)
            .await
            .expect("committed by the followers alone")
            .expect("write");
        assert!(within(cap, || async { gate.held() }).await, "flusher held");
    }
    let target = last_index(&leader);
    let followers: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    assert!(
        within(cap, || async {
            followers
                .iter()
                .all(|f| groups[*f].as_ref().and_then(last_index) >= target)
        })
        .await,
        "the followers hold the leader's log"
    );

    // The crash: the flush fails, nothing of the buffer is written; the node goes away.
    gate.set(Mode::Crash);
    let _ = tokio::time::timeout(cap, leader_node.shutdown()).await;
    drop(leader);
    drop(leader_node);
    groups[l] = None;
    let wal_dir = dirs[l].path().join("wal");
    let on_disk = scan(&wal_dir).expect("scan the dead leader's WAL");
    let kept = on_disk.groups[&METADATA_GROUP]
        .entries
        .keys()
        .next_back()
        .copied();
    assert!(
        kept < target,
        "the leader lost its unflushed tail: it kept {kept:?}, replicated {target:?}"
    );

    // Restart it on its dir and port; watch whether it leads in its old term.
    let (node, group) = start_durable_node(l as u64 + 1, addrs[l], dirs[l].path()).await;
    let metrics = group.raft.metrics();
    nodes[l] = Some(node);
    groups[l] = Some(group);
    let me = l as u64 + 1;
    let restored = within(Duration::from_secs(3), || {
        let m = metrics.borrow_watched().clone();
        async move { m.current_term == term && m.current_leader == Some(me) }
    })
    .await;

    // Rejoined: a leader takes a write and every node applies all of them.
    let total = BEFORE + LOST + 1;
    let converged = within(Duration::from_secs(20), || async {
        let Some(x) = agreed_leader(&groups).await else {
            return false;
        };
        let Some(g) = &groups[x] else { return false };
        g.raft.client_write(command(total)).await.is_ok()
    })
    .await
        && within(cap, || applied_everywhere(&groups, total)).await;

    for node in nodes.iter().flatten() {
        node.shutdown().await;
    }
    drop(groups);
    drop(nodes);
    let scans: Vec<NodeScan> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| NodeScan {
            name: format!("node {}", i + 1),
            scan: scan(&dir.path().join("wal")).expect("scan"),
        })
        .collect();
    let report = check(&scans);
    for m in report.groups.iter().flat_map(|g| &g.mismatches) {
        println!("mismatch: {m}");
    }
    println!(
        "walcheck: {} entries compared, {} mismatches; restored in term {term}: {restored}; converged: {converged}",
        report.compared(),
        report.mismatches()
    );
    assert!(report.compared() > 0, "the logs were compared");
    assert!(
        report.ok(),
        "Log Matching broken: {} mismatches, {} gaps (leader was node {me}, term {term})",
        report.mismatches(),
        report.gaps()
    );
    assert!(!restored, "node {me} led again in its old term {term}");
    assert!(converged, "all nodes applied {total} commands");
    drop(hook);
}

//! A snapshot larger than the memory it may take: built into its file, sent in chunks to a
//! new member, received into a file and installed from it, with the heap's peak growth
//! measured by a counting allocator (this binary's own) and bounded far below its size.

// A global allocator is an `unsafe` trait; this one only counts and calls the system's.
#![allow(unsafe_code)]

mod common;

use common::{eventually, eventually_within};

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use warren_raft::{
    AllowAll, BasicNode, Command, Group, GroupKind, Machine, NodeConfig, RaftNode, Reply,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

/// The size of one piece of the big machine's state.
const PIECE: usize = 64 << 10;
/// Pieces in the state: 40 MiB.
const PIECES: u64 = 640;
/// The most the heap may grow while the snapshot is built, sent and installed.
const BOUND: usize = 16 << 20;

fn fill(piece: u64, buf: &mut [u8]) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = (piece as usize * 31 + j) as u8;
    }
}

/// A state of [`PIECES`] pieces never held in memory: generated as it is written, checked
/// as it is read back.
#[derive(Default)]
struct Big {
    restored: AtomicU64,
    damaged: AtomicBool,
}

impl Machine for Big {
    fn apply(&self, _index: u64, _command: &Command) -> Reply {
        Reply::default()
    }

    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&PIECES.to_le_bytes())?;
        let mut buf = vec![0u8; PIECE];
        for piece in 0..PIECES {
            fill(piece, &mut buf);
            out.write_all(&buf)?;
        }
        Ok(())
    }

    fn restore(&self, input: &mut dyn Read) -> io::Result<()> {
        let mut count = [0u8; 8];
        input.read_exact(&mut count)?;
        let (mut got, mut want) = (vec![0u8; PIECE], vec![0u8; PIECE]);
        for piece in 0..u64::from_le_bytes(count) {
            input.read_exact(&mut got)?;
            fill(piece, &mut want);
            if got != want {
                self.damaged.store(true, Ordering::Relaxed);
            }
            self.restored.fetch_add(PIECE as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

async fn start(id: u64, dir: &Path, machine: Arc<Big>) -> (RaftNode, Group) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let node = RaftNode::start(NodeConfig {
        node_id: id,
        cluster_name: "test".into(),
        bind: any,
        policy: Arc::new(AllowAll),
        security: Default::default(),
        data_dir: Some(dir.to_path_buf()),
    })
    .await
    .expect("node starts");
    let group = node
        .create_group_with(9, GroupKind::Queue, Some(machine))
        .await
        .expect("group 9");
    (node, group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_its_memory_bound_is_built_sent_and_installed() {
    use openraft::async_runtime::WatchReceiver;

    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let (one, group) = start(1, dirs[0].path(), Arc::default()).await;
    let members = BTreeMap::from([(1, BasicNode::new(one.local_addr().to_string()))]);
    one.initialize(9, members).await.expect("initialize");
    let raft = &group.raft;
    eventually("node 1 leads", || async {
        (raft.current_leader().await == Some(1)).then_some(())
    })
    .await;
    raft.client_write(Command {
        payload: Bytes::from_static(b"x"),
    })
    .await
    .expect("write");
    let applied = group.sm.last_applied().await.expect("applied");

    let base = counting_alloc::start();
    raft.trigger().snapshot().await.expect("trigger snapshot");
    eventually("the snapshot is built", || async {
        let m = raft.metrics().borrow_watched().clone();
        (m.snapshot.map(|s| s.index) >= Some(applied.index)).then_some(())
    })
    .await;
    raft.trigger()
        .purge_log(applied.index)
        .await
        .expect("purge");
    eventually("the log purged", || async {
        let m = raft.metrics().borrow_watched().clone();
        (m.purged.map(|p| p.index) >= Some(applied.index)).then_some(())
    })
    .await;

    // A new member can only catch up by the snapshot.
    let learner = Arc::new(Big::default());
    let (two, _) = start(2, dirs[1].path(), learner.clone()).await;
    raft.add_learner(2, BasicNode::new(two.local_addr().to_string()), false)
        .await
        .expect("add learner");
    let total = PIECES * PIECE as u64;
    eventually_within(
        Duration::from_secs(120),
        "the learner installed it",
        || async { (learner.restored.load(Ordering::Relaxed) == total).then_some(()) },
    )
    .await;
    assert!(
        !learner.damaged.load(Ordering::Relaxed),
        "every byte as sent"
    );
    // Saved once restored: the install's answer comes after both.
    let saved = dirs[1].path().join("snap/9/current.snap");
    eventually("the learner saved it", || async {
        let size = std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0);
        (size > total).then_some(())
    })
    .await;
    let growth = counting_alloc::growth_since(base);
    println!("heap growth {growth} bytes for a snapshot of {total}");
    assert!(
        growth < BOUND,
        "the heap grew by {growth} bytes for a snapshot of {total}"
    );
    two.shutdown().await;
    one.shutdown().await;
}

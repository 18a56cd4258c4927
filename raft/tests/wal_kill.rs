//! A WAL writer killed (SIGKILL) in the middle of its writes: at reopen every entry it was
//! told was durable is there, the log is a contiguous prefix, and it takes new writes.
//!
//! The child is this test binary run again with `WAL_KILL_CHILD_DIR` set: it appends entries
//! in batches and prints `durable N` after each batch's callback.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::type_config::TypeConfigExt;
use warren_raft::types::{Entry, LogId};
use warren_raft::{Command, Wal, Wr};

const CHILD_ENV: &str = "WAL_KILL_CHILD_DIR";
/// Small files, so the child also dies around file rollovers.
const FILE_LIMIT: u64 = 8 << 10;
const GROUP: u64 = 3;

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<Wr>(1, 1, index)
}

fn entry(index: u64) -> Entry {
    Entry::new_normal(
        log_id(index),
        Command {
            payload: Bytes::from(vec![b'x'; 100]),
        },
    )
}

/// The child's body: append until killed (or a cap, so a lost parent does not leave it).
#[test]
fn wal_kill_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let wal = Wal::open_with_limit(Path::new(&dir), FILE_LIMIT).expect("open");
        let mut out = std::io::stdout().lock();
        let mut next = 1;
        while next < 200_000 {
            let batch = 1 + next % 7;
            let entries: Vec<Entry> = (next..next + batch).map(entry).collect();
            let (tx, rx) = Wr::oneshot();
            wal.append(GROUP, entries, IOFlushed::signal(tx))
                .expect("append");
            rx.await.expect("callback").expect("durable");
            next += batch;
            writeln!(out, "durable {}", next - 1).expect("stdout");
            out.flush().expect("stdout");
        }
    });
}

#[tokio::test]
async fn a_killed_writer_loses_nothing_it_was_told_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Process::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "wal_kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("child stdout");
    let mut durable = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(n) = line.strip_prefix("durable ") {
            durable = n.parse().expect("a number");
        }
        if durable >= 3000 || Instant::now() > deadline {
            break;
        }
    }
    child.kill().expect("kill the child");
    let _ = child.wait();
    assert!(durable > 0, "the child wrote something durable");

    let wal = Wal::open_with_limit(dir.path(), FILE_LIMIT).expect("reopen after the kill");
    let entries = wal.entries(GROUP, ..).expect("read");
    let last = entries.last().map_or(0, |e| e.index());
    assert!(
        last >= durable,
        "entry {durable} was durable, the log ends at {last}"
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.index(), i as u64 + 1, "a contiguous prefix");
        assert_eq!(*e, entry(e.index()));
    }
    let (tx, rx) = Wr::oneshot();
    wal.append(GROUP, vec![entry(last + 1)], IOFlushed::signal(tx))
        .expect("append after reopen");
    rx.await.expect("callback").expect("durable");
    drop(wal);
    let wal = Wal::open_with_limit(dir.path(), FILE_LIMIT).expect("reopen again");
    assert_eq!(wal.log_state(GROUP).1, Some(log_id(last + 1)));
}

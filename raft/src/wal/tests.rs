//! Unit tests of the shared WAL: read-back across files and reopen, torn tails, votes and
//! committed ids, truncation, purge and file reclamation, and one sync for many groups.

use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::type_config::TypeConfigExt;

use super::*;
use crate::types::Command;

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<Wr>(term, 1, index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry::new_normal(
        log_id(term, index),
        Command {
            payload: Bytes::from(format!("entry {index} of term {term}")),
        },
    )
}

/// Appends `entries` to `group` and waits for the callback.
async fn append(wal: &Wal, group: GroupId, entries: Vec<Entry>) {
    let (tx, rx) = Wr::oneshot();
    wal.append(group, entries, IOFlushed::signal(tx))
        .expect("append");
    rx.await.expect("callback").expect("durable");
}

fn indexes(wal: &Wal, group: GroupId) -> Vec<(u64, u64)> {
    wal.entries(group, ..)
        .expect("read")
        .iter()
        .map(|e| (e.log_id().committed_leader_id().term, e.index()))
        .collect()
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn entries_read_back_across_files_and_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected: Vec<(u64, u64)> = (1..=60).map(|i| (1, i)).collect();
    {
        let wal = Wal::open_with_limit(dir.path(), 512).expect("open");
        for i in 1..=60 {
            append(&wal, 7, vec![entry(1, i)]).await;
        }
        assert!(wal.files().len() > 3, "small files roll over");
        assert_eq!(indexes(&wal, 7), expected);
        assert_eq!(wal.log_state(7), (None, Some(log_id(1, 60))));
    }
    let wal = Wal::open_with_limit(dir.path(), 512).expect("reopen");
    assert_eq!(indexes(&wal, 7), expected, "read from the files");
    let some = wal.entries(7, 10..13).expect("range");
    assert_eq!(some, vec![entry(1, 10), entry(1, 11), entry(1, 12)]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open(dir.path()).expect("open");
        append(&wal, 1, (1..=5).map(|i| entry(1, i)).collect()).await;
    }
    let last = wal_files(dir.path()).pop().expect("a file");
    let len = std::fs::metadata(&last).expect("meta").len();
    // A crash in the middle of the last record.
    let file = OpenOptions::new().write(true).open(&last).expect("open");
    file.set_len(len - 3).expect("tear");
    drop(file);
    {
        let wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(
            indexes(&wal, 1),
            (1..=4).map(|i| (1, i)).collect::<Vec<_>>()
        );
        append(&wal, 1, vec![entry(2, 5)]).await;
    }
    let wal = Wal::open(dir.path()).expect("reopen again");
    let mut expected: Vec<(u64, u64)> = (1..=4).map(|i| (1, i)).collect();
    expected.push((2, 5));
    assert_eq!(indexes(&wal, 1), expected, "the cut file is whole again");
}

#[tokio::test]
async fn garbage_after_the_last_record_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open(dir.path()).expect("open");
        append(&wal, 1, vec![entry(1, 1), entry(1, 2)]).await;
    }
    let last = wal_files(dir.path()).pop().expect("a file");
    let mut file = OpenOptions::new().append(true).open(&last).expect("open");
    file.write_all(&[0xAB; 40]).expect("garbage");
    drop(file);
    let wal = Wal::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&wal, 1), vec![(1, 1), (1, 2)]);
}

#[tokio::test]
async fn vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = Vote::new(3, 2);
    {
        let wal = Wal::open(dir.path()).expect("open");
        wal.save_vote(4, vote).await.expect("vote");
        append(&wal, 4, vec![entry(3, 1), entry(3, 2)]).await;
        wal.save_committed(4, Some(log_id(3, 2)))
            .expect("committed");
        // The committed id rides with the next batch.
        append(&wal, 4, vec![entry(3, 3)]).await;
    }
    let wal = Wal::open(dir.path()).expect("reopen");
    assert_eq!(wal.vote(4), Some(vote));
    assert_eq!(wal.committed(4), Some(log_id(3, 2)));
    assert_eq!(wal.vote(5), None, "another group has none");
}

#[tokio::test]
async fn truncate_after_drops_the_tail_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open(dir.path()).expect("open");
        append(&wal, 1, (1..=10).map(|i| entry(1, i)).collect()).await;
        wal.truncate_after(1, Some(log_id(1, 5)))
            .await
            .expect("truncate");
        assert_eq!(wal.log_state(1).1, Some(log_id(1, 5)));
        append(&wal, 1, vec![entry(2, 6), entry(2, 7)]).await;
    }
    let wal = Wal::open(dir.path()).expect("reopen");
    let mut expected: Vec<(u64, u64)> = (1..=5).map(|i| (1, i)).collect();
    expected.extend([(2, 6), (2, 7)]);
    assert_eq!(indexes(&wal, 1), expected);
    wal.truncate_after(1, None).await.expect("truncate all");
    assert!(indexes(&wal, 1).is_empty());
}

#[tokio::test]
async fn purge_deletes_a_file_only_when_every_group_passed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = Vote::new(1, 1);
    {
        let wal = Wal::open_with_limit(dir.path(), 600).expect("open");
        wal.save_vote(1, vote).await.expect("vote");
        for i in 1..=30 {
            append(&wal, 1, vec![entry(1, i)]).await;
            append(&wal, 2, vec![entry(1, i)]).await;
        }
        let before = wal.files();
        assert!(before.len() > 3);

        wal.purge(1, log_id(1, 30)).await.expect("purge group 1");
        assert_eq!(wal.files(), before, "group 2 still needs every file");
        assert!(indexes(&wal, 1).is_empty());
        assert_eq!(wal.log_state(1), (Some(log_id(1, 30)), Some(log_id(1, 30))));

        wal.purge(2, log_id(1, 20)).await.expect("purge group 2");
        let after = wal.files();
        assert!(after.len() < before.len(), "some files went");
        assert_eq!(wal_files(dir.path()).len(), after.len(), "and from disk");
        assert_eq!(
            indexes(&wal, 2),
            (21..=30).map(|i| (1, i)).collect::<Vec<_>>()
        );
    }
    let wal = Wal::open_with_limit(dir.path(), 600).expect("reopen");
    assert_eq!(wal.vote(1), Some(vote), "the vote outlived its file");
    assert_eq!(wal.log_state(1), (Some(log_id(1, 30)), Some(log_id(1, 30))));
    assert_eq!(wal.log_state(2).0, Some(log_id(1, 20)));
    assert_eq!(
        indexes(&wal, 2),
        (21..=30).map(|i| (1, i)).collect::<Vec<_>>()
    );
}

/// A flush hook that blocks the flusher until opened, so a test can gather a batch.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl FlushHook for Gate {
    fn flush(&self) -> Result<(), StorageError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = true; // entered
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

#[tokio::test]
async fn one_sync_covers_a_batch_appended_by_many_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path()).expect("open");
    let gate = Arc::new(Gate::default());
    let hook: Arc<dyn FlushHook> = gate.clone();
    wal.add_flush_hook(Arc::downgrade(&hook));

    // The first append wakes the flusher, which waits at the gate before taking the buffer.
    let mut receivers = Vec::new();
    let (tx, rx) = Wr::oneshot();
    wal.append(0, vec![entry(1, 1)], IOFlushed::signal(tx))
        .expect("append");
    receivers.push(rx);
    {
        let mut s = gate.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.0 {
            s = gate.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
    for group in 1..100 {
        let (tx, rx) = Wr::oneshot();
        wal.append(group, vec![entry(1, 1)], IOFlushed::signal(tx))
            .expect("append");
        receivers.push(rx);
    }
    let before = wal.syncs();
    {
        let mut s = gate.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 = true;
        gate.changed.notify_all();
    }
    for rx in receivers {
        rx.await.expect("callback").expect("durable");
    }
    assert_eq!(wal.syncs() - before, 1, "one fsync round for 100 groups");
    drop(hook);
}

#[tokio::test]
async fn damage_before_the_last_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open_with_limit(dir.path(), 512).expect("open");
        for i in 1..=20 {
            append(&wal, 1, vec![entry(1, i)]).await;
        }
    }
    let first = wal_files(dir.path()).into_iter().next().expect("a file");
    let mut bytes = std::fs::read(&first).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&first, bytes).expect("damage");
    match Wal::open_with_limit(dir.path(), 512) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_flush_fails_every_callback_and_the_wal_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let wal = Wal::open_with_limit(&wal_dir, 512).expect("open");
    append(&wal, 1, vec![entry(1, 1)]).await;
    // The next file cannot be created: its directory is gone.
    std::fs::remove_dir_all(&wal_dir).expect("remove the dir");
    let (tx, rx) = Wr::oneshot();
    wal.append(1, (2..=20).map(|i| entry(1, i)), IOFlushed::signal(tx))
        .expect("append is accepted before the flush");
    assert!(rx.await.expect("callback").is_err(), "the batch failed");
    assert!(matches!(
        wal.append(1, vec![entry(1, 21)], IOFlushed::noop()),
        Err(WalError::Failed(_))
    ));
    assert!(wal.save_vote(1, Vote::new(2, 1)).await.is_err());
}

#[tokio::test]
async fn big_entries_are_cached_up_to_a_byte_bound_and_read_back_from_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path()).expect("open");
    let big = |index: u64| {
        Entry::new_normal(
            log_id(1, index),
            Command {
                payload: Bytes::from(vec![index as u8; 1 << 20]),
            },
        )
    };
    for i in 1..=40 {
        append(&wal, 3, vec![big(i)]).await;
    }
    {
        let state = wal.inner.lock();
        let g = state.groups.get(&3).expect("group");
        assert!(
            g.cache.len() < 10,
            "{} entries of 1 MiB cached",
            g.cache.len()
        );
        assert!(g.cache_bytes <= state::CACHE_BYTES);
    }
    let all = wal.entries(3, ..).expect("read");
    assert_eq!(all.len(), 40);
    assert!(all.iter().zip(1..).all(|(e, i)| *e == big(i)));
}

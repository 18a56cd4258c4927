//! The segment log against the semantics the broker relies on: reads in seq
//! order, puts again, removals, emptied segments deleted, queues dropped; and
//! the helpers the other files share. `tests/recovery.rs`: crashes, torn and
//! damaged files; `tests/model.rs`: against a sorted map (proptest),
//! concurrently and at scale.

mod model;
mod recovery;

use std::fs;
use std::path::{Path, PathBuf};

use super::SegmentLog;
use crate::Seq;

fn open(dir: &Path) -> SegmentLog {
    SegmentLog::open(dir).expect("open")
}

fn seqs(log: &SegmentLog, queue: u64, from: Seq, limit: usize) -> Vec<Seq> {
    log.messages(queue, from, limit)
        .expect("read")
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// Files of a queue's directory with this extension.
fn files(dir: &Path, queue: u64, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir.join(queue.to_string())) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).expect("list").flatten() {
        let meta = entry.metadata().expect("meta");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn reads_are_in_seq_order_per_queue_and_page_from_any_seq() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path());
    for seq in 0..5000u64 {
        log.put_message(7, seq, &seq.to_le_bytes()).expect("put");
    }
    log.put_message(8, 3, b"other").expect("put");
    let all = log.messages(7, 0, 10_000).expect("read");
    assert_eq!(all.len(), 5000);
    assert!(all.iter().all(|(s, v)| v == &s.to_le_bytes()));
    // Sequential batches, as recovery and page-in read.
    let mut from = 0;
    let mut seen = 0;
    loop {
        let batch = seqs(&log, 7, from, 2048);
        let Some(&last) = batch.last() else { break };
        assert_eq!(batch[0], from);
        seen += batch.len();
        from = last + 1;
    }
    assert_eq!(seen, 5000);
    assert_eq!(seqs(&log, 7, 4998, 10), [4998, 4999]);
    assert_eq!(seqs(&log, 7, 1234, 2), [1234, 1235]);
    // Backwards too (the cursor only helps going forward).
    assert_eq!(seqs(&log, 7, 10, 1), [10]);
    assert!(seqs(&log, 9, 0, 10).is_empty());
    assert_eq!(log.queue_ids(), [7, 8]);
}

#[test]
fn a_put_again_replaces_the_value_for_reads_and_recovery() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, b"first").expect("put");
        }
        // The newest seq, then older ones, some twice.
        for seq in [9u64, 2, 5, 5, 0] {
            log.put_message(1, seq, format!("again {seq}").as_bytes())
                .expect("put");
        }
        let read = log.messages(1, 0, 100).expect("read");
        assert_eq!(read.len(), 10);
        for (seq, value) in &read {
            let want = if [9, 2, 5, 0].contains(seq) {
                format!("again {seq}").into_bytes()
            } else {
                b"first".to_vec()
            };
            assert_eq!(value, &want, "seq {seq}");
        }
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    let read = log.messages(1, 0, 100).expect("read");
    assert_eq!(read.len(), 10);
    assert_eq!(read[5], (5, b"again 5".to_vec()));
    assert_eq!(read[1], (1, b"first".to_vec()));
    // Removing a seq that was put again removes it for good.
    log.remove_messages(1, &[5, 2]).expect("remove");
    log.flush().expect("flush");
    drop(log);
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 0, 100), [0, 1, 3, 4, 6, 7, 8, 9]);
}

#[test]
fn removals_in_any_order_and_absent_seqs_are_fine() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..100u64 {
            log.put_message(3, seq, b"m").expect("put");
        }
        log.remove_messages(3, &[50, 7, 99, 7, 1000, 0])
            .expect("remove");
        log.remove_messages(3, &[51, 50]).expect("remove");
        log.remove_messages(4, &[1]).expect("absent queue");
        let left = seqs(&log, 3, 0, 1000);
        assert_eq!(left.len(), 95);
        assert_eq!(left[0], 1);
        assert!(!left.contains(&50) && !left.contains(&7) && !left.contains(&99));
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    assert_eq!(seqs(&log, 3, 0, 1000).len(), 95);
}

#[test]
fn a_segment_with_gaps_tells_absent_seqs_from_present_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path());
    for seq in (0..200u64).step_by(2) {
        log.put_message(1, seq, b"even").expect("put");
    }
    // Odd seqs were never stored: removing them must not count as removals.
    let odd: Vec<Seq> = (1..200).step_by(2).collect();
    log.remove_messages(1, &odd).expect("remove");
    assert_eq!(seqs(&log, 1, 0, 1000).len(), 100);
    let even: Vec<Seq> = (0..200).step_by(2).collect();
    log.remove_messages(1, &even).expect("remove");
    assert!(seqs(&log, 1, 0, 1000).is_empty());
    assert!(log.queue_ids().is_empty());
}

#[test]
fn emptied_segments_are_deleted_and_fill_drain_cycles_level_off() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path());
    let value = vec![b'x'; 256 << 10];
    let mut seq = 0;
    let mut sizes = Vec::new();
    for _ in 0..6 {
        let first = seq;
        // 40 MiB per cycle: several segments.
        for _ in 0..160 {
            log.put_message(1, seq, &value).expect("put");
            seq += 1;
        }
        log.flush().expect("flush");
        assert!(files(dir.path(), 1, "seg").len() >= 3);
        // Drained from the head, acks in batches out of order.
        let all: Vec<Seq> = (first..seq).collect();
        for chunk in all.chunks(7) {
            let mut chunk = chunk.to_vec();
            chunk.reverse();
            log.remove_messages(1, &chunk).expect("remove");
        }
        log.flush().expect("flush");
        sizes.push(dir_bytes(dir.path()));
    }
    assert!(
        sizes.iter().all(|&s| s <= 2 << 20),
        "directory sizes per cycle: {sizes:?}"
    );
    assert!(files(dir.path(), 1, "seg").len() <= 1);
    assert!(log.size_on_disk() <= 2 << 20);
    assert!(log.queue_ids().is_empty());
}

#[test]
fn a_partly_removed_segment_keeps_its_removals_across_reopening() {
    let dir = tempfile::tempdir().expect("dir");
    let value = vec![b'y'; 256 << 10];
    {
        let log = open(dir.path());
        for seq in 0..100u64 {
            log.put_message(1, seq, &value).expect("put");
        }
        // The whole first segment but one message, and some of the second.
        let gone: Vec<Seq> = (1..70).collect();
        log.remove_messages(1, &gone).expect("remove");
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    let left = seqs(&log, 1, 0, 1000);
    assert_eq!(left[0], 0);
    assert_eq!(&left[1..], (70..100).collect::<Vec<_>>());
    let before = files(dir.path(), 1, "seg").len();
    log.remove_messages(1, &[0]).expect("remove");
    assert!(files(dir.path(), 1, "seg").len() < before);
}

#[test]
fn seqs_used_again_after_a_restart_are_new_messages() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..20u64 {
            log.put_message(1, seq, b"old").expect("put");
        }
        log.remove_messages(1, &(10..20).collect::<Vec<_>>())
            .expect("remove");
        log.flush().expect("flush");
    }
    {
        // The broker goes on after its last live seq: 10 again.
        let log = open(dir.path());
        for seq in 10..15u64 {
            log.put_message(1, seq, b"new").expect("put");
        }
        let read = log.messages(1, 8, 100).expect("read");
        assert_eq!(
            read,
            [
                (8, b"old".to_vec()),
                (9, b"old".to_vec()),
                (10, b"new".to_vec()),
                (11, b"new".to_vec()),
                (12, b"new".to_vec()),
                (13, b"new".to_vec()),
                (14, b"new".to_vec()),
            ]
        );
        log.remove_messages(1, &[12]).expect("remove");
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 8, 100), [8, 9, 10, 11, 13, 14]);
}

#[test]
fn dropped_queues_are_gone_and_ids_list_live_queues() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path());
    for queue in [5u64, 3, 9] {
        log.put_message(queue, 0, b"m").expect("put");
    }
    log.remove_messages(9, &[0]).expect("remove");
    assert_eq!(log.queue_ids(), [3, 5]);
    log.drop_queue(5).expect("drop");
    log.drop_queue(42).expect("drop an unknown queue");
    assert!(seqs(&log, 5, 0, 10).is_empty());
    assert!(!dir.path().join("5").exists());
    log.flush().expect("flush after a drop");
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.queue_ids(), [3]);
}

//! The segment log against the semantics the broker relies on.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

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
fn a_put_again_is_never_lost_in_a_crash() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, b"first").expect("put");
        }
        log.flush().expect("flush");
        log.put_message(1, 3, b"again").expect("put");
        // Acks old enough to be written (not fsynced) take the removal of
        // the old copy of 3 with them: its new copy must be out of the
        // process's buffers by then.
        log.remove_messages(1, &[0]).expect("remove");
        std::thread::sleep(std::time::Duration::from_millis(250));
        log.remove_messages(1, &[1]).expect("remove");
        // Dropped unflushed: as a crash leaves it.
    }
    let log = open(dir.path());
    let read = log.messages(1, 0, 100).expect("read");
    assert!(
        read.contains(&(3, b"first".to_vec())) || read.contains(&(3, b"again".to_vec())),
        "seq 3 lost: {read:?}"
    );
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
fn flushed_puts_and_removals_survive_reopening_and_unflushed_ones_may_not() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..1000u64 {
            log.put_message(2, seq, &[seq as u8; 100]).expect("put");
        }
        log.remove_messages(2, &[3, 1, 2]).expect("remove");
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    let read = log.messages(2, 0, 2000).expect("read");
    assert_eq!(read.len(), 997);
    assert_eq!(read[0], (0, vec![0; 100]));
    assert_eq!(read[1].0, 4);
    assert_eq!(log.queue_ids(), [2]);
    // New writes after reopening go on from there.
    log.put_message(2, 1000, b"new").expect("put");
    log.flush().expect("flush");
    drop(log);
    let log = open(dir.path());
    assert_eq!(seqs(&log, 2, 999, 10), [999, 1000]);
}

#[test]
fn a_torn_tail_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, &[7; 1000]).expect("put");
        }
        log.flush().expect("flush");
    }
    let seg = files(dir.path(), 1, "seg").pop().expect("a segment");
    let len = fs::metadata(&seg).expect("meta").len();
    // Half of the last record's value is missing.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 500)
        .expect("truncate");
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 0, 100), (0..9).collect::<Vec<_>>());
    // The whole last record goes: its 1000 bytes and a 7-byte header (a
    // 2-byte length, a 1-byte seq from the file's base, the crc).
    assert_eq!(fs::metadata(&seg).expect("meta").len(), len - 1007);
    log.put_message(1, 9, b"again").expect("put");
    log.flush().expect("flush");
    drop(log);
    let log = open(dir.path());
    assert_eq!(
        log.messages(1, 9, 10).expect("read"),
        [(9, b"again".to_vec())]
    );
}

#[test]
fn garbage_after_the_records_never_panics_and_is_cut() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..50u64 {
            log.put_message(1, seq, &seq.to_le_bytes()).expect("put");
        }
        log.remove_messages(1, &[4]).expect("remove");
        log.flush().expect("flush");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut garbage = Vec::new();
    for _ in 0..4096 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        garbage.push(state as u8);
    }
    for ext in ["seg", "acks"] {
        let path = files(dir.path(), 1, ext).pop().expect("a file");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&garbage).expect("write");
    }
    // A file that is not a segment at all, and a stray one.
    fs::write(dir.path().join("1").join("0000000000000099.seg"), &garbage).expect("write");
    fs::write(dir.path().join("1").join("notes.txt"), b"hello").expect("write");
    let log = open(dir.path());
    let read = log.messages(1, 0, 100).expect("read");
    assert_eq!(read.len(), 49);
    assert!(read.iter().all(|(s, v)| v == &s.to_le_bytes()));
    assert!(!read.iter().any(|(s, _)| *s == 4));
    // Writes go on in a new segment after the stray one's number.
    log.put_message(1, 50, b"new").expect("put");
    log.flush().expect("flush");
    drop(log);
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 0, 100).len(), 50);
}

#[test]
fn a_damaged_record_in_the_middle_ends_the_segment_there() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, &[1; 100]).expect("put");
        }
        log.flush().expect("flush");
    }
    let seg = files(dir.path(), 1, "seg").pop().expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    // Flip a byte of record 5's value: 8 bytes of magic, 116 per record.
    bytes[8 + 5 * 116 + 50] ^= 0xff;
    fs::write(&seg, &bytes).expect("write");
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 0, 100), [0, 1, 2, 3, 4]);
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

#[derive(Debug, Clone)]
enum Op {
    /// A new message above every seq so far.
    Push(u8),
    /// Put again a seq (live or not) with a new value.
    Put(u8, u8),
    /// Remove seqs (offsets from the first seq handed out).
    Remove(Vec<u8>),
    Read(u8, u8),
    FlushAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(Op::Push),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(s, v)| Op::Put(s, v)),
        3 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(Op::Remove),
        2 => (any::<u8>(), 1..50u8).prop_map(|(f, l)| Op::Read(f, l)),
        1 => Just(Op::FlushAndReopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn behaves_like_a_sorted_map(ops in proptest::collection::vec(op(), 1..200)) {
        let dir = tempfile::tempdir().expect("dir");
        let mut log = open(dir.path());
        let mut model: BTreeMap<Seq, Vec<u8>> = BTreeMap::new();
        let mut next: Seq = 0;
        for op in ops {
            match op {
                Op::Push(v) => {
                    let value = vec![v; usize::from(v) * 3];
                    log.put_message(1, next, &value).expect("put");
                    model.insert(next, value);
                    next += 1;
                }
                Op::Put(s, v) => {
                    let seq = Seq::from(s) % (next + 1);
                    let value = vec![v; 3];
                    log.put_message(1, seq, &value).expect("put");
                    model.insert(seq, value);
                    next = next.max(seq + 1);
                }
                Op::Remove(offsets) => {
                    let seqs: Vec<Seq> = offsets.iter().map(|&o| Seq::from(o) % (next + 1)).collect();
                    log.remove_messages(1, &seqs).expect("remove");
                    for seq in seqs {
                        model.remove(&seq);
                    }
                }
                Op::Read(from, limit) => {
                    let from = Seq::from(from) % (next + 1);
                    let got = log.messages(1, from, usize::from(limit)).expect("read");
                    let want: Vec<(Seq, Vec<u8>)> = model
                        .range(from..)
                        .take(usize::from(limit))
                        .map(|(s, v)| (*s, v.clone()))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                Op::FlushAndReopen => {
                    log.flush().expect("flush");
                    drop(log);
                    log = open(dir.path());
                }
            }
        }
        let got = log.messages(1, 0, usize::MAX).expect("read");
        let want: Vec<(Seq, Vec<u8>)> = model.into_iter().collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_record_damaged_after_opening_is_skipped_when_read() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, &[1; 100]).expect("put");
        }
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    let seg = files(dir.path(), 1, "seg").pop().expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    bytes[8 + 5 * 116 + 50] ^= 0xff;
    fs::write(&seg, &bytes).expect("write");
    assert_eq!(seqs(&log, 1, 0, 100), [0, 1, 2, 3, 4, 6, 7, 8, 9]);
    // Cut short under the log's feet: the rest of the segment is not read.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(8 + 8 * 116)
        .expect("truncate");
    assert_eq!(seqs(&log, 1, 7, 100), [7]);
}

#[test]
fn acks_reach_the_file_without_a_flush_after_a_while() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path());
        for seq in 0..10u64 {
            log.put_message(1, seq, b"m").expect("put");
        }
        log.flush().expect("flush");
        log.remove_messages(1, &[3]).expect("remove");
        std::thread::sleep(std::time::Duration::from_millis(250));
        log.remove_messages(1, &[4]).expect("remove");
        // Dropped without a flush: a crash.
    }
    let log = open(dir.path());
    assert_eq!(seqs(&log, 1, 0, 100), [0, 1, 2, 5, 6, 7, 8, 9]);
}

#[test]
fn queues_write_concurrently_with_a_flusher() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("dir");
    {
        let log = Arc::new(open(dir.path()));
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    log.flush().expect("flush");
                }
            })
        };
        let writers: Vec<_> = (0..4u64)
            .map(|queue| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for seq in 0..3000u64 {
                        log.put_message(queue, seq, &[queue as u8; 300])
                            .expect("put");
                        if seq % 3 == 2 {
                            log.remove_messages(queue, &[seq - 2]).expect("remove");
                        }
                        if seq % 500 == 0 {
                            assert_eq!(seqs(&log, queue, seq, 1), [seq]);
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer");
        }
        stop.store(true, Ordering::Release);
        flusher.join().expect("flusher");
        log.flush().expect("flush");
    }
    let log = open(dir.path());
    assert_eq!(log.queue_ids(), [0, 1, 2, 3]);
    for queue in 0..4u64 {
        let read = log.messages(queue, 0, 10_000).expect("read");
        assert_eq!(read.len(), 2000);
        assert!(
            read.iter()
                .all(|(s, v)| s % 3 != 0 && v == &[queue as u8; 300])
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A crash (the log dropped without a flush) keeps everything the last
    /// flush covered that was not touched since, and brings back nothing that
    /// was never put.
    #[test]
    fn a_crash_keeps_what_the_last_flush_covered(
        ops in proptest::collection::vec(op(), 1..150),
        tail in proptest::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let mut log = open(dir.path());
        let mut model: BTreeMap<Seq, Vec<u8>> = BTreeMap::new();
        let mut next: Seq = 0;
        let mut apply = |log: &mut SegmentLog, model: &mut BTreeMap<Seq, Vec<u8>>, op: &Op, touched: &mut Vec<(Seq, Option<Vec<u8>>)>| {
            match op {
                Op::Push(v) => {
                    let value = vec![*v; usize::from(*v) * 3];
                    log.put_message(1, next, &value).expect("put");
                    touched.push((next, Some(value.clone())));
                    model.insert(next, value);
                    next += 1;
                }
                Op::Put(s, v) => {
                    let seq = Seq::from(*s) % (next + 1);
                    let value = vec![*v; 3];
                    log.put_message(1, seq, &value).expect("put");
                    touched.push((seq, Some(value.clone())));
                    model.insert(seq, value);
                    next = next.max(seq + 1);
                }
                Op::Remove(offsets) => {
                    let seqs: Vec<Seq> = offsets.iter().map(|&o| Seq::from(o) % (next + 1)).collect();
                    log.remove_messages(1, &seqs).expect("remove");
                    for seq in seqs {
                        touched.push((seq, None));
                        model.remove(&seq);
                    }
                }
                Op::Read(..) => {}
                Op::FlushAndReopen => {
                    log.flush().expect("flush");
                }
            }
        };
        let mut ignored = Vec::new();
        for op in &ops {
            apply(&mut log, &mut model, op, &mut ignored);
        }
        log.flush().expect("flush");
        let flushed = model.clone();
        let mut touched = Vec::new();
        for op in tail.iter().filter(|op| !matches!(op, Op::FlushAndReopen)) {
            apply(&mut log, &mut model, op, &mut touched);
        }
        drop(log);
        let log = open(dir.path());
        let got: BTreeMap<Seq, Vec<u8>> = log.messages(1, 0, usize::MAX).expect("read").into_iter().collect();
        for (seq, value) in &flushed {
            if touched.iter().all(|(s, _)| s != seq) {
                prop_assert_eq!(got.get(seq), Some(value), "seq {} lost", seq);
            }
        }
        for (seq, value) in &got {
            let possible = flushed.get(seq) == Some(value)
                || touched.iter().any(|(s, v)| s == seq && v.as_ref() == Some(value));
            prop_assert!(possible, "seq {} came back with a value never put", seq);
        }
    }
}

/// The broker's pattern at scale: a producer far ahead of a consumer that
/// reads batches from the head and removes them, with a flusher, across many
/// segments. Slow in debug builds: `cargo test --release -- --ignored`.
#[test]
#[ignore]
fn a_deep_queue_drains_while_it_fills() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const N: u64 = 2_000_000;
    let dir = tempfile::tempdir().expect("dir");
    let log = Arc::new(open(dir.path()));
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                log.flush().expect("flush");
            }
        })
    };
    let producer = {
        let (log, written) = (log.clone(), written.clone());
        std::thread::spawn(move || {
            for seq in 0..N {
                log.put_message(1, seq, &[seq as u8; 100]).expect("put");
                written.store(seq + 1, Ordering::Release);
            }
        })
    };
    let mut next = 0;
    while next < N {
        if written.load(Ordering::Acquire) < next + 300_000 && next + 300_000 < N {
            std::thread::yield_now();
            continue;
        }
        let batch = log.messages(1, next, 2048).expect("read");
        let seqs: Vec<Seq> = batch.iter().map(|(s, _)| *s).collect();
        for (i, (seq, value)) in batch.iter().enumerate() {
            assert_eq!(*seq, next + i as u64);
            assert_eq!(value, &[*seq as u8; 100]);
        }
        let Some(&last) = seqs.last() else { continue };
        // Acks out of order, in two halves.
        let (a, b) = seqs.split_at(seqs.len() / 2);
        log.remove_messages(1, b).expect("remove");
        log.remove_messages(1, a).expect("remove");
        next = last + 1;
    }
    producer.join().expect("producer");
    done.store(true, Ordering::Release);
    flusher.join().expect("flusher");
    log.flush().expect("flush");
    assert!(log.queue_ids().is_empty());
    assert!(dir_bytes(dir.path()) <= 17 << 20);
}

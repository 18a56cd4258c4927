//! The segment log against a sorted map and a crash model (proptest), with
//! queues written concurrently beside a flusher, and a deep queue draining
//! while it fills.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{dir_bytes, open, seqs};
use crate::Seq;
use crate::segments::SegmentLog;

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

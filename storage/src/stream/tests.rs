#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::index::segment_path;
use super::*;

/// Small segments (about 7 one-message chunks of 100 bytes) and a dense index.
fn small() -> StreamConfig {
    StreamConfig {
        max_segment_size: 1000,
        filter_size_bytes: 16,
        index_step: 256,
    }
}

fn value(offset: u64) -> Vec<u8> {
    let mut v = format!("message {offset:06} ").into_bytes();
    v.resize(100, b'x');
    v
}

/// Appends `chunks` one-message chunks of 100 bytes (each 144 bytes on disk),
/// the n-th at timestamp `1000 * (n + 1)`.
fn fill(log: &mut StreamLog, chunks: u64) {
    for _ in 0..chunks {
        let offset = log.next_offset();
        let v = value(offset);
        log.append(&[(&v, None)], 1000 * (offset + 1)).unwrap();
    }
    log.flush().unwrap();
}

fn everything(log: &StreamLog) -> Vec<StreamMessage> {
    log.read_from(0, ReadLimits::messages(usize::MAX)).unwrap()
}

fn offsets(messages: &[StreamMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.offset).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn an_empty_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.first_offset(), None);
    assert_eq!(log.last_offset(), None);
    assert_eq!(log.last_chunk_offset(), None);
    assert!(everything(&log).is_empty());
    assert_eq!(log.offset_at_timestamp(5).unwrap(), 0);
    assert_eq!(log.append(&[], 1).unwrap(), 0);
    assert_eq!(log.apply_retention(Some(0), Some(0), 10).unwrap(), 0);
}

#[test]
fn appends_and_reads_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    let mut expected = Vec::new();
    for batch in 0..40u64 {
        let values: Vec<Vec<u8>> = (0..3).map(|i| value(batch * 3 + i)).collect();
        let messages: Vec<_> = values.iter().map(|v| (v.as_slice(), None)).collect();
        assert_eq!(log.append(&messages, batch).unwrap(), batch * 3);
        expected.extend(values);
    }
    log.flush().unwrap();
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    assert_eq!(
        (log.first_offset(), log.last_offset()),
        (Some(0), Some(119))
    );
    let all = everything(&log);
    assert_eq!(offsets(&all), (0..120).collect::<Vec<_>>());
    assert!(all.iter().zip(&expected).all(|(m, v)| &m.value == v));
    // A cursor in small steps (7 messages, or about 2 by bytes) sees the same.
    let mut reader = log.reader(0);
    let mut stepped = Vec::new();
    loop {
        let limits = ReadLimits {
            max_messages: 7,
            max_bytes: 150,
        };
        let got = log.read(&mut reader, limits, None).unwrap();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 2);
        stepped.extend(got);
    }
    assert_eq!(stepped, all);
    assert_eq!(reader.next_offset(), 120);
}

#[test]
fn unflushed_messages_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 3);
    let v = value(3);
    log.append(&[(&v, None)], 1).unwrap();
    assert_eq!(log.last_offset(), Some(3));
    assert_eq!(log.committed_next_offset(), 3);
    assert_eq!(offsets(&everything(&log)), vec![0, 1, 2]);
    log.flush().unwrap();
    assert_eq!(offsets(&everything(&log)), vec![0, 1, 2, 3]);
}

#[test]
fn offsets_are_kept_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 20);
    let before = everything(&log);
    let segments = log.segment_count();
    drop(log);
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.segment_count(), segments);
    assert_eq!((log.first_offset(), log.last_offset()), (Some(0), Some(19)));
    assert_eq!(everything(&log), before);
    fill(&mut log, 5);
    assert_eq!(offsets(&everything(&log)), (0..25).collect::<Vec<_>>());
}

#[test]
fn a_torn_tail_is_cut_and_appends_go_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 10); // segments of 7 chunks: 0..7, 7..10
    drop(log);
    let last = segment_path(dir.path(), 7);
    let len = fs::metadata(&last).unwrap().len();
    assert_eq!(len, 8 + 3 * 144);
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 60).unwrap(); // offset 9's chunk torn
    drop(file);
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.last_offset(), Some(8));
    assert_eq!(fs::metadata(&last).unwrap().len(), 8 + 2 * 144);
    assert_eq!(log.append(&[(b"after", None)], 1).unwrap(), 9);
    log.flush().unwrap();
    drop(log);
    let log = StreamLog::open_with(dir.path(), small()).unwrap();
    let all = everything(&log);
    assert_eq!(offsets(&all), (0..10).collect::<Vec<_>>());
    assert_eq!(all[9].value, b"after");
}

#[test]
fn a_segment_torn_to_nothing_keeps_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 8); // 0..7, then 7 alone
    drop(log);
    let last = segment_path(dir.path(), 7);
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(4).unwrap(); // even the magic is torn
    drop(file);
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.next_offset(), 7);
    fill(&mut log, 1);
    assert_eq!(offsets(&everything(&log)), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_flipped_byte_cuts_its_chunk_and_the_rest_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 20); // 0..7, 7..14, 14..20
    drop(log);
    let first = segment_path(dir.path(), 0);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let at = 8 + 2 * 144 + 44 + 10; // in offset 2's value
    let mut byte = [0];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    drop(file);
    let log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(fs::metadata(&first).unwrap().len(), 8 + 2 * 144);
    let expected: Vec<u64> = (0..2).chain(7..20).collect();
    assert_eq!(offsets(&everything(&log)), expected);
    // Reading from inside the gap starts at the next segment.
    assert_eq!(
        offsets(&log.read_from(3, ReadLimits::messages(2)).unwrap()),
        vec![7, 8]
    );
    assert_eq!(log.last_offset(), Some(19));
}

#[test]
fn a_damaged_header_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 5);
    drop(log);
    let first = segment_path(dir.path(), 0);
    let file = OpenOptions::new().write(true).open(&first).unwrap();
    file.write_all_at(&[0xff], 8 + 3 * 144 + 17).unwrap(); // offset 3's count
    drop(file);
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.next_offset(), 3);
    fill(&mut log, 1);
    assert_eq!(offsets(&everything(&log)), vec![0, 1, 2, 3]);
}

#[test]
fn retention_by_size_drops_whole_segments_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 40); // segments of 7 chunks, 1016 bytes each
    let segments = log.segment_count();
    assert_eq!(segments, 6);
    let mut reader = log.reader(0);
    assert_eq!(
        log.read(&mut reader, ReadLimits::messages(3), None)
            .unwrap()
            .len(),
        3
    );
    // 5 × 1016 + 728 bytes: three segments go, 2760 bytes are left.
    assert_eq!(log.apply_retention(Some(3000), None, 0).unwrap(), 3);
    assert_eq!(log.size_bytes(), 2760);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.first_offset(), Some(21));
    assert_eq!(segment_files(dir.path())[0], segment_path(dir.path(), 21));
    assert_eq!(offsets(&everything(&log)), (21..40).collect::<Vec<_>>());
    // A reader inside a dropped segment moves on to the first offset.
    let got = log
        .read(&mut reader, ReadLimits::messages(1), None)
        .unwrap();
    assert_eq!(offsets(&got), vec![21]);
    // Never the active segment, even at a limit of 0.
    assert_eq!(log.apply_retention(Some(0), None, 0).unwrap(), 2);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.first_offset(), Some(35));
    fill(&mut log, 1);
    drop(log);
    let log = StreamLog::open_with(dir.path(), small()).unwrap();
    assert_eq!(
        (log.first_offset(), log.last_offset()),
        (Some(35), Some(40))
    );
}

#[test]
fn retention_by_age_drops_segments_whose_newest_chunk_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 20); // chunk n at 1000 * (n + 1); segments 0..7, 7..14, 14..20
    // Segment 0's newest chunk is at 7000, segment 1's at 14000.
    assert_eq!(log.apply_retention(None, Some(5000), 12_000).unwrap(), 0);
    assert_eq!(log.apply_retention(None, Some(5000), 12_001).unwrap(), 1);
    assert_eq!(log.first_offset(), Some(7));
    assert_eq!(log.apply_retention(None, Some(0), u64::MAX).unwrap(), 1);
    assert_eq!(log.first_offset(), Some(14));
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn offset_at_timestamp_finds_the_first_chunk_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    fill(&mut log, 20); // chunk n at 1000 * (n + 1)
    assert_eq!(log.offset_at_timestamp(0).unwrap(), 0);
    assert_eq!(log.offset_at_timestamp(1000).unwrap(), 0);
    assert_eq!(log.offset_at_timestamp(1001).unwrap(), 1);
    assert_eq!(log.offset_at_timestamp(5500).unwrap(), 5);
    assert_eq!(log.offset_at_timestamp(8000).unwrap(), 7);
    assert_eq!(log.offset_at_timestamp(13_000).unwrap(), 12);
    assert_eq!(log.offset_at_timestamp(20_000).unwrap(), 19);
    assert_eq!(log.offset_at_timestamp(20_001).unwrap(), 20);
    // A clock going back does not make timestamps go back.
    log.append(&[(b"late", None)], 10).unwrap();
    log.flush().unwrap();
    assert_eq!(everything(&log)[20].timestamp_ms, 20_000);
    assert_eq!(log.offset_at_timestamp(20_000).unwrap(), 19);
    log.apply_retention(Some(0), None, 0).unwrap();
    assert_eq!(log.offset_at_timestamp(0).unwrap(), 14);
}

#[test]
fn reading_from_the_middle_of_a_chunk_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    let values: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 5]).collect();
    let messages: Vec<_> = values.iter().map(|v| (v.as_slice(), None)).collect();
    log.append(&messages, 77).unwrap();
    log.flush().unwrap();
    let got = log.read_from(5, ReadLimits::messages(3)).unwrap();
    assert_eq!(offsets(&got), vec![5, 6, 7]);
    assert_eq!(got[0].value, vec![5; 5]);
    assert_eq!(got[0].timestamp_ms, 77);
    assert_eq!(log.last_chunk_offset(), Some(0));
    log.append(&[(b"x", None), (b"y", None)], 78).unwrap();
    assert_eq!(log.last_chunk_offset(), Some(0)); // not committed yet
    log.flush().unwrap();
    assert_eq!(log.last_chunk_offset(), Some(10));
    let mut reader = log.reader(8);
    assert_eq!(
        offsets(
            &log.read(&mut reader, ReadLimits::messages(9), None)
                .unwrap()
        ),
        vec![8, 9, 10, 11]
    );
    assert!(
        log.read_from(12, ReadLimits::messages(9))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_filtered_reader_skips_chunks_the_bloom_rules_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StreamLog::open_with(dir.path(), small()).unwrap();
    log.append(&[(b"a1", Some(b"apple")), (b"a2", Some(b"apple"))], 1)
        .unwrap();
    log.append(&[(b"b1", Some(b"banana"))], 2).unwrap();
    log.append(&[(b"u1", None)], 3).unwrap();
    log.append(&[(b"m1", Some(b"apple")), (b"m2", None)], 4)
        .unwrap();
    log.flush().unwrap();
    let read = |filter: &ReadFilter| -> Vec<Vec<u8>> {
        let mut reader = log.reader(0);
        log.read(&mut reader, ReadLimits::messages(100), Some(filter))
            .unwrap()
            .into_iter()
            .map(|m| m.value)
            .collect()
    };
    let apple = ReadFilter {
        values: vec![b"apple".to_vec()],
        match_unfiltered: false,
    };
    assert_eq!(
        read(&apple),
        vec![
            b"a1".to_vec(),
            b"a2".to_vec(),
            b"m1".to_vec(),
            b"m2".to_vec()
        ]
    );
    let banana_or_none = ReadFilter {
        values: vec![b"banana".to_vec()],
        match_unfiltered: true,
    };
    assert_eq!(
        read(&banana_or_none),
        vec![
            b"b1".to_vec(),
            b"u1".to_vec(),
            b"m1".to_vec(),
            b"m2".to_vec()
        ]
    );
    let cherry = ReadFilter {
        values: vec![b"cherry".to_vec()],
        match_unfiltered: false,
    };
    assert!(read(&cherry).is_empty());
}

#[test]
fn index_memory_does_not_grow_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig {
        max_segment_size: 256 << 10,
        filter_size_bytes: 16,
        index_step: 16 << 10,
    };
    let mut log = StreamLog::open_with(dir.path(), config).unwrap();
    let v = [7u8; 20];
    let batch: Vec<_> = (0..10).map(|_| (&v[..], None)).collect();
    for i in 0..20_000u64 {
        log.append(&batch, i).unwrap();
    }
    log.flush().unwrap();
    let messages = 200_000;
    assert_eq!(log.next_offset(), messages);
    let segments = log.segment_count();
    let bound = segments * (256 / 16 + 1);
    assert!(
        log.index_entries() <= bound,
        "{} entries, bound {bound}",
        log.index_entries()
    );
    assert!(log.index_entries() * 500 < messages as usize);
    // Reading from deep inside goes through the sparse index.
    let got = log.read_from(123_456, ReadLimits::messages(3)).unwrap();
    assert_eq!(offsets(&got), vec![123_456, 123_457, 123_458]);
    drop(log);
    let log = StreamLog::open_with(dir.path(), config).unwrap();
    assert!(log.index_entries() <= bound);
    assert_eq!(log.last_offset(), Some(messages - 1));
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(Vec<u8>, Option<u8>)>, u64),
    Flush,
    Reopen,
    /// Dropped without a flush (kill -9), the last segment torn by this many
    /// bytes.
    Crash(u64),
    Retain(Option<u64>, Option<u64>),
    Read(u64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let message = (
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::option::of(0u8..3),
    );
    prop_oneof![
        6 => (proptest::collection::vec(message, 1..6), 0u64..2000).prop_map(|(m, dt)| Op::Append(m, dt)),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => prop_oneof![Just(0u64), 0u64..400].prop_map(Op::Crash),
        1 => (proptest::option::of(0u64..6000), proptest::option::of(0u64..20_000)).prop_map(|(b, a)| Op::Retain(b, a)),
        3 => (0u64..80, 1usize..20).prop_map(|(f, n)| Op::Read(f, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn behaves_like_a_map_of_offsets(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamConfig { max_segment_size: 700, filter_size_bytes: 16, index_step: 200 };
        let mut log = StreamLog::open_with(dir.path(), config).unwrap();
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = 0u64;
        let mut durable = 0u64;
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Append(messages, dt) => {
                    now += dt;
                    let filters: Vec<[u8; 1]> = messages.iter().map(|(_, f)| [f.unwrap_or(0)]).collect();
                    let batch: Vec<(&[u8], Option<&[u8]>)> = messages
                        .iter()
                        .zip(&filters)
                        .map(|((v, f), fb)| (v.as_slice(), f.map(|_| &fb[..])))
                        .collect();
                    prop_assert_eq!(log.append(&batch, now).unwrap(), next);
                    for (v, _) in &messages {
                        model.insert(next, v.clone());
                        next += 1;
                    }
                }
                Op::Flush => {
                    log.flush().unwrap();
                    durable = next;
                }
                Op::Reopen => {
                    log.flush().unwrap();
                    durable = next;
                    drop(log);
                    log = StreamLog::open_with(dir.path(), config).unwrap();
                }
                Op::Crash(tear) => {
                    drop(log);
                    let last = segment_files(dir.path()).pop().unwrap();
                    let len = fs::metadata(&last).unwrap().len();
                    let file = OpenOptions::new().write(true).open(&last).unwrap();
                    file.set_len(len.saturating_sub(tear)).unwrap();
                    drop(file);
                    log = StreamLog::open_with(dir.path(), config).unwrap();
                    let kept = log.next_offset();
                    prop_assert!(kept <= next);
                    if tear == 0 {
                        prop_assert!(kept >= durable, "lost durable messages");
                    }
                    model.retain(|offset, _| *offset < kept);
                    next = kept;
                    durable = kept;
                }
                Op::Retain(bytes, age) => {
                    let before = log.first_offset();
                    log.apply_retention(bytes, age, now).unwrap();
                    let first = log.first_offset();
                    prop_assert!(first >= before || first.is_none());
                    match first {
                        Some(first) => model = model.split_off(&first),
                        None => model.clear(),
                    }
                    if let Some(max) = bytes {
                        prop_assert!(log.size_bytes() <= max || log.segment_count() == 1);
                    }
                }
                Op::Read(from, n) => {
                    let got = log.read_from(from, ReadLimits::messages(n)).unwrap();
                    let want: Vec<(u64, Vec<u8>)> = model
                        .range(from..durable.max(from))
                        .take(n)
                        .map(|(o, v)| (*o, v.clone()))
                        .collect();
                    let got: Vec<(u64, Vec<u8>)> = got.into_iter().map(|m| (m.offset, m.value)).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(log.next_offset(), next);
            prop_assert_eq!(log.first_offset(), model.keys().next().copied());
            let last_chunk = log.last_chunk_offset();
            prop_assert_eq!(last_chunk.is_some(), model.range(..durable).next().is_some());
            if let Some(last) = last_chunk {
                prop_assert!(model.contains_key(&last) && last < durable);
            }
        }
        log.flush().unwrap();
        let all: Vec<(u64, Vec<u8>)> = everything(&log).into_iter().map(|m| (m.offset, m.value)).collect();
        let want: Vec<(u64, Vec<u8>)> = model.into_iter().collect();
        prop_assert_eq!(all, want);
    }
}

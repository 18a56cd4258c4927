//! The segment file layouts: version 2's varint headers, and version-1 files
//! (written before session 10) read and extended by today's code.

use std::fs;

use super::SegmentLog;
use super::format::{Layout, MAGIC, MAGIC2};

#[test]
fn a_small_records_header_takes_seven_bytes_instead_of_sixteen() {
    let layout = Layout::new_file(1_000_000);
    let mut buf = layout.file_header();
    assert!(buf.starts_with(MAGIC2));
    assert_eq!(buf.len() as u64, layout.file_header_len());
    assert_eq!(Layout::of_header(&buf), Some(layout));
    let size = layout.encode_record(&mut buf, 1_000_005, &[1; 24]);
    assert_eq!(
        size,
        1 + 1 + 4 + 24,
        "1-byte length, 1-byte seq, crc, value"
    );
    let v1 = Layout::V1.encode_record(&mut Vec::new(), 1_000_005, &[1; 24]);
    assert_eq!(v1, 16 + 24);
    // Far from the base and long, the varints grow.
    let size = layout.encode_record(&mut Vec::new(), 1_000_000 + (1 << 40), &[0; 70_000]);
    assert_eq!(size, 3 + 6 + 4 + 70_000);
    assert!(!layout.holds(999_999));
    assert!(layout.holds(1_000_000));
    assert_eq!(Layout::of_header(b"WRNSEG0"), None);
    assert_eq!(Layout::of_header(MAGIC2), None, "version 2 needs its base");
    assert_eq!(Layout::of_header(MAGIC), Some(Layout::V1));
}

#[test]
fn version_one_segments_are_read_acked_and_followed_by_version_two_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let queue_dir = dir.path().join("7");
    fs::create_dir_all(&queue_dir).expect("queue dir");
    let mut old = Layout::V1.file_header();
    for seq in 10..20u64 {
        Layout::V1.encode_record(&mut old, seq, format!("old {seq}").as_bytes());
    }
    fs::write(queue_dir.join(format!("{:016}.seg", 1)), &old).expect("v1 segment");

    let log = SegmentLog::open(dir.path()).expect("open");
    let read = log.messages(7, 0, 100).expect("read");
    assert_eq!(read.len(), 10);
    assert_eq!(read[3], (13, b"old 13".to_vec()));
    log.remove_messages(7, &[10, 11]).expect("remove");
    for seq in 20..25u64 {
        log.put_message(7, seq, format!("new {seq}").as_bytes())
            .expect("put");
    }
    log.flush().expect("flush");
    drop(log);

    let log = SegmentLog::open(dir.path()).expect("reopen");
    let read = log.messages(7, 0, 100).expect("read");
    let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (12..25).collect::<Vec<_>>());
    assert_eq!(read[0].1, b"old 12");
    assert_eq!(read[12].1, b"new 24");
    let mut segs: Vec<_> = fs::read_dir(&queue_dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 2, "the new records went to a new file");
    assert!(fs::read(&segs[0]).expect("v1").starts_with(MAGIC));
    assert!(fs::read(&segs[1]).expect("v2").starts_with(MAGIC2));
}

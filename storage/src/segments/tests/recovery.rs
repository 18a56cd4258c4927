//! The segment log after a crash or with damaged files: what a flush covered
//! survives, a torn tail or garbage is cut, a damaged record ends its segment
//! (on opening) or is skipped (when read), and acks reach the file unflushed.

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::{files, open, seqs};

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

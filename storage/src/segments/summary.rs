//! A sealed segment's summary (`<segment no>.sum`): what a scan at open would
//! learn of it, so that opening a deep queue reads one small file per segment
//! instead of every record.
//!
//! ```text
//! "WRNSUM01" [u64 min][u64 max][u64 records][u64 len][u64 value bytes]
//!            [u8 first OR][u8 first AND][u32 n] n × [u64 seq][u64 offset] [u32 crc]
//! ```
//!
//! Little-endian; the crc32 covers everything before it. A summary is written
//! only once its segment is sealed (no record is ever appended to it again)
//! and fsynced, and is trusted only if it is whole and the file is exactly
//! `len` bytes long; anything else is scanned as before. Removals are not in
//! it: the acks file still says which records are gone.

use crate::Seq;

/// The first bytes of a summary file (format version 1).
const MAGIC: &[u8; 8] = b"WRNSUM01";
/// Bytes before the sparse entries: magic, five u64, two u8, the u32 count.
const HEAD: usize = 8 + 40 + 2 + 4;

/// The facts of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lowest seq of its records.
    pub min: Seq,
    /// Highest seq of its records.
    pub max: Seq,
    /// How many records it holds.
    pub records: u64,
    /// Bytes of the file (magic and records).
    pub len: u64,
    /// Bytes of the records' values.
    pub value_bytes: u64,
    /// OR of the first byte of every value.
    pub first_or: u8,
    /// AND of the first byte of every value.
    pub first_and: u8,
    /// `(seq, offset)` of a record every sparse step.
    pub sparse: Vec<(Seq, u64)>,
}

impl Summary {
    /// The bytes of the summary file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + self.sparse.len() * 16 + 4);
        out.extend_from_slice(MAGIC);
        for v in [self.min, self.max, self.records, self.len, self.value_bytes] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[self.first_or, self.first_and]);
        out.extend_from_slice(&(self.sparse.len() as u32).to_le_bytes());
        for &(seq, offset) in &self.sparse {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// A summary read back; `None` if it is torn, damaged or not one.
    pub fn decode(bytes: &[u8]) -> Option<Summary> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        let fixed = HEAD - MAGIC.len();
        let n = u32::from_le_bytes(rest.get(fixed - 4..fixed)?.try_into().ok()?) as usize;
        if rest.len() != fixed + n.checked_mul(16)? {
            return None;
        }
        let sparse = (0..n)
            .map(|i| Some((u64_at(fixed + i * 16)?, u64_at(fixed + 8 + i * 16)?)))
            .collect::<Option<Vec<_>>>()?;
        let summary = Summary {
            min: u64_at(0)?,
            max: u64_at(8)?,
            records: u64_at(16)?,
            len: u64_at(24)?,
            value_bytes: u64_at(32)?,
            first_or: *rest.get(40)?,
            first_and: *rest.get(41)?,
            sparse,
        };
        // A summary of nothing, or of more records than seqs, is not trusted.
        let span = summary.max.checked_sub(summary.min)?.checked_add(1)?;
        (summary.records > 0 && summary.records <= span).then_some(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::segments::SegmentLog;

    /// Files of queue 1's directory with this extension.
    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(dir.join("1"))
            .expect("list")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        out.sort();
        out
    }

    fn all(log: &SegmentLog) -> Vec<(Seq, Vec<u8>)> {
        log.messages(1, 0, usize::MAX).expect("read")
    }

    /// Three segments' worth of 4 KiB records, every tenth removed.
    fn deep_queue(dir: &Path) -> Vec<(Seq, Vec<u8>)> {
        let log = SegmentLog::open(dir).expect("open");
        let value = |seq: Seq| {
            let mut v = vec![(seq % 251) as u8; 4096];
            v[..8].copy_from_slice(&seq.to_le_bytes());
            v
        };
        for seq in 0..10_000u64 {
            log.put_message(1, seq, &value(seq)).expect("put");
        }
        let gone: Vec<Seq> = (0..10_000).step_by(10).collect();
        log.remove_messages(1, &gone).expect("remove");
        log.flush().expect("flush");
        all(&log)
    }

    #[test]
    fn sealed_segments_reopen_from_their_summaries_with_the_same_messages() {
        let dir = tempfile::tempdir().expect("dir");
        let expected = deep_queue(dir.path());
        assert_eq!(expected.len(), 9_000);
        let segs = files(dir.path(), "seg").len();
        assert!(segs >= 3, "{segs} segments");
        assert_eq!(files(dir.path(), "sum").len(), segs - 1, "every sealed one");
        for _ in 0..2 {
            let log = SegmentLog::open(dir.path()).expect("reopen");
            assert_eq!(all(&log), expected);
            assert_eq!(
                files(dir.path(), "sum").len(),
                segs,
                "the last one too, once sealed"
            );
        }
        let log = SegmentLog::open(dir.path()).expect("reopen");
        log.remove_messages(1, &[1, 2, 3]).expect("remove");
        log.flush().expect("flush");
        drop(log);
        let log = SegmentLog::open(dir.path()).expect("reopen");
        assert_eq!(
            all(&log).len(),
            8_997,
            "acks still apply to a summarised segment"
        );
    }

    #[test]
    fn live_counts_come_from_summaries_until_a_put_again_overlaps_them() {
        let dir = tempfile::tempdir().expect("dir");
        deep_queue(dir.path());
        let log = SegmentLog::open(dir.path()).expect("reopen");
        let whole = log.live_summary(1, 0).expect("known");
        assert_eq!((whole.count, whole.next_seq), (9_000, 10_000));
        assert_eq!(whole.value_bytes, 9_000 * 4096);
        // 5001..=9999 without the multiples of ten.
        assert_eq!(log.live_summary(1, 5_001).map(|s| s.count), Some(4_500));
        assert_eq!(log.live_summary(1, 10_000).map(|s| s.count), Some(0));
        log.put_message(1, 21, b"again").expect("put again");
        assert_eq!(log.live_summary(1, 0), None, "two segments cover seq 21");
    }

    #[test]
    fn a_damaged_summary_or_one_of_another_length_means_a_scan() {
        let dir = tempfile::tempdir().expect("dir");
        let expected = deep_queue(dir.path());
        let sums = files(dir.path(), "sum");
        let mut bytes = fs::read(&sums[0]).expect("read");
        bytes[12] ^= 1;
        fs::write(&sums[0], bytes).expect("damage");
        // A summary claiming fewer records than the file holds.
        let mut short = Summary::decode(&fs::read(&sums[1]).expect("read")).expect("sound");
        short.records -= 1;
        short.len -= 4096 + 16;
        fs::write(&sums[1], short.encode()).expect("write");
        let log = SegmentLog::open(dir.path()).expect("reopen");
        assert_eq!(all(&log), expected);
    }

    fn sample() -> Summary {
        Summary {
            min: 10,
            max: 99,
            records: 90,
            len: 12_345,
            value_bytes: 11_000,
            first_or: 0b1011,
            first_and: 0b0001,
            sparse: vec![(10, 8), (50, 6000)],
        }
    }

    #[test]
    fn a_summary_reads_back_as_written() {
        assert_eq!(Summary::decode(&sample().encode()), Some(sample()));
    }

    #[test]
    fn a_torn_or_damaged_summary_is_not_trusted() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(Summary::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert_eq!(Summary::decode(&damaged), None, "byte {i} flipped");
        }
    }
}

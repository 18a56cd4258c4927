//! A queue's segments read back at open.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;

use super::segment::Segment;
use super::{QueueLog, acks_path, remove_file, seg_path, sum_path};
use crate::segments::format::{self, Layout, Scanner};
use crate::segments::summary::Summary;

impl QueueLog {
    /// Reads a queue's directory back at open: checks every record of a
    /// segment without a summary (cutting torn or damaged tails, then writing
    /// its summary), applies the acks and deletes what is fully removed.
    pub fn recover(dir: PathBuf) -> io::Result<Self> {
        let mut log = QueueLog::new(dir);
        let mut segs = Vec::new();
        let mut acks = HashSet::new();
        let mut sums = HashSet::new();
        for entry in fs::read_dir(&log.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let parsed = name
                .split_once('.')
                .and_then(|(no, ext)| Some((no.parse::<u64>().ok()?, ext)));
            match parsed {
                Some((no, "seg")) => segs.push(no),
                Some((no, "acks")) => {
                    acks.insert(no);
                }
                Some((no, "sum")) => {
                    sums.insert(no);
                }
                _ => tracing::warn!(file = %entry.path().display(), "ignoring a stray file"),
            }
        }
        segs.sort_unstable();
        for &no in &segs {
            log.next_no = log.next_no.max(no + 1);
            match log.recover_segment(no, sums.contains(&no)) {
                Ok(Some(segment)) => {
                    log.high = log.high.max(Some(segment.max));
                    log.segments.push(segment);
                }
                Ok(None) => {
                    remove_file(&seg_path(&log.dir, no));
                    remove_file(&acks_path(&log.dir, no));
                }
                Err(error) => {
                    // Unreadable now, maybe readable later: leave it on disk.
                    tracing::error!(%error, segment = no, dir = %log.dir.display(),
                        "skipping an unreadable segment");
                }
            }
        }
        for no in acks {
            if segs.binary_search(&no).is_err() {
                remove_file(&acks_path(&log.dir, no));
            }
        }
        for no in sums {
            if segs.binary_search(&no).is_err() {
                remove_file(&sum_path(&log.dir, no));
            }
        }
        Ok(log)
    }

    /// One segment at open (from its summary if it has a sound one); `None`
    /// if nothing in it is live.
    fn recover_segment(&self, no: u64, has_summary: bool) -> io::Result<Option<Segment>> {
        let path = seg_path(&self.dir, no);
        let acks_file = acks_path(&self.dir, no);
        let (acked, acks_len) = match fs::read(&acks_file) {
            Ok(bytes) => {
                let (seqs, valid) = format::parse_acks(&bytes);
                if valid < bytes.len() {
                    tracing::warn!(file = %acks_file.display(), valid, len = bytes.len(),
                        "cutting a torn acks file");
                    OpenOptions::new()
                        .write(true)
                        .open(&acks_file)?
                        .set_len(valid as u64)?;
                }
                (seqs.into_iter().collect::<HashSet<_>>(), valid as u64)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (HashSet::new(), 0),
            Err(e) => return Err(e),
        };
        if has_summary && let Some(mut segment) = self.summarised(no)? {
            segment.acks_len = acks_len;
            // Acks name records of their own segment only.
            for seq in acked
                .into_iter()
                .filter(|s| (segment.min..=segment.max).contains(s))
            {
                segment.live = segment.live.saturating_sub(1);
                segment.removed.insert(seq);
            }
            return Ok((segment.live > 0).then_some(segment));
        }
        let Some(mut scanner) = Scanner::open(&path)? else {
            tracing::warn!(file = %path.display(), "not a segment file; deleting it");
            return Ok(None);
        };
        let mut segment = Segment::new(no, scanner.layout);
        segment.acks_len = acks_len;
        loop {
            let record = match scanner.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, file = %path.display(), "segment read stops early");
                    break;
                }
            };
            if segment.records > 0 && record.seq <= segment.max {
                // Written in seq order: anything else is damage.
                scanner.offset = record.offset;
                break;
            }
            segment.note(
                record.seq,
                record.offset,
                record.size,
                record.len as u64,
                record.first,
            );
            if acked.contains(&record.seq) {
                segment.live -= 1;
                segment.removed.insert(record.seq);
            }
        }
        let file_len = fs::metadata(&path)?.len();
        if scanner.offset < file_len {
            tracing::warn!(file = %path.display(), valid = scanner.offset, len = file_len,
                "cutting a torn or damaged segment tail");
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(scanner.offset)?;
        }
        if segment.live == 0 {
            return Ok(None);
        }
        // Every segment found at open is sealed (writes go to a new one):
        // made durable, it gets the summary that spares the next open this scan.
        if segment.records > 0 {
            let summary = segment.summary().encode();
            let written = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.sync_data())
                .and_then(|()| fs::write(sum_path(&self.dir, no), summary));
            if let Err(error) = written {
                tracing::warn!(%error, file = %path.display(), "cannot write a segment summary");
            }
        }
        Ok(Some(segment))
    }

    /// Segment `no` from its summary, if the summary is whole and the file
    /// has exactly the length it records.
    fn summarised(&self, no: u64) -> io::Result<Option<Segment>> {
        let sum_file = sum_path(&self.dir, no);
        let summary = match fs::read(&sum_file) {
            Ok(bytes) => Summary::decode(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(summary) = summary else {
            tracing::warn!(file = %sum_file.display(), "ignoring a damaged segment summary");
            return Ok(None);
        };
        let file = File::open(seg_path(&self.dir, no))?;
        let file_len = file.metadata()?.len();
        if file_len != summary.len {
            tracing::warn!(file = %sum_file.display(), file_len, summary_len = summary.len,
                "ignoring a segment summary of another length");
            return Ok(None);
        }
        // The summary does not say how the file lays out its records: its header does.
        let Some(layout) = Layout::of_file(&file)? else {
            tracing::warn!(file = %sum_file.display(), "ignoring the summary of a file with no segment header");
            return Ok(None);
        };
        Ok(Some(Segment::from_summary(no, layout, summary)))
    }
}

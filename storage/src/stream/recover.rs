//! Opening a stream: list its segment files, check every chunk of each
//! (header and body checksums, offsets following on), cut each file where it
//! stops making sense, and rebuild the in-memory index.
//!
//! A kill -9 or power loss tears at most the tail of the segment being
//! written; a damaged chunk elsewhere (a flipped bit) is cut with everything
//! after it in its segment, loudly, since chunks after it cannot be trusted to
//! start where the damaged one says it ends. Later segments are kept: their
//! offsets stay what they were (a reader jumps over the gap).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::chunk::{HEADER, SEGMENT_MAGIC, check_header, decode_header, split_body};
use super::index::{Segment, parse_segment_name, segment_path};

/// The segment files in `dir`, by first offset.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        match entry.file_name().to_str().and_then(parse_segment_name) {
            Some(first) => firsts.push(first),
            None => {
                tracing::warn!(file = %entry.path().display(), "ignoring a stray file in a stream")
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Why a chunk is not accepted.
type Damage = &'static str;

/// A scanned chunk: its message count, timestamp and length.
type Scanned = (u64, u64, u64);

/// A chunk that could not be read: damage (cut it) or an I/O error.
type ScanError = Result<Damage, io::Error>;

/// Reads one chunk at the reader's position; `Ok(None)` at a clean end of
/// file, `Err(Ok(damage))` for a torn or damaged chunk.
fn scan_chunk(
    reader: &mut BufReader<File>,
    remaining: u64,
    expected_first: u64,
    body: &mut Vec<u8>,
) -> Result<Option<Scanned>, ScanError> {
    if remaining == 0 {
        return Ok(None);
    }
    if remaining < HEADER as u64 {
        return Err(Ok("torn chunk header"));
    }
    let mut b = [0; HEADER];
    reader.read_exact(&mut b).map_err(Err)?;
    let (header, crc) = decode_header(&b).map_err(Ok)?;
    let mut bloom = vec![0; header.bloom_len as usize];
    if remaining < header.total_len() {
        return Err(Ok("torn chunk"));
    }
    reader.read_exact(&mut bloom).map_err(Err)?;
    check_header(&header, crc, &bloom).map_err(Ok)?;
    if header.first_offset != expected_first {
        return Err(Ok("chunk offset does not follow the previous chunk"));
    }
    body.resize(header.body_len as usize, 0);
    reader.read_exact(body).map_err(Err)?;
    if crc32fast::hash(body) != header.body_crc {
        return Err(Ok("chunk body fails its checksum"));
    }
    split_body(body, header.count).map_err(Ok)?;
    Ok(Some((
        u64::from(header.count),
        header.timestamp_ms,
        header.total_len(),
    )))
}

/// Checks the segment file of `first_offset` in `dir` and indexes it,
/// cutting (truncating) the file at the first torn or damaged chunk.
pub fn recover_segment(dir: &Path, first_offset: u64, step: u64) -> io::Result<Segment> {
    let path = segment_path(dir, first_offset);
    let file = File::open(&path)?;
    let file_len = file.metadata()?.len();
    let mut segment = Segment::new(path.clone(), first_offset);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0; SEGMENT_MAGIC.len()];
    let magic_ok = file_len >= magic.len() as u64
        && reader.read_exact(&mut magic).is_ok()
        && &magic == SEGMENT_MAGIC;
    if !magic_ok {
        tracing::warn!(file = %path.display(), len = file_len,
            "stream segment without its magic (torn at creation?); emptying it");
        let mut file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(0)?;
        file.write_all(SEGMENT_MAGIC)?;
        file.sync_all()?;
        return Ok(segment);
    }
    let mut body = Vec::new();
    loop {
        let pos = segment.len;
        match scan_chunk(&mut reader, file_len - pos, segment.next_offset, &mut body) {
            Ok(None) => break,
            Ok(Some((count, ts, len))) => {
                segment.add_chunk(pos, segment.next_offset, count, ts, len, step);
            }
            Err(Ok(damage)) => {
                tracing::warn!(file = %path.display(), pos, len = file_len, damage,
                    cut_bytes = file_len - pos, first_lost_offset = segment.next_offset,
                    "stream segment: cutting a torn or damaged chunk and everything after it");
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(pos)?;
                file.sync_all()?;
                break;
            }
            Err(Err(error)) => return Err(error),
        }
    }
    Ok(segment)
}

//! The WAL's on-disk format: a file header and crc-checked records.
//!
//! A file starts with [`MAGIC`]; then records `[len u32][crc32 u32][kind u8][group u64][body]`
//! (little endian), where `len` counts `kind`, `group` and `body`, and the crc covers the same
//! bytes. Bodies are postcard. A record that is short or fails its crc ends the readable part
//! of a file (a torn tail, as the segment log treats it); whether that is a tail to cut or
//! damage to refuse is the caller's decision, since only it knows which file is the last.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::{Entry, GroupId, LogId, Vote};

/// The first bytes of every WAL file.
pub const MAGIC: &[u8; 8] = b"WRNWAL01";

/// Bytes before a record's `kind`: `len` and `crc`.
const PREFIX: usize = 8;
/// Bytes of `kind` and `group`.
const KEY: usize = 9;
/// The largest record accepted at replay (guards against a damaged `len`).
const MAX_RECORD: usize = 256 << 20;

/// What a record says about one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// One log entry.
    Entry(Entry),
    /// The group's vote.
    Vote(Vote),
    /// The group's committed log id (a hint openraft may replay up to).
    Committed(Option<LogId>),
    /// Every entry after this id is gone.
    TruncateAfter(Option<LogId>),
    /// Every entry up to this id is gone.
    Purge(LogId),
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Entry(_) => 1,
            Body::Vote(_) => 2,
            Body::Committed(_) => 3,
            Body::TruncateAfter(_) => 4,
            Body::Purge(_) => 5,
        }
    }
}

/// Why a record could not be encoded or a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// postcard refused the body.
    #[error("encode a WAL record: {0}")]
    Encode(postcard::Error),
    /// A record is larger than a record may be.
    #[error("a WAL record of {0} bytes is too large")]
    TooLarge(usize),
    /// A record read back is short or fails its crc.
    #[error("a WAL record read back is short or damaged")]
    Damaged,
    /// A record's body does not decode although its crc matched.
    #[error("decode a WAL record of kind {kind}: {source}")]
    Decode {
        /// The record's kind byte.
        kind: u8,
        /// postcard's error.
        source: postcard::Error,
    },
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, group: GroupId, body: &Body) -> Result<(), RecordError> {
    let payload = postcard::to_allocvec(body).map_err(RecordError::Encode)?;
    let total = KEY + payload.len();
    let len = u32::try_from(total)
        .ok()
        .filter(|_| total <= MAX_RECORD)
        .ok_or(RecordError::TooLarge(total))?;
    let mut hasher = crc32fast::Hasher::new();
    let key = {
        let mut key = [0u8; KEY];
        key[0] = body.kind();
        key[1..].copy_from_slice(&group.to_le_bytes());
        key
    };
    hasher.update(&key);
    hasher.update(&payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&key);
    out.extend_from_slice(&payload);
    Ok(())
}

/// Decodes the record that starts at `bytes[0]` and fills `bytes` exactly (a read-back).
pub fn decode_one(bytes: &[u8]) -> Result<(GroupId, Body), RecordError> {
    match next(bytes) {
        Some(Ok((group, body, _))) => Ok((group, body)),
        Some(Err(e)) => Err(e),
        None => Err(RecordError::Encode(
            postcard::Error::DeserializeUnexpectedEnd,
        )),
    }
}

/// The record at the start of `bytes`: `None` if short or damaged (crc), else the group,
/// body and total length. A crc-valid record whose body does not decode is an error.
fn next(bytes: &[u8]) -> Option<Result<(GroupId, Body, usize), RecordError>> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if !(KEY..=MAX_RECORD).contains(&len) {
        return None;
    }
    let rest = bytes.get(PREFIX..PREFIX + len)?;
    if crc32fast::hash(rest) != crc {
        return None;
    }
    let kind = rest[0];
    let group = u64::from_le_bytes(rest[1..KEY].try_into().ok()?);
    let body: Body = match postcard::from_bytes(&rest[KEY..]) {
        Ok(body) => body,
        Err(source) => return Some(Err(RecordError::Decode { kind, source })),
    };
    if body.kind() != kind {
        return None;
    }
    Some(Ok((group, body, PREFIX + len)))
}

/// One record found by [`scan`].
pub struct Found {
    /// Where the record starts in its file.
    pub offset: u64,
    /// The record's total length.
    pub len: u32,
    /// Its group.
    pub group: GroupId,
    /// Its body.
    pub body: Body,
}

/// What [`scan`] read from one file.
pub struct Scanned {
    /// Every readable record, in order.
    pub records: Vec<Found>,
    /// The length of the readable part (header included); less than the file if its tail is
    /// torn or damaged.
    pub good_len: u64,
    /// Whether the header itself was missing or wrong.
    pub bad_header: bool,
}

/// Reads every record of a file's bytes until the end or the first short/damaged record.
pub fn scan(bytes: &[u8]) -> Result<Scanned, RecordError> {
    if bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Ok(Scanned {
            records: Vec::new(),
            good_len: 0,
            bad_header: true,
        });
    }
    let mut pos = MAGIC.len();
    let mut records = Vec::new();
    while let Some(found) = next(&bytes[pos..]) {
        let (group, body, len) = found?;
        records.push(Found {
            offset: pos as u64,
            len: len as u32,
            group,
            body,
        });
        pos += len;
    }
    Ok(Scanned {
        records,
        good_len: pos as u64,
        bad_header: false,
    })
}

/// The path of WAL file `seq` in `dir`.
pub fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// The sequence number of a WAL file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

//! The bytes of segment and acks files: encoding, and reading them back with
//! every record checked (length and checksum), so that a torn or damaged file
//! is cut where it stops making sense instead of being trusted.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Seq;

/// The first bytes of every segment file (format version 1).
pub const MAGIC: &[u8; 8] = b"WRNSEG01";
/// A record's header: `[u32 len][u64 seq][u32 crc]`, little-endian.
pub const HEADER: usize = 16;
/// An acks entry: `[u64 seq][u32 crc of the seq]`.
pub const ACK: usize = 12;

/// The checksum of a record: covers its length, seq and value.
fn checksum(seq: Seq, value: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(value.len() as u32).to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(value);
    hasher.finalize()
}

/// Appends a record to `buf`; returns its size in bytes.
pub fn encode_record(buf: &mut Vec<u8>, seq: Seq, value: &[u8]) -> u64 {
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&checksum(seq, value).to_le_bytes());
    buf.extend_from_slice(value);
    (HEADER + value.len()) as u64
}

/// Splits a record header into length, seq and checksum.
fn parse_header(header: &[u8; HEADER]) -> (usize, Seq, u32) {
    let mut len = [0; 4];
    let mut seq = [0; 8];
    let mut crc = [0; 4];
    len.copy_from_slice(&header[..4]);
    seq.copy_from_slice(&header[4..12]);
    crc.copy_from_slice(&header[12..]);
    (
        u32::from_le_bytes(len) as usize,
        u64::from_le_bytes(seq),
        u32::from_le_bytes(crc),
    )
}

/// Appends an acks entry to `buf`.
pub fn encode_ack(buf: &mut Vec<u8>, seq: Seq) {
    let bytes = seq.to_le_bytes();
    buf.extend_from_slice(&bytes);
    buf.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
}

/// The seqs of an acks file's valid entries, and the length they take: reading
/// stops at the first entry that is torn or fails its checksum.
pub fn parse_acks(bytes: &[u8]) -> (Vec<Seq>, usize) {
    let mut seqs = Vec::with_capacity(bytes.len() / ACK);
    let mut valid = 0;
    for entry in bytes.chunks_exact(ACK) {
        let mut seq = [0; 8];
        let mut crc = [0; 4];
        seq.copy_from_slice(&entry[..8]);
        crc.copy_from_slice(&entry[8..]);
        if crc32fast::hash(&seq) != u32::from_le_bytes(crc) {
            break;
        }
        seqs.push(u64::from_le_bytes(seq));
        valid += ACK;
    }
    (seqs, valid)
}

/// One record read back from a segment.
#[derive(Debug)]
pub struct Scanned {
    /// Where the record starts in the file.
    pub offset: u64,
    /// Its seq.
    pub seq: Seq,
    /// The length of its value.
    pub len: usize,
    /// The first byte of its value (0 if empty).
    pub first: u8,
}

/// Reads a whole segment file at open, record by record, checking each.
#[derive(Debug)]
pub struct Scanner {
    reader: BufReader<File>,
    /// Where the next record starts.
    pub offset: u64,
    file_len: u64,
    /// The value being checked, reused (no allocation per record).
    value: Vec<u8>,
}

impl Scanner {
    /// Opens `path` for scanning; `None` if it does not start with [`MAGIC`].
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0; MAGIC.len()];
        if file_len < MAGIC.len() as u64 || reader.read_exact(&mut magic).is_err() {
            return Ok(None);
        }
        if &magic != MAGIC {
            return Ok(None);
        }
        Ok(Some(Scanner {
            reader,
            offset: MAGIC.len() as u64,
            file_len,
            value: Vec::new(),
        }))
    }

    /// The next valid record; `None` at the end of the file or at the first
    /// record that is torn or damaged (`self.offset` then says where the valid
    /// part ends).
    pub fn next_record(&mut self) -> io::Result<Option<Scanned>> {
        if self.file_len - self.offset < HEADER as u64 {
            return Ok(None);
        }
        let mut header = [0; HEADER];
        self.reader.read_exact(&mut header)?;
        let (len, seq, crc) = parse_header(&header);
        if self.file_len - self.offset - (HEADER as u64) < len as u64 {
            return Ok(None);
        }
        self.value.resize(len, 0);
        self.reader.read_exact(&mut self.value)?;
        if checksum(seq, &self.value) != crc {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += (HEADER + len) as u64;
        let first = self.value.first().copied().unwrap_or(0);
        Ok(Some(Scanned {
            offset,
            seq,
            len,
            first,
        }))
    }
}

/// Reads records of a segment from a position on, in chunks (one `pread` per
/// chunk, not per record).
#[derive(Debug)]
pub struct Reader {
    file: File,
    /// Where the next record starts.
    pub offset: u64,
    /// Where the segment's written data ends.
    end: u64,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_start: u64,
}

/// Bytes read from a segment at a time.
const CHUNK: usize = 256 << 10;

impl Reader {
    /// A reader of `file` from `offset` up to `end`.
    pub fn new(file: File, offset: u64, end: u64) -> Self {
        Reader {
            file,
            offset,
            end,
            buf: Vec::new(),
            buf_start: offset,
        }
    }

    /// Makes `buf` hold `len` bytes from `self.offset`; false if the segment
    /// ends before.
    fn fill(&mut self, len: usize) -> io::Result<bool> {
        if self.end.saturating_sub(self.offset) < len as u64 {
            return Ok(false);
        }
        let have_from = self.offset.saturating_sub(self.buf_start) as usize;
        if self.offset >= self.buf_start && have_from + len <= self.buf.len() {
            return Ok(true);
        }
        let want = len.max(CHUNK).min((self.end - self.offset) as usize);
        self.buf.resize(want, 0);
        match self.file.read_exact_at(&mut self.buf, self.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // The file shrank under us (damage): read what is left.
                self.buf.clear();
                self.end = self.end.min(self.file.metadata()?.len());
                return self.fill(len);
            }
            Err(e) => return Err(e),
        }
        self.buf_start = self.offset;
        Ok(true)
    }

    /// The next record's seq without reading its value, or `None` at the end.
    pub fn peek_seq(&mut self) -> io::Result<Option<(Seq, usize)>> {
        if !self.fill(HEADER)? {
            return Ok(None);
        }
        let at = (self.offset - self.buf_start) as usize;
        let mut header = [0; HEADER];
        header.copy_from_slice(&self.buf[at..at + HEADER]);
        let (len, seq, _) = parse_header(&header);
        Ok(Some((seq, len)))
    }

    /// Steps over the record [`Reader::peek_seq`] saw.
    pub fn skip(&mut self, len: usize) {
        self.offset += (HEADER + len) as u64;
    }

    /// Reads the record [`Reader::peek_seq`] saw and steps over it; an error
    /// if it is damaged.
    pub fn take(&mut self, seq: Seq, len: usize) -> io::Result<Vec<u8>> {
        if !self.fill(HEADER + len)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment record runs past the end",
            ));
        }
        let at = (self.offset - self.buf_start) as usize;
        let mut header = [0; HEADER];
        header.copy_from_slice(&self.buf[at..at + HEADER]);
        let (_, _, crc) = parse_header(&header);
        let value = self.buf[at + HEADER..at + HEADER + len].to_vec();
        if checksum(seq, &value) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment record {seq} fails its checksum"),
            ));
        }
        self.skip(len);
        Ok(value)
    }
}

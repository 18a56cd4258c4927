//! The bytes of segment and acks files: encoding, and reading them back with
//! every record checked (length and checksum), so that a torn or damaged file
//! is cut where it stops making sense instead of being trusted.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::LazyLock;

use crate::Seq;

/// The first bytes of a segment file of format version 1.
pub const MAGIC: &[u8; 8] = b"WRNSEG01";
/// The first bytes of a segment file of format version 2, followed by the
/// file's base seq (u64, little-endian).
pub const MAGIC2: &[u8; 8] = b"WRNSEG02";
/// A version-1 record's header: `[u32 len][u64 seq][u32 crc]`, little-endian.
pub const HEADER: usize = 16;
/// The longest version-2 record header: `[varint len][varint seq - base][u32 crc]`.
const MAX_HEADER2: usize = 5 + 10 + 4;
/// An acks entry: `[u64 seq][u32 crc of the seq]`.
pub const ACK: usize = 12;

/// The checksum of a record: covers its length, seq and value.
fn checksum(seq: Seq, value: &[u8]) -> u32 {
    // A clone of a hasher made once: `Hasher::new` detects the CPU's features
    // on every call (about 45 instructions a record), and one update of the
    // twelve header bytes instead of two (issue 19's persistent path).
    static EMPTY: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);
    let mut hasher = EMPTY.clone();
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&(value.len() as u32).to_le_bytes());
    head[4..].copy_from_slice(&seq.to_le_bytes());
    hasher.update(&head);
    hasher.update(value);
    hasher.finalize()
}

/// How a segment file lays out its records.
///
/// Version 2 (written since session 10) stores the length and the seq as
/// varints, the seq relative to the file's first: a small message's header
/// takes 6-8 bytes instead of 16. Version-1 files are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `WRNSEG01`, fixed 16-byte record headers.
    V1,
    /// `WRNSEG02` + base seq, varint record headers.
    V2 {
        /// The seq record seqs are stored relative to (the file's first).
        base: Seq,
    },
}

/// A record header as read: the value's length, the seq, the checksum and
/// the header's own length.
#[derive(Debug, Clone, Copy)]
struct RecordHeader {
    len: usize,
    seq: Seq,
    crc: u32,
    size: usize,
}

impl Layout {
    /// The layout of new files whose first record has seq `first`.
    pub fn new_file(first: Seq) -> Self {
        Layout::V2 { base: first }
    }

    /// The bytes before the first record.
    pub fn file_header_len(self) -> u64 {
        match self {
            Layout::V1 => MAGIC.len() as u64,
            Layout::V2 { .. } => (MAGIC2.len() + 8) as u64,
        }
    }

    /// The bytes a new file starts with.
    pub fn file_header(self) -> Vec<u8> {
        match self {
            Layout::V1 => MAGIC.to_vec(),
            Layout::V2 { base } => {
                let mut out = MAGIC2.to_vec();
                out.extend_from_slice(&base.to_le_bytes());
                out
            }
        }
    }

    /// The layout a file's first bytes announce; `None` if they are no
    /// segment header.
    pub fn of_header(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(MAGIC) {
            return Some(Layout::V1);
        }
        let rest = bytes.strip_prefix(MAGIC2)?;
        let base = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        Some(Layout::V2 { base })
    }

    /// The layout of the segment file `file`, from its first bytes.
    pub fn of_file(file: &File) -> io::Result<Option<Self>> {
        let mut header = [0; 16];
        let len = file.metadata()?.len().min(16) as usize;
        file.read_exact_at(&mut header[..len], 0)?;
        Ok(Layout::of_header(&header[..len]))
    }

    /// Whether a record of seq `seq` can be written into a file of this
    /// layout (version 2 stores seqs at or above its base only).
    pub fn holds(self, seq: Seq) -> bool {
        match self {
            Layout::V1 => true,
            Layout::V2 { base } => seq >= base,
        }
    }

    /// Appends a record to `buf`; returns its size in bytes (header and
    /// value). The seq must be one [`Layout::holds`].
    pub fn encode_record(self, buf: &mut Vec<u8>, seq: Seq, value: &[u8]) -> u64 {
        let start = buf.len();
        match self {
            Layout::V1 => {
                buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
                buf.extend_from_slice(&seq.to_le_bytes());
            }
            Layout::V2 { base } => {
                put_varint(buf, value.len() as u64);
                put_varint(buf, seq.saturating_sub(base));
            }
        }
        buf.extend_from_slice(&checksum(seq, value).to_le_bytes());
        buf.extend_from_slice(value);
        (buf.len() - start) as u64
    }

    /// The longest record header of this layout.
    fn max_header(self) -> usize {
        match self {
            Layout::V1 => HEADER,
            Layout::V2 { .. } => MAX_HEADER2,
        }
    }

    /// Parses a record header at the start of `bytes`; `None` if `bytes`
    /// ends first or the header makes no sense.
    fn parse_header(self, bytes: &[u8]) -> Option<RecordHeader> {
        match self {
            Layout::V1 => {
                let header = bytes.get(..HEADER)?;
                Some(RecordHeader {
                    len: u32::from_le_bytes(header[..4].try_into().ok()?) as usize,
                    seq: u64::from_le_bytes(header[4..12].try_into().ok()?),
                    crc: u32::from_le_bytes(header[12..16].try_into().ok()?),
                    size: HEADER,
                })
            }
            Layout::V2 { base } => {
                let (len, a) = get_varint(bytes)?;
                let (delta, b) = get_varint(bytes.get(a..)?)?;
                let crc = bytes.get(a + b..a + b + 4)?;
                Some(RecordHeader {
                    len: usize::try_from(len)
                        .ok()
                        .filter(|&l| l <= u32::MAX as usize)?,
                    seq: base.checked_add(delta)?,
                    crc: u32::from_le_bytes(crc.try_into().ok()?),
                    size: a + b + 4,
                })
            }
        }
    }
}

/// Appends `value` as an LEB128 varint.
fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// An LEB128 varint at the start of `bytes` and the bytes it took; `None` if
/// `bytes` ends first or it runs past 10 bytes.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
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
    /// Its size in the file, header and value.
    pub size: u64,
    /// The first byte of its value (0 if empty).
    pub first: u8,
}

/// Reads a whole segment file at open, record by record, checking each.
#[derive(Debug)]
pub struct Scanner {
    reader: Reader,
    /// Where the next record starts.
    pub offset: u64,
    /// How the file lays out its records.
    pub layout: Layout,
}

impl Scanner {
    /// Opens `path` for scanning; `None` if it does not start with a segment
    /// header.
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let Some(layout) = Layout::of_file(&file)? else {
            return Ok(None);
        };
        let offset = layout.file_header_len();
        if file_len < offset {
            return Ok(None);
        }
        Ok(Some(Scanner {
            reader: Reader::new(file, layout, offset, file_len),
            offset,
            layout,
        }))
    }

    /// The next valid record; `None` at the end of the file or at the first
    /// record that is torn or damaged (`self.offset` then says where the valid
    /// part ends).
    pub fn next_record(&mut self) -> io::Result<Option<Scanned>> {
        let offset = self.reader.offset;
        let Some((seq, len)) = self.reader.peek_seq()? else {
            return Ok(None);
        };
        let Some(first) = self.reader.check(seq, len)? else {
            return Ok(None);
        };
        self.offset = self.reader.offset;
        Ok(Some(Scanned {
            offset,
            seq,
            len,
            size: self.offset - offset,
            first,
        }))
    }
}

/// Reads records of a segment from a position on, in chunks (one `pread` per
/// chunk, not per record).
#[derive(Debug)]
pub struct Reader {
    file: File,
    layout: Layout,
    /// Where the next record starts.
    pub offset: u64,
    /// Where the segment's written data ends.
    end: u64,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_start: u64,
    /// The header size of the record [`Reader::peek_seq`] saw.
    peeked: usize,
}

/// Bytes read from a segment at a time.
const CHUNK: usize = 256 << 10;

impl Reader {
    /// A reader of `file` (laid out as `layout`) from `offset` up to `end`.
    pub fn new(file: File, layout: Layout, offset: u64, end: u64) -> Self {
        Reader {
            file,
            layout,
            offset,
            end,
            buf: Vec::new(),
            buf_start: offset,
            peeked: 0,
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

    /// The next record's seq and value length without reading its value, or
    /// `None` at the end (or at a header that makes no sense).
    pub fn peek_seq(&mut self) -> io::Result<Option<(Seq, usize)>> {
        let want = (self.layout.max_header() as u64).min(self.end.saturating_sub(self.offset));
        if want == 0 || !self.fill(want as usize)? {
            return Ok(None);
        }
        let at = (self.offset - self.buf_start) as usize;
        let Some(header) = self.layout.parse_header(&self.buf[at..]) else {
            return Ok(None);
        };
        self.peeked = header.size;
        Ok(Some((header.seq, header.len)))
    }

    /// Steps over the record [`Reader::peek_seq`] saw.
    pub fn skip(&mut self, len: usize) {
        self.offset += (self.peeked + len) as u64;
    }

    /// The checksum-checked value of the record [`Reader::peek_seq`] saw, in
    /// the buffer; `None` if the segment ends first or it fails its checksum.
    fn checked(&mut self, seq: Seq, len: usize) -> io::Result<Option<&[u8]>> {
        if !self.fill(self.peeked + len)? {
            return Ok(None);
        }
        let at = (self.offset - self.buf_start) as usize;
        let Some(header) = self.layout.parse_header(&self.buf[at..]) else {
            return Ok(None);
        };
        let value = &self.buf[at + header.size..at + header.size + len];
        Ok((header.seq == seq && checksum(seq, value) == header.crc).then_some(value))
    }

    /// Checks the record [`Reader::peek_seq`] saw and steps over it: the
    /// first byte of its value (0 if empty), or `None` if it is torn or
    /// damaged (the reader then stays before it).
    pub fn check(&mut self, seq: Seq, len: usize) -> io::Result<Option<u8>> {
        let Some(first) = self
            .checked(seq, len)?
            .map(|value| value.first().copied().unwrap_or(0))
        else {
            return Ok(None);
        };
        self.skip(len);
        Ok(Some(first))
    }

    /// Reads the record [`Reader::peek_seq`] saw and steps over it; an error
    /// if it is damaged.
    pub fn take(&mut self, seq: Seq, len: usize) -> io::Result<Vec<u8>> {
        if !self.fill(self.peeked + len)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment record runs past the end",
            ));
        }
        let Some(value) = self.checked(seq, len)?.map(<[u8]>::to_vec) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment record {seq} fails its checksum"),
            ));
        };
        self.skip(len);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// The record checksum is the CRC-32 of length, seq and value laid end to
    /// end, however it is computed: files written before stay readable.
    #[test]
    fn checksum_covers_length_seq_and_value_in_order() {
        for value in [&b""[..], b"x", &[7u8; 300]] {
            let seq = 0x0102_0304_0506_0708u64;
            let mut laid = (value.len() as u32).to_le_bytes().to_vec();
            laid.extend_from_slice(&seq.to_le_bytes());
            laid.extend_from_slice(value);
            assert_eq!(checksum(seq, value), crc32fast::hash(&laid));
        }
    }
}

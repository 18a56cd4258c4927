//! The bytes of a stream segment: the file magic, chunks (header, bloom
//! filter, body), and reading a chunk back with both of its checksums checked.
//!
//! A chunk, all integers little-endian:
//!
//! ```text
//! 0  [4]  magic "WCHK"
//! 4  [1]  chunk type (0: messages; other values reserved, e.g. tracking)
//! 5  [1]  bloom filter length in bytes (0: no message in the chunk has a filter value)
//! 6  [2]  reserved, zero
//! 8  [8]  first offset
//! 16 [4]  message count (at least 1)
//! 20 [8]  timestamp: wall-clock ms of the chunk's first message
//! 28 [4]  body length
//! 32 [4]  crc32 of the body
//! 36 [4]  crc32 of bytes 0..36 and the bloom filter
//! 40      bloom filter (bloom length bytes), then the body:
//!         per message [u32 value length][value]
//! ```
//!
//! The header has its own checksum so that a reader can trust a chunk's
//! length, offsets and bloom filter and skip the chunk without reading (or
//! checksumming) its body: that is what makes filtered and far-behind reads
//! cheap.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The first bytes of every stream segment file (format version 1).
pub const SEGMENT_MAGIC: &[u8; 8] = b"WRNSTR01";
/// The first bytes of every chunk.
pub const CHUNK_MAGIC: &[u8; 4] = b"WCHK";
/// A chunk header's length.
pub const HEADER: usize = 40;
/// The chunk type of a batch of messages.
pub const KIND_MESSAGES: u8 = 0;
/// Bloom hash functions per value.
const BLOOM_HASHES: u32 = 3;

/// A chunk's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The chunk type ([`KIND_MESSAGES`]).
    pub kind: u8,
    /// The bloom filter's length in bytes.
    pub bloom_len: u8,
    /// The offset of the chunk's first message.
    pub first_offset: u64,
    /// How many messages the chunk holds.
    pub count: u32,
    /// Wall-clock ms of the chunk's first message.
    pub timestamp_ms: u64,
    /// The body's length.
    pub body_len: u32,
    /// The body's crc32.
    pub body_crc: u32,
}

impl ChunkHeader {
    /// The chunk's whole length in the file.
    pub fn total_len(&self) -> u64 {
        (HEADER + self.bloom_len as usize) as u64 + u64::from(self.body_len)
    }

    /// The offset after the chunk's last message.
    pub fn end_offset(&self) -> u64 {
        self.first_offset + u64::from(self.count)
    }

    /// The header's first 36 bytes (everything but the header checksum).
    fn fields(&self) -> [u8; HEADER - 4] {
        let mut b = [0; HEADER - 4];
        b[..4].copy_from_slice(CHUNK_MAGIC);
        b[4] = self.kind;
        b[5] = self.bloom_len;
        b[8..16].copy_from_slice(&self.first_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..28].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        b[28..32].copy_from_slice(&self.body_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        b
    }
}

fn header_crc(fields: &[u8], bloom: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fields);
    h.update(bloom);
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Decodes a header's fixed part; its checksum is checked by
/// [`check_header`] once the bloom filter is read too.
pub fn decode_header(b: &[u8; HEADER]) -> Result<(ChunkHeader, u32), &'static str> {
    if &b[..4] != CHUNK_MAGIC {
        return Err("no chunk magic");
    }
    let header = ChunkHeader {
        kind: b[4],
        bloom_len: b[5],
        first_offset: u64_at(b, 8),
        count: u32_at(b, 16),
        timestamp_ms: u64_at(b, 20),
        body_len: u32_at(b, 28),
        body_crc: u32_at(b, 32),
    };
    Ok((header, u32_at(b, 36)))
}

/// Checks a header's checksum against its fields and bloom filter.
pub fn check_header(header: &ChunkHeader, crc: u32, bloom: &[u8]) -> Result<(), &'static str> {
    if header_crc(&header.fields(), bloom) != crc {
        return Err("chunk header fails its checksum");
    }
    if header.kind != KIND_MESSAGES {
        return Err("unknown chunk type");
    }
    if header.count == 0 {
        return Err("chunk with no message");
    }
    Ok(())
}

/// Splits a checked body into its `count` message values; an error if the
/// lengths do not add up to the body exactly.
pub fn split_body(body: &[u8], count: u32) -> Result<Vec<&[u8]>, &'static str> {
    let mut values = Vec::with_capacity(count as usize);
    let mut at = 0;
    for _ in 0..count {
        if body.len() - at < 4 {
            return Err("message length runs past the body");
        }
        let len = u32_at(body, at) as usize;
        at += 4;
        if body.len() - at < len {
            return Err("message runs past the body");
        }
        values.push(&body[at..at + len]);
        at += len;
    }
    if at != body.len() {
        return Err("body longer than its messages");
    }
    Ok(values)
}

/// Appends a chunk of `messages` to `buf`; returns its length. A message's
/// filter value goes into the bloom filter (`bloom_size` bytes) and is not
/// stored otherwise; a message without one adds the empty value, so that
/// "match unfiltered" readers can skip chunks that have none.
pub fn encode_chunk(
    buf: &mut Vec<u8>,
    first_offset: u64,
    timestamp_ms: u64,
    messages: &[(&[u8], Option<&[u8]>)],
    bloom_size: u8,
) -> io::Result<u64> {
    let body_len: usize = messages.iter().map(|(v, _)| 4 + v.len()).sum();
    let body_len = u32::try_from(body_len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "chunk body over 4 GiB"))?;
    let count = u32::try_from(messages.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many messages"))?;
    let mut bloom = Vec::new();
    if messages.iter().any(|(_, f)| f.is_some()) && bloom_size > 0 {
        bloom = vec![0; bloom_size as usize];
        for (_, filter) in messages {
            bloom_insert(&mut bloom, filter.unwrap_or(b""));
        }
    }
    let start = buf.len();
    buf.resize(start + HEADER, 0);
    buf.extend_from_slice(&bloom);
    let body_start = buf.len();
    for (value, _) in messages {
        buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buf.extend_from_slice(value);
    }
    let header = ChunkHeader {
        kind: KIND_MESSAGES,
        bloom_len: bloom.len() as u8,
        first_offset,
        count,
        timestamp_ms,
        body_len,
        body_crc: crc32fast::hash(&buf[body_start..]),
    };
    let fields = header.fields();
    buf[start..start + HEADER - 4].copy_from_slice(&fields);
    buf[start + HEADER - 4..start + HEADER]
        .copy_from_slice(&header_crc(&fields, &bloom).to_le_bytes());
    Ok((buf.len() - start) as u64)
}

/// The bit positions of `value` in a bloom filter of `bits` bits (double
/// hashing over two crc32s).
fn bloom_bits(value: &[u8], bits: u32) -> impl Iterator<Item = u32> {
    let h1 = crc32fast::hash(value);
    let mut h = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    h.update(value);
    let h2 = h.finalize() | 1;
    (0..BLOOM_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

fn bloom_insert(bloom: &mut [u8], value: &[u8]) {
    let bits = (bloom.len() * 8) as u32;
    for bit in bloom_bits(value, bits) {
        bloom[(bit / 8) as usize] |= 1 << (bit % 8);
    }
}

/// Whether `value` may have been inserted into `bloom` (false positives
/// possible, no false negatives).
pub fn bloom_may_contain(bloom: &[u8], value: &[u8]) -> bool {
    if bloom.is_empty() {
        return false;
    }
    let bits = (bloom.len() * 8) as u32;
    bloom_bits(value, bits).all(|bit| bloom[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads and checks the header and bloom filter of the chunk at `pos`.
pub fn read_header_at(file: &File, pos: u64) -> io::Result<(ChunkHeader, Vec<u8>)> {
    let mut b = [0; HEADER];
    file.read_exact_at(&mut b, pos)?;
    let (header, crc) = decode_header(&b).map_err(|e| invalid(format!("{e} at {pos}")))?;
    let mut bloom = vec![0; header.bloom_len as usize];
    file.read_exact_at(&mut bloom, pos + HEADER as u64)?;
    check_header(&header, crc, &bloom).map_err(|e| invalid(format!("{e} at {pos}")))?;
    Ok((header, bloom))
}

/// Reads and checks the body of the chunk at `pos` whose header is `header`.
pub fn read_body_at(file: &File, pos: u64, header: &ChunkHeader) -> io::Result<Vec<u8>> {
    let mut body = vec![0; header.body_len as usize];
    file.read_exact_at(&mut body, pos + (HEADER + header.bloom_len as usize) as u64)?;
    if crc32fast::hash(&body) != header.body_crc {
        return Err(invalid(format!("chunk body at {pos} fails its checksum")));
    }
    Ok(body)
}

//! Reading a stream: each consumer has a [`StreamReader`], a small cursor
//! (its next offset, an open file and the position of the next chunk), and
//! reads chunks with positioned reads of its own: no shared cache, so a
//! consumer replaying old data cannot push out what live consumers read, and
//! a cursor costs a file handle and a few integers.
//!
//! A read goes chunk by chunk: a chunk wholly before the cursor, or one whose
//! bloom filter rules out the reader's filter values, is skipped after reading
//! only its header; a chunk is read and checked whole otherwise, and delivered
//! from the cursor's offset (reading from the middle of a chunk starts there).

use std::fs::File;
use std::io;

use super::StreamLog;
use super::chunk::{bloom_may_contain, read_body_at, read_header_at, split_body};

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// Its offset.
    pub offset: u64,
    /// Its chunk's timestamp (wall-clock ms).
    pub timestamp_ms: u64,
    /// Its bytes.
    pub value: Vec<u8>,
}

/// How much one read returns at most (at least one message if any is there,
/// even one larger than `max_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Messages.
    pub max_messages: usize,
    /// Bytes of values.
    pub max_bytes: usize,
}

impl ReadLimits {
    /// At most `n` messages, any size.
    pub fn messages(n: usize) -> Self {
        ReadLimits {
            max_messages: n,
            max_bytes: usize::MAX,
        }
    }
}

/// A consumer's filter (`x-stream-filter`, `x-stream-match-unfiltered`):
/// chunks that cannot hold a matching message are skipped unread. Chunk
/// granularity only, as RabbitMQ over AMQP 0-9-1: a chunk that may match is
/// delivered whole, and the consumer's client filters messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// The filter values wanted.
    pub values: Vec<Vec<u8>>,
    /// Whether messages published without a filter value are wanted too.
    pub match_unfiltered: bool,
}

impl ReadFilter {
    /// Whether a chunk with this bloom filter may hold a wanted message. An
    /// empty bloom means no message of the chunk had a filter value.
    pub fn may_match(&self, bloom: &[u8]) -> bool {
        if bloom.is_empty() {
            return self.match_unfiltered;
        }
        (self.match_unfiltered && bloom_may_contain(bloom, b""))
            || self.values.iter().any(|v| bloom_may_contain(bloom, v))
    }
}

/// Where a reader is inside a segment.
#[derive(Debug)]
struct Position {
    /// The segment's first offset (its name).
    segment: u64,
    file: File,
    /// Where the next chunk to look at starts.
    pos: u64,
    /// That chunk's first offset.
    chunk_first: u64,
}

/// A consumer's cursor in a stream (see the module doc).
#[derive(Debug)]
pub struct StreamReader {
    next: u64,
    at: Option<Position>,
}

impl StreamReader {
    /// The offset the next read starts from.
    pub fn next_offset(&self) -> u64 {
        self.next
    }
}

impl StreamLog {
    /// A cursor starting at `offset` (clamped to the stream at each read: an
    /// offset before the first goes to the first, as RabbitMQ's numeric
    /// `x-stream-offset`).
    pub fn reader(&self, offset: u64) -> StreamReader {
        StreamReader {
            next: offset,
            at: None,
        }
    }

    /// Reads committed messages at and after `from` (a one-off cursor).
    pub fn read_from(&self, from: u64, limits: ReadLimits) -> io::Result<Vec<StreamMessage>> {
        self.read(&mut self.reader(from), limits, None)
    }

    /// Index (in `self.segments`) of the segment holding `offset`, or of the
    /// first one after it.
    fn segment_index(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.next_offset <= offset);
        (i < self.segments.len()).then_some(i)
    }

    /// Positions `reader` at the chunk holding its next offset.
    fn position(&self, reader: &mut StreamReader) -> io::Result<bool> {
        let Some(i) = self.segment_index(reader.next) else {
            return Ok(false);
        };
        let segment = &self.segments[i];
        let Some(entry) = segment.seek(reader.next) else {
            return Ok(false);
        };
        reader.next = reader.next.max(entry.offset);
        reader.at = Some(Position {
            segment: segment.first_offset,
            file: File::open(&segment.path)?,
            pos: entry.pos,
            chunk_first: entry.offset,
        });
        Ok(true)
    }

    /// Reads the next committed messages for `reader`, within `limits`,
    /// skipping chunks `filter` rules out; moves the reader past them. Empty
    /// when the reader is at the committed end.
    pub fn read(
        &self,
        reader: &mut StreamReader,
        limits: ReadLimits,
        filter: Option<&ReadFilter>,
    ) -> io::Result<Vec<StreamMessage>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if let Some(front) = self.segments.front()
            && reader.next < front.first_offset
        {
            reader.next = front.first_offset;
            reader.at = None;
        }
        while reader.next < self.durable_next && out.len() < limits.max_messages {
            if !out.is_empty() && bytes >= limits.max_bytes {
                break;
            }
            if reader.at.is_none() && !self.position(reader)? {
                break;
            }
            let Some(at) = reader.at.as_mut() else {
                break;
            };
            let Ok(i) = self
                .segments
                .binary_search_by_key(&at.segment, |s| s.first_offset)
            else {
                reader.at = None; // dropped by retention
                continue;
            };
            if at.chunk_first >= self.segments[i].next_offset {
                // End of this segment: the next one (past any gap).
                match self.segments.get(i + 1) {
                    Some(next) => reader.next = reader.next.max(next.first_offset),
                    None => break,
                }
                reader.at = None;
                continue;
            }
            if at.chunk_first >= self.durable_next {
                break;
            }
            let (header, bloom) = read_header_at(&at.file, at.pos)?;
            let end = header.end_offset();
            let skip = end <= reader.next || filter.is_some_and(|f| !f.may_match(&bloom));
            if !skip {
                let body = read_body_at(&at.file, at.pos, &header)?;
                let values = split_body(&body, header.count)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                for (offset, value) in (header.first_offset..).zip(values) {
                    if offset < reader.next {
                        continue;
                    }
                    let full = out.len() >= limits.max_messages
                        || (!out.is_empty() && bytes >= limits.max_bytes);
                    if full {
                        break;
                    }
                    bytes += value.len();
                    out.push(StreamMessage {
                        offset,
                        timestamp_ms: header.timestamp_ms,
                        value: value.to_vec(),
                    });
                    reader.next = offset + 1;
                }
            }
            if reader.next >= end || skip {
                reader.next = reader.next.max(end);
                at.pos += header.total_len();
                at.chunk_first = end;
            }
        }
        Ok(out)
    }
}

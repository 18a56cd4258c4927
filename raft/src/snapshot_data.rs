//! A snapshot's data as openraft hands it around: a read handle on a file (or, on a node
//! without a data dir, on bytes in memory), never the bytes of a big snapshot themselves.
//!
//! A quorum queue's snapshot carries every body it holds, so it can be larger than the
//! memory a member may take: it is written to its file as it is encoded, sent from there in
//! chunks, received into a file and installed from it (docs/cluster-design.md, step 8).
//! A handle keeps its file open: a newer snapshot renamed over the path leaves the inode
//! an in-flight transfer reads alive until the handle goes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// A read handle on a snapshot's data; clones share the file.
#[derive(Clone)]
pub struct SnapshotData {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Memory(Bytes),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.source {
            Source::Memory(_) => "memory",
            Source::File { .. } => "file",
        };
        write!(f, "SnapshotData({kind}, {} bytes)", self.len())
    }
}

impl SnapshotData {
    /// Data held in memory (nodes without a data dir, small snapshots in tests).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self {
            source: Source::Memory(bytes.into()),
        }
    }

    /// The `len` bytes of `file` from `offset` on; the file must not change while read.
    pub fn from_file(file: File, offset: u64, len: u64) -> Self {
        Self {
            source: Source::File {
                file: Arc::new(file),
                offset,
                len,
            },
        }
    }

    /// The data's size in bytes.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Memory(bytes) => bytes.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader from the start (unbuffered: wrap it in a `BufReader` for small reads).
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            source: self.source.clone(),
            pos: 0,
        }
    }

    /// The whole data in memory: small snapshots only (tests, the metadata group's).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader().read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Reads a [`SnapshotData`] from its start; each reader has its own position.
pub struct SnapshotReader {
    source: Source,
    pos: u64,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &self.source {
            Source::Memory(bytes) => {
                let start = usize::try_from(self.pos)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                n
            }
            Source::File { file, offset, len } => {
                let left = len.saturating_sub(self.pos);
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                // Positional reads: clones of one handle may be read at once.
                let n = file.read_at(&mut buf[..want], offset + self.pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snapshot file shorter than its data",
                    ));
                }
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_range_reads_back_as_written_and_stops_at_its_end() {
        let mut file = tempfile::tempfile().expect("tmp");
        file.write_all(b"headDATA-DATA-DATAtail").expect("write");
        let data = SnapshotData::from_file(file, 4, 14);
        assert_eq!(data.len(), 14);
        assert_eq!(data.to_vec().expect("read"), b"DATA-DATA-DATA");
        let mut small = [0u8; 3];
        let mut reader = data.reader();
        reader.read_exact(&mut small).expect("read");
        assert_eq!(&small, b"DAT");
        assert_eq!(data.clone().to_vec().expect("read"), b"DATA-DATA-DATA");
        let memory = SnapshotData::from_bytes(b"abc".to_vec());
        assert_eq!(memory.to_vec().expect("read"), b"abc");
    }
}

//! A group's current snapshot on disk, so a restarted node restores its state machine.
//!
//! One file `<dir>/current.snap` per group (`<data_dir>/snap/<group>/`): [`MAGIC`], the
//! metadata's length (u32, little endian), the metadata (postcard), then the data to the
//! end of the file. The data is streamed into a temp file as the state machine encodes
//! it, so a snapshot never sits in memory whole; the temp file is fsynced, renamed over
//! the old one, and the directory fsynced, so a crash leaves either the old snapshot or
//! the new one, never half. Temp files a crash left behind are removed at [`SnapshotStore::load`].
//!
//! Files written before (no magic: postcard of the metadata and the data as a byte
//! sequence) still load, marked [`Loaded::legacy`]: their data is laid out as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::snapshot_data::SnapshotData;
use crate::types::SnapshotMeta;

/// The first bytes of a snapshot file in this layout (a legacy file starts with the
/// metadata's postcard, whose first byte is an `Option` tag, 0 or 1).
pub const MAGIC: [u8; 8] = *b"\xffWSNAP02";

/// The largest metadata accepted (a membership of a few nodes is well under this).
const MAX_META: u32 = 16 << 20;

/// How much of a legacy file is read to decode its metadata.
const LEGACY_HEAD: u64 = 1 << 20;

/// Why a snapshot could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not decode.
    #[error("snapshot {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<SnapshotError> for io::Error {
    fn from(e: SnapshotError) -> Self {
        io::Error::other(e)
    }
}

/// A snapshot read back from its file.
#[derive(Debug)]
pub struct Loaded {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// Its data (a handle on the file).
    pub data: SnapshotData,
    /// Written by an earlier version: the data is in the state machine's earlier layout.
    pub legacy: bool,
}

/// Where one group keeps its snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn damaged(path: &Path, reason: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl SnapshotStore {
    /// The snapshot store in `dir` (created on the first save).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The group's snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir.join("current.snap")
    }

    /// Saves a snapshot durably, replacing the previous one: `write` streams the data into
    /// the file (buffered). Answers a handle on the saved data.
    pub fn save(
        &self,
        meta: &SnapshotMeta,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<SnapshotData, SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let tmp = self.dir.join("current.snap.tmp");
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        let meta_bytes = postcard::to_stdvec(meta).map_err(|e| damaged(&tmp, e))?;
        let meta_len = u32::try_from(meta_bytes.len())
            .ok()
            .filter(|&n| n <= MAX_META)
            .ok_or_else(|| damaged(&tmp, "metadata too large"))?;
        let mut out = BufWriter::new(file);
        out.write_all(&MAGIC)
            .and_then(|()| out.write_all(&meta_len.to_le_bytes()))
            .and_then(|()| out.write_all(&meta_bytes))
            .and_then(|()| write(&mut out))
            .map_err(io_at(&tmp))?;
        let file = out.into_inner().map_err(|e| io_at(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_at(&tmp))?;
        let path = self.path();
        std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))?;
        let offset = (MAGIC.len() + 4 + meta_bytes.len()) as u64;
        let len = file.metadata().map_err(io_at(&path))?.len();
        Ok(SnapshotData::from_file(
            file,
            offset,
            len.saturating_sub(offset),
        ))
    }

    /// The saved snapshot, if any. Temp files of a save or a transfer a crash interrupted
    /// are removed first (call it once, before the group runs).
    pub fn load(&self) -> Result<Option<Loaded>, SnapshotError> {
        self.remove_temp_files()?;
        self.open_current()
    }

    /// The saved snapshot, if any, without touching temp files (a save may be under way
    /// elsewhere); only its header is read.
    pub fn open_current(&self) -> Result<Option<Loaded>, SnapshotError> {
        let path = self.path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let size = file.metadata().map_err(io_at(&path))?.len();
        let mut head = [0u8; MAGIC.len() + 4];
        let has_head = size >= head.len() as u64;
        if has_head {
            file.read_exact_at(&mut head, 0).map_err(io_at(&path))?;
        }
        if !has_head || head[..MAGIC.len()] != MAGIC {
            return Self::load_legacy(&path, file, size).map(Some);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[MAGIC.len()..]);
        let meta_len = u32::from_le_bytes(len);
        let offset = head.len() as u64 + u64::from(meta_len);
        if meta_len > MAX_META || offset > size {
            return Err(damaged(&path, "metadata length out of range"));
        }
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact_at(&mut meta, head.len() as u64)
            .map_err(io_at(&path))?;
        let meta: SnapshotMeta = postcard::from_bytes(&meta).map_err(|e| damaged(&path, e))?;
        Ok(Some(Loaded {
            meta,
            data: SnapshotData::from_file(file, offset, size - offset),
            legacy: false,
        }))
    }

    /// A file of the earlier layout: the metadata, the data's length (varint), the data.
    fn load_legacy(path: &Path, file: File, size: u64) -> Result<Loaded, SnapshotError> {
        let mut head = Vec::new();
        (&file)
            .take(LEGACY_HEAD.min(size))
            .read_to_end(&mut head)
            .map_err(io_at(path))?;
        let (meta, rest): (SnapshotMeta, &[u8]) =
            postcard::take_from_bytes(&head).map_err(|e| damaged(path, e))?;
        // A byte sequence's length is a varint, as a u64 is.
        let (len, rest): (u64, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| damaged(path, e))?;
        let offset = (head.len() - rest.len()) as u64;
        if offset.checked_add(len) != Some(size) {
            return Err(damaged(path, "data length does not match the file"));
        }
        Ok(Loaded {
            meta,
            data: SnapshotData::from_file(file, offset, len),
            legacy: true,
        })
    }

    fn remove_temp_files(&self) -> Result<(), SnapshotError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_at(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                tracing::info!(path = %path.display(), "removing an unfinished snapshot file");
                std::fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(())
    }

    /// A new file for a snapshot being received, unlinked at once (only the handle keeps
    /// it): nothing is left behind whatever happens to the transfer.
    pub fn incoming(&self) -> Result<File, SnapshotError> {
        static N: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let path = self.dir.join(format!(
            "incoming-{}.tmp",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io_at(&path))?;
        std::fs::remove_file(&path).map_err(io_at(&path))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn a_saved_snapshot_loads_back_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().join("7"));
        assert!(store.load().expect("load").is_none());
        let meta = SnapshotMeta::default();
        let data: Vec<u8> = (0..100_000u32).map(|n| (n % 253) as u8).collect();
        let saved = store.save(&meta, |w| w.write_all(&data)).expect("save");
        assert_eq!(saved.to_vec().expect("read"), data);
        let loaded = store.load().expect("load").expect("a snapshot");
        assert_eq!(loaded.data.to_vec().expect("read"), data);
        assert_eq!(loaded.meta, meta);
        assert!(!loaded.legacy);
    }

    #[test]
    fn a_half_written_temp_file_is_ignored_and_removed_at_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().join("3"));
        let meta = SnapshotMeta::default();
        store.save(&meta, |w| w.write_all(b"old")).expect("save");
        // A crash during the next save, and one during a transfer.
        std::fs::write(store.dir().join("current.snap.tmp"), b"\xffWSNAP02 torn").expect("w");
        std::fs::write(store.dir().join("incoming-0.tmp"), b"torn").expect("w");
        let loaded = store.load().expect("load").expect("a snapshot");
        assert_eq!(loaded.data.to_vec().expect("read"), b"old");
        let left: Vec<_> = std::fs::read_dir(store.dir())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["current.snap"]);
    }

    #[test]
    fn a_file_of_the_earlier_layout_loads_as_legacy() {
        #[derive(Serialize)]
        struct Stored<'a> {
            meta: &'a SnapshotMeta,
            data: &'a [u8],
        }
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().to_path_buf());
        let meta = SnapshotMeta::default();
        let data: Vec<u8> = (0..5000u32).map(|n| (n % 7) as u8).collect();
        let old = postcard::to_stdvec(&Stored {
            meta: &meta,
            data: &data,
        })
        .expect("encode");
        std::fs::write(dir.path().join("current.snap"), old).expect("write");
        let loaded = store.load().expect("load").expect("a snapshot");
        assert!(loaded.legacy);
        assert_eq!(loaded.meta, meta);
        assert_eq!(loaded.data.to_vec().expect("read"), data);
    }

    #[test]
    fn a_truncated_file_is_damaged_not_a_panic() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().to_path_buf());
        std::fs::write(dir.path().join("current.snap"), b"\x01\x05").expect("write");
        assert!(matches!(store.load(), Err(SnapshotError::Damaged { .. })));
        let mut new = MAGIC.to_vec();
        new.extend_from_slice(&1000u32.to_le_bytes());
        std::fs::write(dir.path().join("current.snap"), new).expect("write");
        assert!(matches!(store.load(), Err(SnapshotError::Damaged { .. })));
    }
}

//! A group's current snapshot on disk, so a restarted node restores its state machine.
//!
//! One file `<dir>/current.snap` per group (`<data_dir>/snap/<group>/`): postcard of the
//! metadata and the data, written to a temp file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old snapshot or the new one, never half.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::{SnapshotData, SnapshotMeta};

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
    #[error("snapshot {path} is damaged: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// postcard's error.
        source: postcard::Error,
    },
}

impl From<SnapshotError> for io::Error {
    fn from(e: SnapshotError) -> Self {
        io::Error::other(e)
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    meta: SnapshotMeta,
    data: SnapshotData,
}

/// [`Stored`] as written: the same encoding (a byte slice is a sequence as a `Vec` is).
#[derive(Serialize)]
struct StoredRef<'a> {
    meta: &'a SnapshotMeta,
    data: &'a [u8],
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

impl SnapshotStore {
    /// The snapshot store in `dir` (created on the first save).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("current.snap")
    }

    /// Saves a snapshot durably, replacing the previous one.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let tmp = self.dir.join("current.snap.tmp");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        // Encoded straight into the file, borrowing the data: a quorum queue's snapshot
        // holds its bodies, and a copy of it (or two) would double the memory it takes.
        let mut out = io::BufWriter::new(file);
        postcard::to_io(&StoredRef { meta, data }, &mut out).map_err(|source| {
            SnapshotError::Decode {
                path: self.path(),
                source,
            }
        })?;
        let file = out.into_inner().map_err(|e| io_at(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_at(&tmp))?;
        let path = self.path();
        std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))
    }

    /// The saved snapshot, if any.
    pub fn load(&self) -> Result<Option<(SnapshotMeta, SnapshotData)>, SnapshotError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let stored: Stored = postcard::from_bytes(&bytes)
            .map_err(|source| SnapshotError::Decode { path, source })?;
        Ok(Some((stored.meta, stored.data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_loads_back_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SnapshotStore::new(dir.path().join("7"));
        assert!(store.load().expect("load").is_none());
        let meta = SnapshotMeta::default();
        let data: Vec<u8> = (0..100_000u32).map(|n| (n % 253) as u8).collect();
        store.save(&meta, &data).expect("save");
        let (loaded_meta, loaded) = store.load().expect("load").expect("a snapshot");
        assert_eq!(loaded, data);
        assert_eq!(loaded_meta, meta);
    }
}

//! A group's current snapshot on disk, so a restarted node restores its state machine.
//!
//! One file `<dir>/current.snap` per group (`<data_dir>/snap/<group>/`): postcard of the
//! metadata and the data, written to a temp file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old snapshot or the new one, never half.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
        let bytes = postcard::to_allocvec(&Stored {
            meta: meta.clone(),
            data: data.to_vec(),
        })
        .map_err(|source| SnapshotError::Decode {
            path: self.path(),
            source,
        })?;
        let tmp = self.dir.join("current.snap.tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        file.write_all(&bytes).map_err(io_at(&tmp))?;
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

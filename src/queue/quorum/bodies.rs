//! The bodies of the messages a quorum queue holds, on one member: the first ones in
//! delivery order in memory (a window of [`Window::messages`] and [`Window::bytes`]), the
//! rest in scratch spill files of this member (`<data_dir>/quorum-bodies/<group>/`), read
//! back as the window empties or when a delivery needs one before that.
//!
//! Which body is where is this member's business only: the replicated state (the fifo) is
//! the same on every member, and the Raft log and snapshots carry every body, so the spill
//! files need no fsync and are not trusted across a restart (the directory is emptied when
//! the store opens; the member rebuilds its bodies from its snapshot and the log after it).
//! A spill file is deleted once none of its bodies is held any more.
//!
//! Ids grow with the log and the fifo delivers in id order (returned messages, all older
//! than the ready ones, first), so "the window" is the lowest ids: once one body is paged,
//! every newer one is paged too, and refills take the lowest paged ids.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::fifo::MsgId;
use crate::message::WireMessage;

/// Spill files are cut at this size, so a drained part of a long queue gives its space
/// back while the rest is still held.
const SPILL_FILE_BYTES: u64 = 64 << 20;

/// Bodies read back into memory per refill (one apply), so one apply never stalls long.
const REFILL_BATCH: usize = 4096;

/// How many bodies a member keeps in memory per quorum queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// At most this many bodies (0: every body is paged).
    pub messages: usize,
    /// At most this many bytes of bodies.
    pub bytes: u64,
}

impl Default for Window {
    /// As classic queues' `transient_window`: 16384 messages, 64 MiB.
    fn default() -> Self {
        Window {
            messages: 16_384,
            bytes: 64 << 20,
        }
    }
}

/// Why a paged body could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Reading its spill file failed.
    #[error("quorum queue body {id} in {path}: {source}")]
    Io {
        /// The message.
        id: MsgId,
        /// The spill file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// What was read does not decode.
    #[error("quorum queue body {id} in {path} is damaged: {source}")]
    Decode {
        /// The message.
        id: MsgId,
        /// The spill file.
        path: PathBuf,
        /// postcard's error.
        source: postcard::Error,
    },
}

/// Where a paged body is.
#[derive(Debug, Clone, Copy)]
struct Place {
    file: u64,
    offset: u64,
    len: u32,
}

/// One spill file.
#[derive(Debug)]
struct SpillFile {
    path: PathBuf,
    /// Positional writes and reads.
    file: File,
    /// Bodies still held in it.
    live: usize,
}

/// The file new paged bodies are appended to.
#[derive(Debug)]
struct Writer {
    file: u64,
    len: u64,
}

/// A member's bodies of one quorum queue.
#[derive(Debug)]
pub struct Bodies {
    /// This store's number in the process (its files' prefix).
    store: u64,
    window: Window,
    /// Where spill files go; `None`: everything stays in memory.
    dir: Option<PathBuf>,
    memory: BTreeMap<MsgId, WireMessage>,
    memory_bytes: u64,
    paged: BTreeMap<MsgId, Place>,
    files: BTreeMap<u64, SpillFile>,
    writer: Option<Writer>,
    next_file: u64,
}

/// The bytes a body counts for in the window.
fn weight(message: &WireMessage) -> u64 {
    (message.body.len()
        + message.properties.len()
        + message.exchange.len()
        + message.routing_key.len()) as u64
}

impl Bodies {
    /// Every body in memory (no spill directory): tests, and nodes without a data dir.
    pub fn in_memory() -> Self {
        Self::new(None, Window::default())
    }

    fn new(dir: Option<PathBuf>, window: Window) -> Self {
        // Each store names its files apart: a group hosted again in the same run (a member
        // removed, then added back) must not share names with its earlier store.
        static STORES: AtomicU64 = AtomicU64::new(0);
        Self {
            store: STORES.fetch_add(1, Ordering::Relaxed),
            window,
            dir,
            memory: BTreeMap::new(),
            memory_bytes: 0,
            paged: BTreeMap::new(),
            files: BTreeMap::new(),
            writer: None,
            next_file: 0,
        }
    }

    /// Bodies past `window` paged to `dir` (what earlier runs left there is deleted at
    /// start, `Storage::open`: scratch, the snapshot and the log carry every body).
    pub fn paged(dir: PathBuf, window: Window) -> Self {
        Self::new(Some(dir), window)
    }

    /// Bodies held (in memory and paged).
    pub fn len(&self) -> usize {
        self.memory.len() + self.paged.len()
    }

    /// No body held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bodies in memory and their bytes.
    pub fn in_memory_count(&self) -> (usize, u64) {
        (self.memory.len(), self.memory_bytes)
    }

    /// Bodies in spill files.
    pub fn paged_count(&self) -> usize {
        self.paged.len()
    }

    /// Spill files open (each on disk).
    pub fn spill_files(&self) -> usize {
        self.files.len()
    }

    /// Whether body `id` is held.
    pub fn contains(&self, id: MsgId) -> bool {
        self.memory.contains_key(&id) || self.paged.contains_key(&id)
    }

    fn fits(&self, size: u64) -> bool {
        self.memory.len() < self.window.messages && self.memory_bytes + size <= self.window.bytes
    }

    /// Holds `message` as body `id` (ids arrive growing): in memory while nothing is
    /// paged and the window has room, else in a spill file. A spill file that cannot be
    /// written (disk full) leaves the body in memory.
    pub fn insert(&mut self, id: MsgId, message: WireMessage) {
        let size = weight(&message);
        if self.dir.is_some() && (!self.paged.is_empty() || !self.fits(size)) {
            match self.page_out(id, &message) {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%id, %error, "cannot page a quorum queue body out; kept in memory");
                }
            }
        }
        self.memory_bytes += size;
        if let Some(old) = self.memory.insert(id, message) {
            self.memory_bytes -= weight(&old);
        }
    }

    fn page_out(&mut self, id: MsgId, message: &WireMessage) -> io::Result<()> {
        let bytes = postcard::to_stdvec(message).map_err(io::Error::other)?;
        let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        if self
            .writer
            .as_ref()
            .is_none_or(|w| w.len >= SPILL_FILE_BYTES)
        {
            self.writer = None;
            self.open_spill_file()?;
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("no spill file"));
        };
        let Some(file) = self.files.get_mut(&writer.file) else {
            return Err(io::Error::other("no spill file"));
        };
        // Unbuffered, at the file's end: a body is placed only once the kernel has it, so
        // a failed write (disk full) loses no earlier body, and reads need no flush. A
        // failed write's bytes are overwritten by the next.
        if let Err(error) = file.file.write_all_at(&bytes, writer.len) {
            if file.live == 0 {
                // A new file nothing went into: it goes (the next write opens another).
                let number = writer.file;
                self.writer = None;
                if let Some(file) = self.files.remove(&number) {
                    let _ = std::fs::remove_file(&file.path);
                }
            }
            return Err(error);
        }
        file.live += 1;
        let place = Place {
            file: writer.file,
            offset: writer.len,
            len,
        };
        writer.len += u64::from(len);
        if let Some(old) = self.paged.insert(id, place) {
            self.forget(old);
        }
        Ok(())
    }

    fn open_spill_file(&mut self) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Err(io::Error::other("no spill directory"));
        };
        std::fs::create_dir_all(dir)?;
        let number = self.next_file;
        let path = dir.join(format!("{}-{number}.spill", self.store));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .read(true)
            .open(&path)?;
        self.next_file += 1;
        self.files.insert(
            number,
            SpillFile {
                path,
                file,
                live: 0,
            },
        );
        self.writer = Some(Writer {
            file: number,
            len: 0,
        });
        Ok(())
    }

    /// One body of `place`'s file is not held any more; the file goes with its last.
    fn forget(&mut self, place: Place) {
        let Some(file) = self.files.get_mut(&place.file) else {
            return;
        };
        file.live = file.live.saturating_sub(1);
        if file.live > 0 {
            return;
        }
        if self.writer.as_ref().is_some_and(|w| w.file == place.file) {
            self.writer = None;
        }
        if let Some(file) = self.files.remove(&place.file)
            && let Err(error) = std::fs::remove_file(&file.path)
        {
            tracing::warn!(path = %file.path.display(), %error, "cannot delete a quorum queue spill file");
        }
    }

    /// Lets go of body `id` (settled, dropped, expired, purged).
    pub fn remove(&mut self, id: MsgId) {
        if let Some(message) = self.memory.remove(&id) {
            self.memory_bytes -= weight(&message);
        } else if let Some(place) = self.paged.remove(&id) {
            self.forget(place);
        }
    }

    /// Body `id`, read back if paged (it stays paged: a delivery needs it once);
    /// `Ok(None)` if it is not held.
    pub fn get(&self, id: MsgId) -> Result<Option<WireMessage>, BodyError> {
        if let Some(message) = self.memory.get(&id) {
            return Ok(Some(message.clone()));
        }
        match self.paged.get(&id).copied() {
            Some(place) => self.read(id, place).map(Some),
            None => Ok(None),
        }
    }

    fn read(&self, id: MsgId, place: Place) -> Result<WireMessage, BodyError> {
        let path = self
            .files
            .get(&place.file)
            .map(|f| f.path.clone())
            .unwrap_or_default();
        let io_error = |source| BodyError::Io {
            id,
            path: path.clone(),
            source,
        };
        let Some(file) = self.files.get(&place.file) else {
            return Err(io_error(io::Error::new(
                io::ErrorKind::NotFound,
                "spill file gone",
            )));
        };
        let mut buf = vec![0; place.len as usize];
        file.file
            .read_exact_at(&mut buf, place.offset)
            .map_err(io_error)?;
        postcard::from_bytes(&buf).map_err(|source| BodyError::Decode {
            id,
            path: path.clone(),
            source,
        })
    }

    /// Reads the lowest paged bodies back into memory once the window is half empty, up
    /// to the window (at most [`REFILL_BATCH`] per call). A read error is logged and
    /// leaves the body paged (its delivery reports it).
    pub fn refill(&mut self) {
        if self.paged.is_empty()
            || self.memory.len() > self.window.messages / 2
            || self.memory_bytes > self.window.bytes / 2
        {
            return;
        }
        for _ in 0..REFILL_BATCH {
            let Some((&id, &place)) = self.paged.first_key_value() else {
                return;
            };
            if !self.fits(u64::from(place.len)) {
                return;
            }
            match self.read(id, place) {
                Ok(message) => {
                    self.paged.remove(&id);
                    self.forget(place);
                    self.memory_bytes += weight(&message);
                    self.memory.insert(id, message);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read a paged quorum queue body back");
                    return;
                }
            }
        }
    }

    /// Every body held, in id order (a snapshot): ids first, bodies read one at a time.
    pub fn ids(&self) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .memory
            .keys()
            .chain(self.paged.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Lets go of every body (a snapshot replaces the state).
    pub fn clear(&mut self) {
        self.memory.clear();
        self.memory_bytes = 0;
        self.paged.clear();
        self.writer = None;
        for (_, file) in std::mem::take(&mut self.files) {
            let _ = std::fs::remove_file(&file.path);
        }
    }
}

impl Drop for Bodies {
    fn drop(&mut self) {
        self.clear();
        if let Some(dir) = &self.dir {
            // Only if empty: another handle of the same queue may have opened it again.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(n: u64) -> WireMessage {
        WireMessage {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from(format!("{n:0>1000}")),
            cc_routed: false,
        }
    }

    fn files_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    #[test]
    fn bodies_past_the_window_are_paged_read_back_and_their_files_deleted() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("7");
        let window = Window {
            messages: 10,
            bytes: 1 << 20,
        };
        let mut bodies = Bodies::paged(dir.clone(), window);
        for n in 0..100 {
            bodies.insert(MsgId(n), message(n));
        }
        assert_eq!(bodies.in_memory_count().0, 10);
        assert_eq!(bodies.paged_count(), 90);
        assert_eq!(files_in(&dir), 1);
        for n in 0..100 {
            let got = bodies.get(MsgId(n)).expect("read").expect("held");
            assert_eq!(got, message(n));
            bodies.remove(MsgId(n));
            bodies.refill();
            assert!(bodies.in_memory_count().0 <= 10);
        }
        assert!(bodies.is_empty());
        assert_eq!(bodies.spill_files(), 0);
        assert_eq!(files_in(&dir), 0, "a drained queue keeps no spill file");
    }

    #[test]
    fn a_byte_window_bounds_memory_too_and_a_zero_window_pages_everything() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut bodies = Bodies::paged(
            tmp.path().join("a"),
            Window {
                messages: 1000,
                bytes: 5000,
            },
        );
        for n in 0..20 {
            bodies.insert(MsgId(n), message(n));
        }
        assert!(bodies.in_memory_count().1 <= 5000);
        assert_eq!(bodies.in_memory_count().0, 4);
        let mut none = Bodies::paged(
            tmp.path().join("b"),
            Window {
                messages: 0,
                bytes: 0,
            },
        );
        none.insert(MsgId(1), message(1));
        none.refill();
        assert_eq!(none.in_memory_count(), (0, 0));
        assert_eq!(none.get(MsgId(1)).expect("read"), Some(message(1)));
    }

    #[test]
    fn a_damaged_spill_file_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        let mut bodies = Bodies::paged(
            dir.clone(),
            Window {
                messages: 0,
                bytes: 0,
            },
        );
        bodies.insert(MsgId(1), message(1));
        assert!(bodies.get(MsgId(1)).is_ok());
        let file = std::fs::read_dir(&dir)
            .expect("dir")
            .next()
            .expect("file")
            .expect("entry")
            .path();
        std::fs::write(&file, b"").expect("truncate");
        assert!(matches!(
            bodies.get(MsgId(1)),
            Err(BodyError::Io { .. } | BodyError::Decode { .. })
        ));
    }

    #[test]
    fn spill_files_are_cut_and_each_goes_when_its_bodies_are_settled() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("c");
        let mut bodies = Bodies::paged(
            dir.clone(),
            Window {
                messages: 0,
                bytes: 0,
            },
        );
        let big = |n: u64| WireMessage {
            body: Bytes::from(vec![n as u8; 1 << 20]),
            ..message(n)
        };
        for n in 0..130 {
            bodies.insert(MsgId(n), big(n));
        }
        assert_eq!(files_in(&dir), 3);
        for n in 0..64 {
            bodies.remove(MsgId(n));
        }
        assert_eq!(files_in(&dir), 2, "the first file's bodies are all settled");
        assert_eq!(bodies.get(MsgId(129)).expect("read"), Some(big(129)));
        drop(bodies);
        assert!(!dir.exists(), "a dropped store leaves nothing");
    }
}

//! Reading a WAL directory without changing it: what replay and the consistency checker share.
//!
//! [`Wal::open`](super::Wal::open) replays with [`list`] and [`read_file`] and then cuts a
//! torn tail; [`scan`] reads the same files the same way, applies the same records to the
//! same [`GroupState`], but writes nothing, so it may run on a dead node's data dir (the
//! fault test's checker) and see exactly the log that node would reopen with.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use openraft::entry::RaftEntry;

use super::record::{self, Body, Scanned};
use super::state::GroupState;
use super::{WalError, io_at};
use crate::types::{Entry, GroupId, LogId, Vote};

/// The sequence numbers of the WAL files in `dir`, oldest first.
pub(super) fn list(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut seqs = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let item = item.map_err(io_at(dir))?;
        if let Some(seq) = item.file_name().to_str().and_then(record::parse_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// One WAL file as read at replay.
pub(super) struct FileRead {
    /// The file.
    pub path: PathBuf,
    /// Its size on disk.
    pub size: u64,
    /// Its readable records and where they end.
    pub scanned: Scanned,
}

impl FileRead {
    /// Whether part of the file is unreadable (a torn tail, or no header at all).
    pub fn torn(&self) -> bool {
        self.scanned.bad_header || self.scanned.good_len < self.size
    }
}

/// Reads file `seq` of `dir`; damage is refused unless the file is the `last` one, where it
/// is a torn tail that replay cuts and a scan ignores.
pub(super) fn read_file(dir: &Path, seq: u64, last: bool) -> Result<FileRead, WalError> {
    let path = record::file_path(dir, seq);
    let bytes = std::fs::read(&path).map_err(io_at(&path))?;
    let scanned = record::scan(&bytes)?;
    let read = FileRead {
        size: bytes.len() as u64,
        path,
        scanned,
    };
    if read.torn() && !last {
        return Err(WalError::Corrupt {
            offset: read.scanned.good_len,
            path: read.path,
        });
    }
    Ok(read)
}

/// One group's log as a WAL directory holds it.
#[derive(Debug, Default, Clone)]
pub struct GroupLog {
    /// The saved vote.
    pub vote: Option<Vote>,
    /// The saved committed id (a lower bound of what was committed).
    pub committed: Option<LogId>,
    /// The last purged id: entries up to it are gone.
    pub purged: Option<LogId>,
    /// Every live entry, by index.
    pub entries: BTreeMap<u64, Entry>,
}

/// A torn tail a scan ignored (replay would cut it).
#[derive(Debug, Clone)]
pub struct Tear {
    /// The file.
    pub path: PathBuf,
    /// Bytes readable.
    pub kept: u64,
    /// Bytes past the readable part.
    pub dropped: u64,
}

/// What [`scan`] read from a WAL directory.
#[derive(Debug, Default, Clone)]
pub struct WalScan {
    /// Every group with any state, by id.
    pub groups: BTreeMap<GroupId, GroupLog>,
    /// The last file's torn tail, if it has one.
    pub tear: Option<Tear>,
}

/// Reads the WAL in `dir` as [`Wal::open`](super::Wal::open) would replay it, read-only.
pub fn scan(dir: &Path) -> Result<WalScan, WalError> {
    let seqs = list(dir)?;
    let mut states: HashMap<GroupId, GroupState> = HashMap::new();
    // The newest entry record at each index; the group state says which of them are live.
    let mut newest: HashMap<(GroupId, u64), Entry> = HashMap::new();
    let mut tear = None;
    for (i, seq) in seqs.iter().copied().enumerate() {
        let read = read_file(dir, seq, i + 1 == seqs.len())?;
        if read.torn() {
            tear = Some(Tear {
                path: read.path.clone(),
                kept: read.scanned.good_len,
                dropped: read.size - read.scanned.good_len,
            });
        }
        for found in read.scanned.records {
            let state = states.entry(found.group).or_default();
            state.apply(&found.body, seq, found.offset, found.len);
            if let Body::Entry(entry) = found.body {
                newest.insert((found.group, entry.index()), entry);
            }
        }
    }
    let mut groups = BTreeMap::new();
    for (group, state) in states {
        let mut entries = BTreeMap::new();
        for (index, loc) in &state.entries {
            let entry = newest
                .remove(&(group, *index))
                .filter(|e| e.log_id() == loc.log_id)
                .ok_or(WalError::Missing {
                    group,
                    index: *index,
                })?;
            entries.insert(*index, entry);
        }
        let log = GroupLog {
            vote: state.vote,
            committed: state.committed,
            purged: state.purged,
            entries,
        };
        groups.insert(group, log);
    }
    Ok(WalScan { groups, tear })
}

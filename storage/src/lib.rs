//! Warren's durable store: definitions (vhosts, exchanges, queues, bindings,
//! users) and the messages of queues, behind the narrow [`Store`] trait so the
//! broker does not know which engine it talks to.
//!
//! The store deals in bytes: the broker encodes its records. Writes are
//! buffered; [`Store::flush`] makes everything written before it durable
//! (fsynced). [`GroupCommit`] turns many writers' "make my write durable" into
//! one flush at a time (group commit).
//!
//! - `hybrid.rs`: the default: definitions in sled, messages in the segment log.
//! - `segments/`: the segment log, queue messages in append-only files.
//! - `sled_store.rs`: everything in sled (the former default, kept to compare).
//! - `commit.rs`: group commit.
//! - `stream/`: the stream log, a stream queue's messages as a segmented,
//!   replayable log read from offsets (not wired into the broker yet).

mod commit;
mod deferred;
mod hybrid;
mod segments;
mod sled_store;
pub mod stream;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use commit::GroupCommit;
pub use commit::{CommitRequester, Durable, FlushHook};
pub use hybrid::HybridStore;
pub use segments::SegmentLog;
pub use sled_store::SledStore;
pub use stream::{
    PendingSync, ReadFilter, ReadLimits, StreamConfig, StreamLog, StreamMessage, StreamReader,
};

/// A queue's id in the store: stable across restarts, never reused.
pub type QueueId = u64;

/// A message's position in its queue.
pub type Seq = u64;

/// A definition record: key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// What failed in the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine reported an error (I/O, corruption).
    #[error("storage engine: {0}")]
    Engine(String),
    /// The store was closed, or its flusher is gone.
    #[error("storage is closed")]
    Closed,
    /// The store holds what its user refuses to open it with, and says why.
    #[error("{0}")]
    Refused(String),
}

/// The kinds of definition records; each is its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Virtual hosts.
    VHost,
    /// Durable exchanges.
    Exchange,
    /// Durable queues.
    Queue,
    /// Bindings between durable things.
    Binding,
    /// Users, permissions and the like, as the broker encodes them.
    Auth,
    /// The broker's own bookkeeping (clean-shutdown marker, ...).
    Meta,
    /// Runtime parameters (shovels), as the broker encodes them.
    Parameter,
    /// Delayed messages, keyed so that key order is due-time order within a
    /// delayed exchange (read a page at a time with
    /// [`Store::definitions_range`]).
    Delayed,
    /// Deduplication ids of durable exchanges, as the broker encodes them.
    Dedup,
    /// Offsets the broker keeps for named stream consumers.
    StreamOffset,
}

impl Kind {
    /// The key space's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VHost => "def/vhost",
            Kind::Exchange => "def/exchange",
            Kind::Queue => "def/queue",
            Kind::Binding => "def/binding",
            Kind::Auth => "def/auth",
            Kind::Meta => "meta",
            Kind::Parameter => "def/parameter",
            Kind::Delayed => "delayed",
            Kind::Dedup => "dedup",
            Kind::StreamOffset => "stream-offset",
        }
    }
}

/// What a store knows of a queue's live messages from a seq on without
/// reading them ([`Store::live_summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSummary {
    /// Live messages with a seq of `from` or more.
    pub count: u64,
    /// Bytes of their values (exact while none of their segments had a
    /// removal, a share of the segment's bytes otherwise).
    pub value_bytes: u64,
    /// OR of the first byte of their segments' values (any record has a flag).
    pub first_or: u8,
    /// AND of the first byte of their segments' values (every record has it).
    pub first_and: u8,
    /// One past the highest seq the queue ever stored.
    pub next_seq: Seq,
}

/// A durable store of definitions and queue messages.
///
/// Every write is buffered until the next [`Store::flush`]; readers see writes at
/// once. Implementations are internally synchronised and cheap to call from
/// under a queue's lock (no call waits for the disk except `flush`).
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes (or replaces) a definition record.
    fn put_definition(&self, kind: Kind, key: &[u8], value: &[u8]) -> Result<(), StorageError>;

    /// Removes a definition record (absent is fine).
    fn remove_definition(&self, kind: Kind, key: &[u8]) -> Result<(), StorageError>;

    /// Writes a definition record that must not be durable before the
    /// messages written ahead of it (a deduplication id and its message): it
    /// is held and written by the next [`Store::flush`], after the messages,
    /// in order with [`Store::remove_definition_after_messages`]. Reads do not
    /// see it until then.
    fn put_definition_after_messages(&self, kind: Kind, key: &[u8], value: &[u8]);

    /// Removes a definition record at the next flush, in order with
    /// [`Store::put_definition_after_messages`].
    fn remove_definition_after_messages(&self, kind: Kind, key: &[u8]);

    /// Every record of a kind, in key order.
    fn definitions(&self, kind: Kind) -> Result<Vec<Record>, StorageError>;

    /// Up to `limit` records of a kind whose keys start with `prefix`, from
    /// the key `from` on (inclusive), in key order: a page of an ordered
    /// index, read without loading the rest.
    fn definitions_range(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StorageError>;

    /// A fresh queue id, never handed out before (also across restarts).
    fn new_queue_id(&self) -> Result<QueueId, StorageError>;

    /// The ids of every queue that has messages (or had, until dropped).
    fn queue_ids(&self) -> Result<Vec<QueueId>, StorageError>;

    /// Stores a message of a queue at `seq`.
    fn put_message(&self, queue: QueueId, seq: Seq, value: &[u8]) -> Result<(), StorageError>;

    /// Removes messages of a queue (absent ones are fine).
    fn remove_messages(&self, queue: QueueId, seqs: &[Seq]) -> Result<(), StorageError>;

    /// Up to `limit` messages of a queue with `seq >= from`, in seq order.
    fn messages(
        &self,
        queue: QueueId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, StorageError>;

    /// A queue's live messages from `from` on, summed without reading them
    /// (a deep queue's recovery); `None` if the store cannot tell that cheaply.
    fn live_summary(
        &self,
        _queue: QueueId,
        _from: Seq,
    ) -> Result<Option<LiveSummary>, StorageError> {
        Ok(None)
    }

    /// Removes a queue's messages, all of them.
    fn drop_queue(&self, queue: QueueId) -> Result<(), StorageError>;

    /// Makes every write made before the call durable (fsync). Blocks.
    fn flush(&self) -> Result<(), StorageError>;

    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64, StorageError>;
}

/// Which engine keeps queue messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Definitions in sled, messages in the segment log (the default).
    #[default]
    Segments,
    /// Everything in sled.
    Sled,
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "segments" => Ok(Engine::Segments),
            "sled" => Ok(Engine::Sled),
            other => Err(format!("unknown storage engine '{other}' (segments, sled)")),
        }
    }
}

/// Opens (creating it if needed) the default store in `dir`.
pub fn open(dir: &Path, cache_bytes: u64) -> Result<Arc<dyn Store>, StorageError> {
    open_engine(dir, cache_bytes, Engine::default())
}

/// Opens (creating it if needed) a store of the given engine in `dir`.
pub fn open_engine(
    dir: &Path,
    cache_bytes: u64,
    engine: Engine,
) -> Result<Arc<dyn Store>, StorageError> {
    Ok(match engine {
        Engine::Segments => Arc::new(HybridStore::open(dir, cache_bytes)?),
        Engine::Sled => Arc::new(SledStore::open(dir, cache_bytes)?),
    })
}

//! The default store: definitions in sled (few, small writes), queue messages
//! in the segment log (many, append-only), under one [`Store`].

use std::path::Path;

use crate::segments::SegmentLog;
use crate::{Kind, LiveSummary, QueueId, Record, Seq, SledStore, StorageError, Store};

/// Definitions in sled at `<dir>`, messages in segment files at `<dir>/messages`.
#[derive(Debug)]
pub struct HybridStore {
    defs: SledStore,
    messages: SegmentLog,
}

impl HybridStore {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let defs = SledStore::open(dir, cache_bytes)?;
        let messages = SegmentLog::open(&dir.join("messages"))?;
        Ok(HybridStore { defs, messages })
    }
}

impl Store for HybridStore {
    fn put_definition(&self, kind: Kind, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.defs.put_definition(kind, key, value)
    }

    fn remove_definition(&self, kind: Kind, key: &[u8]) -> Result<(), StorageError> {
        self.defs.remove_definition(kind, key)
    }

    fn put_definition_after_messages(&self, kind: Kind, key: &[u8], value: &[u8]) {
        self.defs.deferred().put(kind, key, value);
    }

    fn remove_definition_after_messages(&self, kind: Kind, key: &[u8]) {
        self.defs.deferred().remove(kind, key);
    }

    fn definitions(&self, kind: Kind) -> Result<Vec<Record>, StorageError> {
        self.defs.definitions(kind)
    }

    fn definitions_range(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StorageError> {
        self.defs.definitions_range(kind, prefix, from, limit)
    }

    fn new_queue_id(&self) -> Result<QueueId, StorageError> {
        self.defs.new_queue_id()
    }

    fn queue_ids(&self) -> Result<Vec<QueueId>, StorageError> {
        Ok(self.messages.queue_ids())
    }

    fn put_message(&self, queue: QueueId, seq: Seq, value: &[u8]) -> Result<(), StorageError> {
        self.messages.put_message(queue, seq, value)
    }

    fn remove_messages(&self, queue: QueueId, seqs: &[Seq]) -> Result<(), StorageError> {
        self.messages.remove_messages(queue, seqs)
    }

    fn messages(
        &self,
        queue: QueueId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, StorageError> {
        self.messages.messages(queue, from, limit)
    }

    fn live_summary(&self, queue: QueueId, from: Seq) -> Result<Option<LiveSummary>, StorageError> {
        Ok(self.messages.live_summary(queue, from))
    }

    fn drop_queue(&self, queue: QueueId) -> Result<(), StorageError> {
        self.messages.drop_queue(queue)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Messages first: the broker's definitions never depend on them, but
        // a clean-shutdown marker (a definition) must follow its messages.
        // The held definition writes taken before the messages are flushed
        // were handed over after their messages were written, so this flush
        // covers those messages; they go in only once it is done (a
        // deduplication id never outlives its message in a crash). Later
        // ones wait for the next flush.
        let held = self.defs.deferred().take();
        self.messages.flush()?;
        held.apply(&self.defs)?;
        self.defs.flush_db()
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.defs.size_on_disk()? + self.messages.size_on_disk())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, open_engine};

    #[test]
    fn held_definition_writes_wait_for_the_flush_after_their_messages() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = open_engine(dir.path(), 8 << 20, Engine::Segments).expect("open");
            store.put_message(1, 0, b"body").expect("put");
            store.put_definition_after_messages(Kind::Dedup, b"id-1", b"v");
            store.put_definition_after_messages(Kind::Dedup, b"id-2", b"v");
            store.remove_definition_after_messages(Kind::Dedup, b"id-2");
            assert!(
                store.definitions(Kind::Dedup).expect("defs").is_empty(),
                "held"
            );
            // Longer than sled's own flush timer: still not written.
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        {
            let store = open_engine(dir.path(), 8 << 20, Engine::Segments).expect("open");
            assert!(
                store.definitions(Kind::Dedup).expect("defs").is_empty(),
                "a crash before the flush leaves no id without its message"
            );
            store.put_message(1, 1, b"body").expect("put");
            store.put_definition_after_messages(Kind::Dedup, b"id-1", b"v");
            store.flush().expect("flush");
        }
        let store = open_engine(dir.path(), 8 << 20, Engine::Segments).expect("open");
        assert_eq!(
            store.definitions(Kind::Dedup).expect("defs"),
            [(b"id-1".to_vec(), b"v".to_vec())]
        );
        assert_eq!(store.messages(1, 0, 10).expect("read").len(), 1);
    }

    #[test]
    fn definitions_and_messages_live_side_by_side_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let id;
        {
            let store = open_engine(dir.path(), 8 << 20, Engine::Segments).expect("open");
            id = store.new_queue_id().expect("id");
            store
                .put_definition(Kind::Queue, b"/\0q", b"def")
                .expect("put");
            store.put_message(id, 0, b"body").expect("put");
            store.put_message(id, 1, b"gone").expect("put");
            store.remove_messages(id, &[1]).expect("remove");
            store.flush().expect("flush");
            assert!(store.size_on_disk().expect("size") > 0);
        }
        assert!(dir.path().join("messages").join(id.to_string()).is_dir());
        let store = HybridStore::open(dir.path(), 8 << 20).expect("reopen");
        assert_eq!(
            store.definitions(Kind::Queue).expect("defs"),
            [(b"/\0q".to_vec(), b"def".to_vec())]
        );
        assert_eq!(
            store.messages(id, 0, 10).expect("read"),
            [(0, b"body".to_vec())]
        );
        assert_eq!(store.queue_ids().expect("ids"), [id]);
        assert!(store.new_queue_id().expect("id") > id);
        assert_eq!("sled".parse::<Engine>(), Ok(Engine::Sled));
        assert!("btree".parse::<Engine>().is_err());
    }
}

//! The embedded default store, on sled: one tree per definition kind, and one
//! tree of messages keyed by queue id then seq (big-endian, so a queue's
//! messages are one ordered key range).

use std::path::Path;

use sled::{Batch, Db, Tree};

use crate::deferred::Deferred;
use crate::{Kind, QueueId, Record, Seq, StorageError, Store};

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Engine(e.to_string())
    }
}

/// A store in one sled database.
#[derive(Debug)]
pub struct SledStore {
    db: Db,
    messages: Tree,
    /// Writes held for the next flush (messages here are in the same
    /// database, written in order, so applying them later is enough).
    deferred: Deferred,
}

/// A message's key: queue id then seq, both big-endian.
fn message_key(queue: QueueId, seq: Seq) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&queue.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a message key; `None` for a key that is not one (a foreign or damaged record).
fn split_key(key: &[u8]) -> Option<(QueueId, Seq)> {
    let queue = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((queue, seq))
}

impl SledStore {
    /// Opens (creating it if needed) the database in `dir`, with a page cache of
    /// `cache_bytes` (sled's own default is 1 GiB: too much for a broker that
    /// promises bounded memory).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from explicit flushes (group commit); the timer
            // only bounds how much unflushed bookkeeping (acks) a crash can undo.
            .flush_every_ms(Some(200))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let messages = db.open_tree("messages")?;
        Ok(SledStore {
            db,
            messages,
            deferred: Deferred::default(),
        })
    }

    /// The writes held for the next flush (a hybrid store applies them
    /// itself, between its messages' flush and this database's).
    pub(crate) fn deferred(&self) -> &Deferred {
        &self.deferred
    }

    /// Makes the database durable, without the held writes.
    pub(crate) fn flush_db(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    fn tree(&self, kind: Kind) -> Result<Tree, StorageError> {
        Ok(self.db.open_tree(kind.as_str())?)
    }
}

impl Store for SledStore {
    fn put_definition(&self, kind: Kind, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.tree(kind)?.insert(key, value)?;
        Ok(())
    }

    fn remove_definition(&self, kind: Kind, key: &[u8]) -> Result<(), StorageError> {
        self.tree(kind)?.remove(key)?;
        Ok(())
    }

    fn put_definition_after_messages(&self, kind: Kind, key: &[u8], value: &[u8]) {
        self.deferred.put(kind, key, value);
    }

    fn remove_definition_after_messages(&self, kind: Kind, key: &[u8]) {
        self.deferred.remove(kind, key);
    }

    fn definitions(&self, kind: Kind) -> Result<Vec<Record>, StorageError> {
        self.tree(kind)?
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn definitions_range(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StorageError> {
        let start = if from < prefix { prefix } else { from };
        self.tree(kind)?
            .range(start..)
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn new_queue_id(&self) -> Result<QueueId, StorageError> {
        Ok(self.db.generate_id()?)
    }

    fn queue_ids(&self) -> Result<Vec<QueueId>, StorageError> {
        let mut ids = Vec::new();
        let mut from = 0u64;
        // One seek per queue, not a walk over every message.
        while let Some(item) = self.messages.range(message_key(from, 0)..).next() {
            let (key, _) = item?;
            let Some((queue, _)) = split_key(&key) else {
                break;
            };
            ids.push(queue);
            match queue.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(ids)
    }

    fn put_message(&self, queue: QueueId, seq: Seq, value: &[u8]) -> Result<(), StorageError> {
        self.messages.insert(message_key(queue, seq), value)?;
        Ok(())
    }

    fn remove_messages(&self, queue: QueueId, seqs: &[Seq]) -> Result<(), StorageError> {
        if let [seq] = seqs {
            self.messages.remove(message_key(queue, *seq))?;
            return Ok(());
        }
        let mut batch = Batch::default();
        for &seq in seqs {
            batch.remove(&message_key(queue, seq));
        }
        self.messages.apply_batch(batch)?;
        Ok(())
    }

    fn messages(
        &self,
        queue: QueueId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, StorageError> {
        let end = message_key(queue, u64::MAX);
        let mut out = Vec::new();
        for item in self.messages.range(message_key(queue, from)..=end) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if let Some((_, seq)) = split_key(&key) {
                out.push((seq, value.to_vec()));
            }
        }
        Ok(out)
    }

    fn drop_queue(&self, queue: QueueId) -> Result<(), StorageError> {
        let range = message_key(queue, 0)..=message_key(queue, u64::MAX);
        loop {
            // In slices, so dropping a deep queue does not build one giant batch.
            let mut batch = Batch::default();
            let mut n = 0;
            for item in self.messages.range(range.clone()).take(10_000) {
                let (key, _) = item?;
                batch.remove(key);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.messages.apply_batch(batch)?;
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Messages live in this database, written before their held
        // records were handed over: applying them now keeps the order.
        self.deferred.take().apply(self)?;
        self.flush_db()
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.db.size_on_disk()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 8 << 20).expect("open");
        (dir, store)
    }

    #[test]
    fn messages_come_back_in_seq_order_per_queue() {
        let (_dir, store) = store();
        for seq in [5u64, 1, 300, 2] {
            store.put_message(7, seq, &seq.to_le_bytes()).expect("put");
        }
        store.put_message(8, 0, b"other").expect("put");
        store.put_message(6, 9, b"other").expect("put");
        let seqs: Vec<_> = store
            .messages(7, 0, 100)
            .expect("scan")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seqs, [1, 2, 5, 300]);
        let page: Vec<_> = store
            .messages(7, 2, 2)
            .expect("scan")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(page, [2, 5]);
        assert_eq!(store.queue_ids().expect("ids"), [6, 7, 8]);
    }

    #[test]
    fn removed_and_dropped_messages_are_gone() {
        let (_dir, store) = store();
        for seq in 0..25_000 {
            store.put_message(1, seq, b"m").expect("put");
        }
        store.put_message(2, 0, b"kept").expect("put");
        store.remove_messages(1, &[0, 1, 7]).expect("remove");
        assert_eq!(store.messages(1, 0, 1).expect("scan")[0].0, 2);
        store.drop_queue(1).expect("drop");
        assert!(store.messages(1, 0, 10).expect("scan").is_empty());
        assert_eq!(store.queue_ids().expect("ids"), [2]);
    }

    #[test]
    fn a_range_reads_one_prefix_a_page_at_a_time_in_key_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 8 << 20).expect("open");
        for key in [&b"a\x03"[..], b"b\x01", b"a\x01", b"a\x02", b"c"] {
            store.put_definition(Kind::Delayed, key, key).expect("put");
        }
        let keys = |prefix: &[u8], from: &[u8], limit| -> Vec<Vec<u8>> {
            store
                .definitions_range(Kind::Delayed, prefix, from, limit)
                .expect("range")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(b"a", b"", 2), [b"a\x01".to_vec(), b"a\x02".to_vec()]);
        assert_eq!(
            keys(b"a", b"a\x02", 10),
            [b"a\x02".to_vec(), b"a\x03".to_vec()]
        );
        assert_eq!(keys(b"b", b"", 10), [b"b\x01".to_vec()]);
        assert!(keys(b"d", b"", 10).is_empty());
    }

    #[test]
    fn flushed_writes_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id;
        {
            let store = SledStore::open(dir.path(), 8 << 20).expect("open");
            id = store.new_queue_id().expect("id");
            store
                .put_definition(Kind::Queue, b"/\0q", b"def")
                .expect("put");
            store.put_message(id, 3, b"body").expect("put");
            store.flush().expect("flush");
        }
        let store = SledStore::open(dir.path(), 8 << 20).expect("reopen");
        assert_eq!(
            store.definitions(Kind::Queue).expect("defs"),
            [(b"/\0q".to_vec(), b"def".to_vec())]
        );
        assert_eq!(
            store.messages(id, 0, 10).expect("scan"),
            [(3, b"body".to_vec())]
        );
        assert!(store.new_queue_id().expect("id") > id);
    }
}

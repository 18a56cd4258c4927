//! Definition writes that must not become durable before the messages
//! written ahead of them: held in order and applied at the next flush, after
//! the messages are flushed and before the definitions are.

use parking_lot::Mutex;

use crate::{Kind, StorageError, Store};

/// One held write.
#[derive(Debug)]
enum Op {
    Put(Kind, Vec<u8>, Vec<u8>),
    Remove(Kind, Vec<u8>),
}

/// The writes held until the next flush, in the order they were made.
#[derive(Debug, Default)]
pub(crate) struct Deferred(Mutex<Vec<Op>>);

impl Deferred {
    pub fn put(&self, kind: Kind, key: &[u8], value: &[u8]) {
        self.0
            .lock()
            .push(Op::Put(kind, key.to_vec(), value.to_vec()));
    }

    pub fn remove(&self, kind: Kind, key: &[u8]) {
        self.0.lock().push(Op::Remove(kind, key.to_vec()));
    }

    /// Takes the writes held so far (made after their messages were written).
    pub fn take(&self) -> Held {
        Held(std::mem::take(&mut *self.0.lock()))
    }
}

/// Writes taken from [`Deferred`], to apply once their messages are durable.
#[derive(Debug)]
pub(crate) struct Held(Vec<Op>);

impl Held {
    /// Applies them to `defs`, in order.
    pub fn apply(self, defs: &dyn Store) -> Result<(), StorageError> {
        for op in self.0 {
            match op {
                Op::Put(kind, key, value) => defs.put_definition(kind, &key, &value)?,
                Op::Remove(kind, key) => defs.remove_definition(kind, &key)?,
            }
        }
        Ok(())
    }
}

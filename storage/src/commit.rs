//! Group commit: writers ask for durability, one flusher thread flushes for all
//! of them at once, and batches the requests that arrive while it flushes.
//!
//! The flushed target is any [`Durable`]: every [`Store`] is one (the broker's
//! use), and so is the Raft crate's write-ahead log, which runs its own
//! instance so Raft latency never waits behind a store flush.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::{StorageError, Store};

/// What a group commit makes durable: a store, or any other log with a flush.
pub trait Durable: Send + Sync {
    /// Makes everything written so far durable (fsynced).
    fn flush(&self) -> Result<(), StorageError>;
}

impl<S: Store + ?Sized> Durable for S {
    fn flush(&self) -> Result<(), StorageError> {
        Store::flush(self)
    }
}

/// Something else a group commit makes durable besides the store (a stream
/// queue's log): flushed by the flusher thread before the store, in every
/// group commit, so a generation covers it too.
pub trait FlushHook: Send + Sync {
    /// Makes what was written so far durable.
    fn flush(&self) -> Result<(), StorageError>;
}

/// The flusher's bookkeeping.
#[derive(Default)]
struct Requests {
    /// The newest generation asked for.
    requested: u64,
    /// Set on drop: the flusher does a last flush and ends.
    closing: bool,
    /// Flushed with the store; dropped ones are forgotten.
    hooks: Vec<Weak<dyn FlushHook>>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("requested", &self.requested)
            .field("closing", &self.closing)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    /// The newest generation known durable; `None` once a flush failed, so
    /// waiters learn that their writes may not be durable.
    durable: watch::Sender<Option<u64>>,
}

/// One flusher for a store: [`GroupCommit::request`] then
/// [`GroupCommit::wait`] makes every write made before the request durable.
#[derive(Debug)]
pub struct GroupCommit {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread for `target` (a store, or any [`Durable`]).
    pub fn start<D: Durable + ?Sized + 'static>(target: Arc<D>) -> Self {
        Self::start_named(target, "warren-flusher")
    }

    /// As [`start`](Self::start), with the flusher thread named `name`.
    pub fn start_named<D: Durable + ?Sized + 'static>(target: Arc<D>, name: &str) -> Self {
        let (durable, _) = watch::channel(Some(0));
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            durable,
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || flush_loop(&shared, target.as_ref()))
        };
        let flusher = match flusher {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(%error, name, "cannot start the storage flusher");
                shared.durable.send_replace(None);
                None
            }
        };
        GroupCommit { shared, flusher }
    }

    /// Asks for the writes made so far to become durable; returns the
    /// generation to [`wait`](Self::wait) for.
    pub fn request(&self) -> u64 {
        self.requester().request()
    }

    /// A handle that asks for group commits without owning the flusher: what
    /// a [`FlushHook`] may keep (the flusher thread may drop the last
    /// reference to a hook, which must not be the one that joins it).
    pub fn requester(&self) -> CommitRequester {
        CommitRequester {
            shared: self.shared.clone(),
        }
    }

    /// Adds `hook` to every later group commit, until it is dropped.
    pub fn add_hook(&self, hook: Weak<dyn FlushHook>) {
        self.shared.requests.lock().hooks.push(hook);
    }

    /// Waits until `generation` is durable.
    pub async fn wait(&self, generation: u64) -> Result<(), StorageError> {
        let mut durable = self.shared.durable.subscribe();
        let reached = durable
            .wait_for(|d| d.is_none_or(|d| d >= generation))
            .await
            .map_err(|_| StorageError::Closed)?;
        match *reached {
            Some(_) => Ok(()),
            None => Err(StorageError::Closed),
        }
    }

    /// Makes every write made so far durable.
    pub async fn commit(&self) -> Result<(), StorageError> {
        let generation = self.request();
        self.wait(generation).await
    }

    /// Whether `generation` is already durable (no need to wait).
    pub fn is_durable(&self, generation: u64) -> bool {
        self.shared
            .durable
            .borrow()
            .is_some_and(|d| d >= generation)
    }
}

/// Asks a [`GroupCommit`] for flushes ([`GroupCommit::requester`]).
#[derive(Debug, Clone)]
pub struct CommitRequester {
    shared: Arc<Shared>,
}

impl CommitRequester {
    /// As [`GroupCommit::request`].
    pub fn request(&self) -> u64 {
        let mut requests = self.shared.requests.lock();
        requests.requested += 1;
        self.shared.wake.notify_one();
        requests.requested
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.requests.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

fn flush_loop<D: Durable + ?Sized>(shared: &Shared, durable: &D) {
    let mut done = 0;
    loop {
        let (target, closing, hooks) = {
            let mut requests = shared.requests.lock();
            while requests.requested == done && !requests.closing {
                shared.wake.wait(&mut requests);
            }
            requests.hooks.retain(|h| h.strong_count() > 0);
            let hooks: Vec<Arc<dyn FlushHook>> =
                requests.hooks.iter().filter_map(Weak::upgrade).collect();
            (requests.requested, requests.closing, hooks)
        };
        // Everything written before `target` was requested is in this flush.
        let flushed = hooks
            .iter()
            .try_for_each(|hook| hook.flush())
            .and_then(|()| durable.flush());
        drop(hooks);
        match flushed {
            Ok(()) => {
                done = target;
                shared.durable.send_replace(Some(target));
            }
            Err(error) => {
                // Waiters must not be told their messages are safe.
                tracing::error!(%error, "storage flush failed");
                shared.durable.send_replace(None);
                return;
            }
        }
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledStore;

    #[tokio::test]
    async fn a_committed_write_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store: Arc<dyn Store> =
                Arc::new(SledStore::open(dir.path(), 8 << 20).expect("open"));
            let commit = GroupCommit::start(store.clone());
            store.put_message(1, 1, b"a").expect("put");
            let first = commit.request();
            store.put_message(1, 2, b"b").expect("put");
            let second = commit.request();
            commit.wait(second).await.expect("durable");
            assert!(commit.is_durable(first));
            assert!(!commit.is_durable(second + 1));
        }
        let store = SledStore::open(dir.path(), 8 << 20).expect("reopen");
        assert_eq!(store.messages(1, 0, 10).expect("scan").len(), 2);
    }
}

#[cfg(test)]
mod durable_tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A target that only counts its flushes.
    #[derive(Default)]
    struct Counter(AtomicU64);

    impl Durable for Counter {
        fn flush(&self) -> Result<(), StorageError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn any_durable_target_is_flushed() {
        let target = Arc::new(Counter::default());
        let commit = GroupCommit::start_named(target.clone(), "test-flusher");
        commit.commit().await.expect("durable");
        assert!(target.0.load(Ordering::SeqCst) >= 1);
    }
}

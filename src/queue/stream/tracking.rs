//! Named stream consumers (`x-stream-consumer-name`, Warren's own): the
//! broker keeps each name's offset, as Kafka keeps a consumer group's, so a
//! consumer that comes back resumes where the last one of its name stopped.
//!
//! - One consumer per name is active; others with the same name wait, and
//!   the first of them takes over when it goes (a hot standby).
//! - The kept offset is the first delivery not yet acked, else the next
//!   offset the active consumer will look at: acks in any order never move
//!   it past a message the client has not acked (at least once).
//! - Offsets are written to the store (`Kind::StreamOffset`: the stream's id,
//!   then the name; the offset as 8 bytes) by the stream's flush hook, in the
//!   group commit after they changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use warren_storage::{Kind, QueueId, Store};

use super::StreamConsumer;

/// One name's state.
#[derive(Debug, Default)]
struct Tracked {
    /// The offset last written to the store.
    stored: Option<u64>,
    /// Where the name resumes while no consumer of it is active.
    position: u64,
    active: Option<Arc<StreamConsumer>>,
    waiting: Vec<Arc<StreamConsumer>>,
    /// The active consumer's deliveries not acked yet.
    outstanding: BTreeSet<u64>,
}

impl Tracked {
    fn is_active(&self, c: &Arc<StreamConsumer>) -> bool {
        self.active.as_ref().is_some_and(|a| Arc::ptr_eq(a, c))
    }

    /// The offset to keep now.
    fn current(&self) -> u64 {
        match &self.active {
            Some(c) => self
                .outstanding
                .first()
                .copied()
                .unwrap_or_else(|| c.offset()),
            None => self.position,
        }
    }
}

/// A stream's named consumers.
#[derive(Debug, Default)]
pub(super) struct Tracking {
    names: HashMap<String, Tracked>,
}

fn key(id: QueueId, name: &str) -> Vec<u8> {
    let mut key = id.to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

impl Tracking {
    /// The offsets stored for stream `id`.
    pub fn load(store: &dyn Store, id: QueueId) -> Self {
        let prefix = id.to_be_bytes();
        let records = match store.definitions(Kind::StreamOffset) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot read stored stream offsets");
                Vec::new()
            }
        };
        let mut names = HashMap::new();
        for (k, v) in records {
            let (Some(name), Ok(offset)) =
                (k.strip_prefix(&prefix), <[u8; 8]>::try_from(v.as_slice()))
            else {
                continue;
            };
            let offset = u64::from_be_bytes(offset);
            names.insert(
                String::from_utf8_lossy(name).into_owned(),
                Tracked {
                    stored: Some(offset),
                    position: offset,
                    ..Default::default()
                },
            );
        }
        Tracking { names }
    }

    /// A consumer of `name` attaches, asking to start at `start`. Returns
    /// where it resumes if the name has an offset; it waits (inactive) if
    /// another consumer of the name is active.
    pub fn attach(&mut self, name: &str, c: &Arc<StreamConsumer>, start: u64) -> Option<u64> {
        match self.names.get_mut(name) {
            Some(t) if t.active.is_some() => {
                t.waiting.push(c.clone());
                None
            }
            Some(t) => {
                t.active = Some(c.clone());
                Some(t.position)
            }
            None => {
                self.names.insert(
                    name.to_owned(),
                    Tracked {
                        position: start,
                        active: Some(c.clone()),
                        ..Default::default()
                    },
                );
                None
            }
        }
    }

    /// Whether `c` is its name's active consumer.
    pub fn is_active(&self, c: &Arc<StreamConsumer>) -> bool {
        c.name()
            .and_then(|n| self.names.get(n))
            .is_some_and(|t| t.is_active(c))
    }

    /// `c` is delivering `offset`.
    pub fn delivered(&mut self, c: &Arc<StreamConsumer>, offset: u64) {
        if let Some(t) = c.name().and_then(|n| self.names.get_mut(n))
            && t.is_active(c)
        {
            t.outstanding.insert(offset);
        }
    }

    /// `c`'s delivery of `offset` was acked (or never went out).
    pub fn acked(&mut self, c: &Arc<StreamConsumer>, offset: u64) {
        if let Some(t) = c.name().and_then(|n| self.names.get_mut(n))
            && t.is_active(c)
        {
            t.outstanding.remove(&offset);
        }
    }

    /// `c` leaves. Returns the consumer that takes over its name, if any,
    /// moved to where `c` stopped.
    pub fn detach(&mut self, c: &Arc<StreamConsumer>) -> Option<Arc<StreamConsumer>> {
        let t = self.names.get_mut(c.name()?)?;
        if !t.is_active(c) {
            t.waiting.retain(|w| !Arc::ptr_eq(w, c));
            return None;
        }
        t.position = t.current();
        t.outstanding.clear();
        t.active = None;
        if t.waiting.is_empty() {
            return None;
        }
        let next = t.waiting.remove(0);
        next.start_at(t.position);
        t.active = Some(next.clone());
        Some(next)
    }

    /// The kept offset of every name (the management API).
    pub fn offsets(&self) -> Vec<(String, u64, bool)> {
        let mut all: Vec<_> = self
            .names
            .iter()
            .map(|(n, t)| (n.clone(), t.current(), t.active.is_some()))
            .collect();
        all.sort();
        all
    }

    /// Writes the offsets that moved since they were last written.
    pub fn write_changed(&mut self, store: &dyn Store, id: QueueId) {
        for (name, t) in &mut self.names {
            let now = t.current();
            if t.stored == Some(now) {
                continue;
            }
            match store.put_definition(Kind::StreamOffset, &key(id, name), &now.to_be_bytes()) {
                Ok(()) => t.stored = Some(now),
                Err(error) => tracing::error!(%error, "cannot store a stream consumer's offset"),
            }
        }
    }

    /// Removes every stored offset of stream `id` (it is deleted).
    pub fn forget_all(&mut self, store: &dyn Store, id: QueueId) {
        for name in self.names.keys() {
            if let Err(error) = store.remove_definition(Kind::StreamOffset, &key(id, name)) {
                tracing::error!(%error, "cannot remove a stream consumer's offset");
            }
        }
        self.names.clear();
    }
}

//! Recovery at start, above both the store (`durable`) and the live objects
//! (`vhost`, `queue`): vhosts, then durable exchanges, then durable queues with
//! their messages, then the bindings whose ends both came back. What the store
//! holds for anything else (transient queues' paged messages) is dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use warren_storage::{Kind, StorageError};

use crate::dedup::{StoredEntry, now_ms};
use crate::durable::Storage;
use crate::durable::records::{BindingRecord, ExchangeRecord, QueueRecord, split_resource_key};
use crate::vhost::exchanges::parse_type;
use crate::vhost::{ExchangeSpec, VHost};

/// Rebuilds the vhosts in `vhosts` (which holds the default one) from the store; answers
/// whether the last run shut down cleanly.
pub fn recover(
    storage: &Arc<Storage>,
    vhosts: &DashMap<String, Arc<VHost>>,
) -> Result<bool, StorageError> {
    let started = Instant::now();
    let clean = storage.take_clean_shutdown()?;
    let store = storage.store();
    let vhost = |name: &str| -> Arc<VHost> {
        vhosts
            .entry(name.to_owned())
            .or_insert_with(|| VHost::new(name, storage.clone()))
            .clone()
    };
    for (key, _) in store.definitions(Kind::VHost)? {
        if let Ok(name) = String::from_utf8(key) {
            vhost(&name);
        }
    }
    if storage.definitions_replicated() {
        // A cluster node: the metadata log brings exchanges, queues and bindings back, and
        // each queue living here reads its messages when its declare is applied again; so
        // nothing in the store is an orphan yet.
        return Ok(clean);
    }
    for (key, value) in store.definitions(Kind::Exchange)? {
        let (Some((v, name)), Some(record)) =
            (split_resource_key(&key), ExchangeRecord::decode(&value))
        else {
            tracing::error!("skipping an unreadable stored exchange");
            continue;
        };
        let Ok((kind, delayed)) = parse_type(&record.kind, &record.arguments) else {
            tracing::error!(
                exchange = name,
                kind = record.kind,
                "skipping a stored exchange of unknown type"
            );
            continue;
        };
        vhost(&v).restore_exchange(
            &name,
            ExchangeSpec {
                kind,
                durable: true,
                auto_delete: record.auto_delete,
                internal: record.internal,
                arguments: record.arguments,
                delayed,
            },
        );
    }
    restore_dedup(store, vhosts)?;
    let mut live = HashSet::new();
    let mut messages = 0;
    for (key, value) in store.definitions(Kind::Queue)? {
        let (Some((v, name)), Some(record)) =
            (split_resource_key(&key), QueueRecord::decode(&value))
        else {
            tracing::error!("skipping an unreadable stored queue");
            continue;
        };
        live.insert(record.id);
        let vhost = vhost(&v);
        vhost.restore_queue(&name, record, clean);
        if let Some(queue) = vhost.queue(&name) {
            messages += queue.message_count() as u64;
        }
    }
    for (key, _) in store.definitions(Kind::Binding)? {
        match BindingRecord::decode(&key) {
            Some(record) => vhost(&record.vhost.clone()).restore_binding(record),
            None => tracing::error!("skipping an unreadable stored binding"),
        }
    }
    for id in store.queue_ids()? {
        if !live.contains(&id) {
            store.drop_queue(id)?;
        }
    }
    remove_orphan_streams(storage, store, &live)?;
    store.flush()?;
    tracing::info!(
        clean,
        queues = live.len(),
        messages,
        elapsed = ?started.elapsed(),
        "recovered durable state"
    );
    Ok(clean)
}

/// Removes the logs and kept offsets of streams whose queue is gone (deleted
/// while the broker went down before it could remove them).
fn remove_orphan_streams(
    storage: &Storage,
    store: &dyn warren_storage::Store,
    live: &HashSet<u64>,
) -> Result<(), StorageError> {
    let dir = storage.stream_dir(0);
    if let Some(streams) = dir.parent()
        && let Ok(entries) = std::fs::read_dir(streams)
    {
        for entry in entries.flatten() {
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !live.contains(&id)) {
                tracing::warn!(dir = %entry.path().display(), "removing the log of a deleted stream");
                if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                    tracing::error!(%error, "cannot remove a deleted stream's log");
                }
            }
        }
    }
    for (key, _) in store.definitions(Kind::StreamOffset)? {
        let id = key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
        if id.is_some_and(|id| !live.contains(&u64::from_be_bytes(id))) {
            store.remove_definition(Kind::StreamOffset, &key)?;
        }
    }
    Ok(())
}

/// Puts back the deduplication ids of durable exchanges, oldest first; the
/// records of exchanges that are gone (or no longer deduplicate) are removed.
fn restore_dedup(
    store: &dyn warren_storage::Store,
    vhosts: &DashMap<String, Arc<VHost>>,
) -> Result<(), StorageError> {
    let mut entries = Vec::new();
    for (key, value) in store.definitions(Kind::Dedup)? {
        match StoredEntry::decode(&key, &value) {
            Some(entry) => entries.push(entry),
            None => store.remove_definition(Kind::Dedup, &key)?,
        }
    }
    entries.sort_by_key(|e| e.generation);
    let now = now_ms();
    for entry in entries {
        let key = entry.record_key();
        let vhost = vhosts.get(&entry.vhost).map(|v| v.clone());
        if !vhost.is_some_and(|v| v.restore_dedup_entry(entry, now)) {
            store.remove_definition(Kind::Dedup, &key)?;
        }
    }
    Ok(())
}

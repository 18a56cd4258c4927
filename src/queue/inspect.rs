//! Read-only views of a queue for the management API and metrics.

use std::sync::Arc;

use super::kind::Backend;
use super::{Consumer, Queue};
use crate::error::AmqpError;

impl Queue {
    /// RabbitMQ's conditions of queue.delete: 406 `... in use` while it has consumers
    /// (`if_unused`), `... not empty` while it has ready messages (`if_empty`).
    pub fn check_deletable(
        self: &Arc<Self>,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<(), AmqpError> {
        let consumers = if if_unused { self.consumer_count() } else { 0 };
        let messages = if if_empty { self.message_count() } else { 0 };
        deletable(&self.describe(), if_unused, if_empty, consumers, messages)
    }
}

/// queue.delete's conditions on a queue (`describe`) with these consumers and ready
/// messages: RabbitMQ's 406 when one fails.
pub fn deletable(
    describe: &str,
    if_unused: bool,
    if_empty: bool,
    consumers: u32,
    messages: u32,
) -> Result<(), AmqpError> {
    if if_unused && consumers > 0 {
        return Err(AmqpError::precondition_failed(format!("{describe} in use")));
    }
    if if_empty && messages > 0 {
        return Err(AmqpError::precondition_failed(format!(
            "{describe} not empty"
        )));
    }
    Ok(())
}

/// A queue's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Ready messages.
    pub messages_ready: u64,
    /// Delivered, not yet acknowledged.
    pub messages_unacknowledged: u64,
    /// Body bytes of the ready messages.
    pub message_bytes_ready: u64,
    /// Body bytes of the unacknowledged messages.
    pub message_bytes_unacknowledged: u64,
    /// Attached consumers.
    pub consumers: u64,
    /// Waiting for a due time (delayed retries, `x-opt-delivery-time`).
    pub messages_delayed: u64,
    /// Body bytes of the waiting messages.
    pub message_bytes_delayed: u64,
    /// Ready messages on disk only (RabbitMQ's `messages_paged_out`).
    pub messages_paged_out: u64,
    /// Body bytes of those (RabbitMQ's `message_bytes_paged_out`).
    pub message_bytes_paged_out: u64,
    /// The `timestamp` property of the next message to deliver (seconds),
    /// RabbitMQ's `head_message_timestamp`.
    pub head_message_timestamp: Option<u64>,
    /// When the next message to deliver arrived (wall-clock ms).
    pub head_arrived_ms: Option<u64>,
    /// A consumer could take a message now, or none waits (the queue is not
    /// held back by its consumers): one sample of consumer capacity.
    pub consumers_keep_up: bool,
}

impl QueueStats {
    /// Every message the queue holds: ready, unacknowledged and waiting
    /// (RabbitMQ's `messages`, which counts a quorum queue's delayed ones).
    pub fn messages(&self) -> u64 {
        self.messages_ready + self.messages_unacknowledged + self.messages_delayed
    }

    /// Body bytes of every message the queue holds.
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes_ready + self.message_bytes_unacknowledged + self.message_bytes_delayed
    }

    /// Messages held in memory (RabbitMQ's `messages_ram`).
    pub fn messages_ram(&self) -> u64 {
        self.messages().saturating_sub(self.messages_paged_out)
    }

    /// Body bytes held in memory (RabbitMQ's `message_bytes_ram`).
    pub fn message_bytes_ram(&self) -> u64 {
        self.message_bytes()
            .saturating_sub(self.message_bytes_paged_out)
    }
}

impl Queue {
    /// Its counters now.
    pub fn stats(&self) -> QueueStats {
        let state = match &self.backend {
            Backend::Classic(state) => state,
            Backend::Stream(stream) => {
                // RabbitMQ counts every message of a stream ready, none unacked.
                let figures = stream.stats();
                let consumers = stream.consumers().len() as u64;
                return QueueStats {
                    messages_ready: figures.messages,
                    message_bytes_ready: figures.size_bytes,
                    consumers,
                    consumers_keep_up: consumers > 0,
                    ..QueueStats::default()
                };
            }
            // Its home has the figures.
            Backend::Remote(_) => return QueueStats::default(),
            Backend::Quorum(quorum) => return Queue::quorum_stats(quorum),
        };
        let st = state.lock();
        let (paged, paged_bytes) = st.ready.paged_out();
        QueueStats {
            messages_ready: st.ready.len() as u64,
            messages_unacknowledged: st.outstanding.len() as u64,
            message_bytes_ready: st.ready.bytes(),
            message_bytes_unacknowledged: st
                .outstanding
                .values()
                .map(|e| e.message.body_size() as u64)
                .sum(),
            consumers: st.consumers.len() as u64,
            messages_delayed: st.waiting.len() as u64,
            message_bytes_delayed: st.waiting.bytes(),
            messages_paged_out: paged,
            message_bytes_paged_out: paged_bytes,
            head_message_timestamp: st
                .ready
                .head()
                .and_then(|e| *e.message.properties.timestamp()),
            head_arrived_ms: st.ready.head().map(|e| e.arrived_ms),
            consumers_keep_up: !st.consumers.is_empty()
                && (st.ready.is_empty() || st.consumers.can_deliver()),
        }
    }

    /// Samples its counters, lengths and consumer capacity into its history
    /// (the statistics ticker); returns the counters it read.
    pub fn sample(&self, at_ms: u64) -> QueueStats {
        let stats = self.stats();
        let mut values = self.counters.values().to_vec();
        values.extend([
            stats.messages(),
            stats.messages_ready,
            stats.messages_unacknowledged,
            u64::from(stats.consumers_keep_up),
        ]);
        self.history.push(at_ms, values);
        stats
    }

    /// Ids in its deduplication cache and the cache's bound (`None`: off).
    pub fn dedup_cache_info(&self) -> Option<(usize, usize)> {
        let st = self.classic()?.lock();
        st.dedup.as_ref().map(|d| (d.len(), d.capacity()))
    }

    /// Its consumers, in priority order.
    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        match &self.backend {
            Backend::Classic(state) => state.lock().consumers.iter().cloned().collect(),
            Backend::Stream(stream) => stream
                .consumers()
                .iter()
                .map(|c| c.consumer().clone())
                .collect(),
            Backend::Remote(_) | Backend::Quorum(_) => Vec::new(),
        }
    }
}

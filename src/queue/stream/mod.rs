//! Stream queues (`x-queue-type=stream`): a replayable log that 0-9-1
//! consumers read each from their own offset, as RabbitMQ's streams
//! (`docs/streams-rabbitmq-behaviour.md` is the reference).
//!
//! - Publish appends to a pending batch; the group commit's flusher thread
//!   ([`FlushHook`]) appends the batch to the stream's log
//!   (`warren_storage::StreamLog`) as one chunk, fsyncs it without holding the
//!   log's lock (readers go on), and only then makes it readable: a
//!   publisher's confirm waits for the same group commit, so a message is
//!   confirmed, and delivered, only once it is on disk.
//! - Committed messages are kept at the end in memory (`tail.rs`), decoded
//!   and stamped with `x-stream-offset` once, shared by every consumer near
//!   the end; consumers further back read the log with their own cursor.
//! - Each consumer is a task (`consumer.rs`) reading from its offset while
//!   its prefetch allows; acks only return credit, nothing is removed.
//! - Retention drops whole segments when a segment rolls over (RabbitMQ's
//!   rule), by `x-max-length-bytes` and `x-max-age`.
//! - Named consumers (`x-stream-consumer-name`, Warren's): the broker keeps
//!   their offset (`tracking.rs`).

pub mod args;
mod consumer;
mod tail;
mod tracking;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use warren_codec::types::FieldTable;
use warren_storage::{
    CommitRequester, FlushHook, QueueId, StorageError, Store, StreamConfig, StreamLog,
};

use super::delivery::{ConsumerCredit, DeliverySink, same_sink};
use super::{Consumer, Queue};
use crate::durable::Storage;
use crate::durable::records;
use crate::error::AmqpError;
use crate::message::Message;
pub use args::{ConsumeArgs, StartAt, StreamArgs};
pub use consumer::StreamConsumer;
use tail::Tail;
use tracking::Tracking;

/// Messages published and not yet appended to the log.
#[derive(Debug, Default)]
struct Pending {
    /// The messages, encoded by the flush hook (off the publishers' tasks)
    /// and kept for the tail once committed.
    messages: Vec<Arc<Message>>,
    /// When the first of them arrived (the chunk's timestamp).
    first_ms: u64,
}

/// The copy of `message` a consumer gets: its offset in the
/// `x-stream-offset` header (a long), on the wire.
fn stamped(message: &Message, offset: u64) -> Arc<Message> {
    Arc::new(message.with_wire_header("x-stream-offset", i64::try_from(offset).unwrap_or(i64::MAX)))
}

/// A message's `x-stream-filter-value`, if it has one.
pub(super) fn filter_value_of(message: &Message) -> Option<Vec<u8>> {
    message
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-stream-filter-value"))
        .and_then(args::filter_value)
}

/// A message read for a consumer: its offset and the message stamped with it.
type Read = (u64, Arc<Message>);

/// A stream's figures for the management API and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamStats {
    /// The first offset still in the stream (`None`: empty).
    pub first_offset: Option<u64>,
    /// The last committed offset (`None`: empty).
    pub last_offset: Option<u64>,
    /// The offset the next committed message will get.
    pub committed_offset: u64,
    /// Messages in the stream.
    pub messages: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Segment files.
    pub segments: u64,
}

/// One stream queue's engine.
#[derive(Debug)]
pub struct StreamQueue {
    /// The declared arguments.
    args: StreamArgs,
    /// Retention in force (bytes, age in ms): the arguments under the policy.
    retention: Mutex<(Option<u64>, Option<u64>)>,
    log: RwLock<StreamLog>,
    pending: Mutex<Pending>,
    tail: RwLock<Tail>,
    /// The committed end (the offset after the last readable message).
    committed: watch::Sender<u64>,
    consumers: Mutex<Vec<Arc<StreamConsumer>>>,
    tracking: Mutex<Tracking>,
    /// The store (named consumers' offsets) and the group commit, not the
    /// `Storage` that owns the flusher: the flusher thread may drop the last
    /// reference to this stream.
    store: Arc<dyn Store>,
    commits: CommitRequester,
    store_id: QueueId,
    /// A group commit was asked for and has not taken the pending batch yet.
    flush_asked: AtomicBool,
    /// Held through a flush: the flusher's and the one at shutdown never
    /// interleave (batches reach the tail in offset order).
    flushing: Mutex<()>,
    deleted: AtomicBool,
}

fn io_error(error: io::Error) -> StorageError {
    StorageError::Engine(format!("stream log: {error}"))
}

impl StreamQueue {
    /// Opens (creating it if needed) the log of the stream whose id is `id`
    /// and joins the group commit.
    pub fn open(storage: Arc<Storage>, id: QueueId, args: StreamArgs) -> io::Result<Arc<Self>> {
        let defaults = StreamConfig::default();
        let config = StreamConfig {
            max_segment_size: args.max_segment_size.unwrap_or(defaults.max_segment_size),
            filter_size_bytes: args.filter_size_bytes.unwrap_or(defaults.filter_size_bytes),
            ..defaults
        };
        let log = StreamLog::open_with(&storage.stream_dir(id), config)?;
        let committed = log.committed_next_offset();
        let tracking = Tracking::load(storage.store(), id);
        let stream = Arc::new(StreamQueue {
            args,
            retention: Mutex::new((args.max_length_bytes, args.max_age_ms)),
            log: RwLock::new(log),
            pending: Mutex::default(),
            tail: RwLock::new(Tail::at(committed)),
            committed: watch::Sender::new(committed),
            consumers: Mutex::default(),
            tracking: Mutex::new(tracking),
            store: storage.shared_store(),
            commits: storage.requester(),
            store_id: id,
            flush_asked: AtomicBool::new(false),
            flushing: Mutex::new(()),
            deleted: AtomicBool::new(false),
        });
        let hook: Arc<dyn FlushHook> = stream.clone();
        storage.add_flush_hook(Arc::downgrade(&hook));
        Ok(stream)
    }

    /// Sets the retention in force (`max-length-bytes`, `max-age` of a policy
    /// under the declared arguments: the lower wins).
    pub fn set_retention(&self, max_bytes: Option<u64>, max_age_ms: Option<u64>) {
        *self.retention.lock() = (
            super::args::lower(self.args.max_length_bytes, max_bytes),
            super::args::lower(self.args.max_age_ms, max_age_ms),
        );
    }

    /// Appends a message (at the next group commit, which this asks for).
    pub fn publish(&self, message: Arc<Message>) {
        if self.deleted.load(Ordering::Acquire) {
            return;
        }
        {
            let mut pending = self.pending.lock();
            if pending.messages.is_empty() {
                pending.first_ms = records::wall_clock_ms();
            }
            pending.messages.push(message);
        }
        self.ask_flush();
    }

    /// Asks for a group commit unless one is already coming for this batch.
    fn ask_flush(&self) {
        if !self.flush_asked.swap(true, Ordering::AcqRel) {
            self.commits.request();
        }
    }

    /// Messages in the stream (committed).
    pub fn message_count(&self) -> u64 {
        let log = self.log.read();
        let committed = log.committed_next_offset();
        log.first_offset()
            .map_or(0, |first| committed.saturating_sub(first))
    }

    /// Its figures now.
    pub fn stats(&self) -> StreamStats {
        let log = self.log.read();
        let committed = log.committed_next_offset();
        let first = log.first_offset().filter(|&f| f < committed);
        StreamStats {
            first_offset: first,
            last_offset: first.map(|_| committed - 1),
            committed_offset: committed,
            messages: first.map_or(0, |f| committed - f),
            size_bytes: log.size_bytes(),
            segments: log.segment_count() as u64,
        }
    }

    /// The offset a new consumer starts from.
    fn start_offset(&self, start: StartAt) -> u64 {
        let log = self.log.read();
        let committed = log.committed_next_offset();
        match start {
            StartAt::First => 0,
            StartAt::Last => log.last_chunk_offset().unwrap_or(committed),
            StartAt::Next => committed,
            // RabbitMQ documents a clamp to the end of the log.
            StartAt::Offset(n) => n.min(committed),
            StartAt::Timestamp(ms) => log.offset_at_timestamp(ms).unwrap_or(committed),
        }
    }

    /// Attaches a consumer (RabbitMQ's rules for 0-9-1 consumers of streams).
    pub fn add_consumer(
        &self,
        queue: &Arc<Queue>,
        consumer: Arc<Consumer>,
        arguments: &FieldTable,
        accepted: impl FnOnce(),
    ) -> Result<(), AmqpError> {
        let describe = queue.describe();
        if consumer.credit.prefetch == 0 {
            return Err(AmqpError::precondition_failed(format!(
                "consumer prefetch count is not set for '{describe}'"
            )));
        }
        if consumer.no_ack {
            return Err(AmqpError::not_implemented(format!(
                "automatic acknowledgement not supported by stream queues {describe}"
            )));
        }
        if consumer.credit.channel.prefetch.load(Ordering::Acquire) != 0 {
            return Err(AmqpError::not_implemented(format!(
                "{describe} does not support global qos"
            )));
        }
        let args = ConsumeArgs::parse(arguments, &describe)?;
        if self.deleted.load(Ordering::Acquire) {
            return Err(AmqpError::not_found(format!("no {describe}")));
        }
        let mut consumers = self.consumers.lock();
        let start = self.start_offset(args.start);
        let stream_consumer = Arc::new(StreamConsumer::new(consumer, args, arguments, start));
        if let Some(name) = stream_consumer.name() {
            let mut tracking = self.tracking.lock();
            if let Some(from) = tracking.attach(name, &stream_consumer, start) {
                stream_consumer.start_at(from);
            }
        }
        accepted();
        consumers.push(stream_consumer.clone());
        drop(consumers);
        tokio::spawn(consumer::run(queue.clone(), stream_consumer));
        Ok(())
    }

    /// Detaches the consumers `gone` picks.
    fn remove_consumers(&self, gone: impl Fn(&StreamConsumer) -> bool) -> bool {
        let removed: Vec<Arc<StreamConsumer>> = {
            let mut consumers = self.consumers.lock();
            let (removed, kept) = consumers.drain(..).partition(|c| gone(c));
            *consumers = kept;
            removed
        };
        for c in &removed {
            c.cancel();
            if c.name().is_some() {
                let next = self.tracking.lock().detach(c);
                if let Some(next) = next {
                    next.wake();
                }
                self.ask_flush();
            }
        }
        !removed.is_empty()
    }

    /// basic.cancel.
    pub fn remove_consumer(&self, sink: &dyn DeliverySink, tag: &str) {
        self.remove_consumers(|c| c.is(sink, tag));
    }

    /// A channel closes: its consumers go, its deliveries are forgotten
    /// (nothing to put back: the stream keeps every message).
    pub fn release_channel(&self, queue: &Arc<Queue>, sink: &dyn DeliverySink) {
        self.remove_consumers(|c| same_sink(c.sink(), sink));
        sink.take_unacked_from(queue);
    }

    /// Acks free credit: the consumers that may go on are woken.
    pub fn acked(&self) {
        for c in self.consumers.lock().iter() {
            c.wake();
        }
    }

    /// The consumer with this credit acked `offset` (a named consumer's
    /// offset moves on).
    pub fn acked_by(&self, credit: &Arc<ConsumerCredit>, offset: u64) {
        let consumer = self
            .consumers
            .lock()
            .iter()
            .find(|c| Arc::ptr_eq(c.credit(), credit))
            .cloned();
        if let Some(c) = consumer.filter(|c| c.name().is_some()) {
            self.tracking.lock().acked(&c, offset);
            self.ask_flush();
        }
    }

    /// Named consumers: name, kept offset, whether one of them is attached.
    pub fn named_offsets(&self) -> Vec<(String, u64, bool)> {
        self.tracking.lock().offsets()
    }

    /// Whether `c` is delivering: a named consumer waiting behind another
    /// of its name is not.
    pub fn is_active(&self, c: &Arc<StreamConsumer>) -> bool {
        c.name().is_none() || self.tracking.lock().is_active(c)
    }

    /// At a clean shutdown: what was published and the named consumers'
    /// offsets are written and fsynced now, not left to a group commit that
    /// may not come.
    pub fn flush_now(&self) {
        if let Err(error) = FlushHook::flush(self) {
            tracing::error!(%error, "cannot flush a stream at shutdown");
        }
    }

    /// Its consumers.
    pub fn consumers(&self) -> Vec<Arc<StreamConsumer>> {
        self.consumers.lock().clone()
    }

    /// Deletes the stream: its consumers are cancelled (returned so that
    /// their channels can tell the clients), its files and offsets removed.
    pub fn delete(&self) -> Vec<Arc<Consumer>> {
        self.deleted.store(true, Ordering::Release);
        let consumers: Vec<Arc<StreamConsumer>> = std::mem::take(&mut *self.consumers.lock());
        for c in &consumers {
            c.cancel();
        }
        self.committed.send_modify(|_| {});
        {
            let log = self.log.write();
            if let Err(error) = std::fs::remove_dir_all(log.dir()) {
                tracing::warn!(%error, dir = %log.dir().display(), "cannot remove a deleted stream's files");
            }
        }
        self.tracking
            .lock()
            .forget_all(self.store.as_ref(), self.store_id);
        consumers.iter().map(|c| c.consumer().clone()).collect()
    }

    /// The messages from `from` (clamped to the first offset kept) on, at
    /// most `max`, if the tail in memory still holds `from`: with the offset
    /// to read next. `None`: read the log ([`StreamQueue::read_log`]).
    fn read_tail(&self, from: u64, max: usize) -> Option<(Vec<Read>, u64)> {
        let log = self.log.read();
        let first = log.first_offset().unwrap_or(log.committed_next_offset());
        let from = from.max(first);
        let messages = self.tail.read().read(from, max)?;
        let next = messages.last().map_or(from, |(o, _)| o + 1);
        Some((messages, next))
    }

    /// Reads up to `max` committed messages from `from` in the log with the
    /// consumer's cursor (positioned reads that may wait for the disk: the
    /// consumer runs this on the blocking pool), decoded and stamped with
    /// their offsets. Returns them and the offset to read next.
    fn read_log(
        &self,
        from: u64,
        max: usize,
        cursor: &mut Option<warren_storage::StreamReader>,
        filter: Option<&warren_storage::ReadFilter>,
    ) -> io::Result<(Vec<Read>, u64)> {
        let (next, values) = {
            let log = self.log.read();
            let first = log.first_offset().unwrap_or(log.committed_next_offset());
            let from = from.max(first);
            let reader = cursor.get_or_insert_with(|| log.reader(from));
            if reader.next_offset() != from {
                *reader = log.reader(from);
            }
            let limits = warren_storage::ReadLimits {
                max_messages: max,
                max_bytes: 4 << 20,
            };
            let values = log.read(reader, limits, filter)?;
            (reader.next_offset(), values)
        };
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            let Some((message, _, _)) = records::decode_message(value.value) else {
                tracing::error!(
                    offset = value.offset,
                    "an unreadable stream record is skipped"
                );
                continue;
            };
            out.push((value.offset, stamped(&message, value.offset)));
        }
        Ok((out, next))
    }
}

impl FlushHook for StreamQueue {
    fn flush(&self) -> Result<(), StorageError> {
        let _flushing = self.flushing.lock();
        self.flush_asked.store(false, Ordering::Release);
        let batch = std::mem::take(&mut *self.pending.lock());
        if self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        self.tracking
            .lock()
            .write_changed(self.store.as_ref(), self.store_id);
        if batch.messages.is_empty() {
            return Ok(());
        }
        // One buffer for the batch's records, then slices of it.
        let mut records =
            Vec::with_capacity(batch.messages.iter().map(|m| records::encoded_len(m)).sum());
        let mut spans = Vec::with_capacity(batch.messages.len());
        for m in &batch.messages {
            let start = records.len();
            records::encode_stored_into(&mut records, m, 0, 0, records::Stamps::default());
            spans.push((start..records.len(), filter_value_of(m)));
        }
        let (first, sync, rolled) = {
            let mut log = self.log.write();
            let segments = log.segment_count();
            let chunk: Vec<(&[u8], Option<&[u8]>)> = spans
                .iter()
                .map(|(span, f)| (&records[span.clone()], f.as_deref()))
                .collect();
            let first = log.append(&chunk, batch.first_ms).map_err(io_error)?;
            let sync = log.begin_sync().map_err(io_error)?;
            (first, sync, log.segment_count() > segments)
        };
        if let Err(error) = sync.sync() {
            self.log.write().mark_failed();
            return Err(io_error(error));
        }
        {
            let mut log = self.log.write();
            log.finish_sync(sync);
            if rolled {
                let (max_bytes, max_age) = *self.retention.lock();
                if let Err(error) =
                    log.apply_retention(max_bytes, max_age, records::wall_clock_ms())
                {
                    tracing::warn!(%error, "stream retention failed");
                }
            }
        }
        let stamped = batch
            .messages
            .into_iter()
            .zip(first..)
            .map(|(m, offset)| stamped(&m, offset));
        let end = {
            let mut tail = self.tail.write();
            tail.push(first, stamped);
            tail.end()
        };
        self.committed.send_replace(end);
        Ok(())
    }
}

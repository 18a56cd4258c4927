//! A stream consumer: a task that reads from its own offset while its
//! prefetch allows and hands messages to its channel; acks wake it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;
use warren_codec::types::FieldTable;
use warren_storage::{ReadFilter, StreamReader};

use super::super::delivery::{ConsumerCredit, DeliverySink, same_sink};
use super::super::kind::Backend;
use super::super::{Consumer, Delivery, DeliveryKind, Queue, Refused, Unacked};
use super::args::ConsumeArgs;
use crate::message::Message;

/// Messages read at most per round, whatever the prefetch.
const BATCH: usize = 1024;

/// A consumer of a stream.
#[derive(Debug)]
pub struct StreamConsumer {
    consumer: Arc<Consumer>,
    args: ConsumeArgs,
    /// The basic.consume arguments as given (the management API shows them).
    arguments: FieldTable,
    /// The offset of the next message to look at.
    next: AtomicU64,
    wake: Notify,
    /// Set by [`StreamConsumer::cancel`] under `gate`, which a delivery holds
    /// from its check to its hand-over: once `cancel` returns (and the
    /// channel sends cancel-ok) no delivery of this consumer can follow.
    cancelled: AtomicBool,
    gate: Mutex<()>,
}

impl StreamConsumer {
    /// A consumer starting at `start`.
    pub fn new(
        consumer: Arc<Consumer>,
        args: ConsumeArgs,
        arguments: &FieldTable,
        start: u64,
    ) -> Self {
        StreamConsumer {
            consumer,
            args,
            arguments: arguments.clone(),
            next: AtomicU64::new(start),
            wake: Notify::new(),
            cancelled: AtomicBool::new(false),
            gate: Mutex::new(()),
        }
    }

    /// The consumer as every queue knows it (tag, channel, credit).
    pub fn consumer(&self) -> &Arc<Consumer> {
        &self.consumer
    }

    /// Its channel.
    pub fn sink(&self) -> &dyn DeliverySink {
        self.consumer.sink.as_ref()
    }

    /// Its credit.
    pub fn credit(&self) -> &Arc<ConsumerCredit> {
        &self.consumer.credit
    }

    /// Its basic.consume arguments.
    pub fn arguments(&self) -> &FieldTable {
        &self.arguments
    }

    /// Its `x-stream-consumer-name`.
    pub fn name(&self) -> Option<&str> {
        self.args.name.as_deref()
    }

    /// The offset of the next message it will look at.
    pub fn offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Moves it to `offset` (a named consumer taking over).
    pub fn start_at(&self, offset: u64) {
        self.next.store(offset, Ordering::Release);
    }

    /// Whether it is the consumer `tag` of `sink`.
    pub fn is(&self, sink: &dyn DeliverySink, tag: &str) -> bool {
        same_sink(self.sink(), sink) && &*self.consumer.tag == tag
    }

    /// Ends its task.
    pub fn cancel(&self) {
        let _gate = self.gate.lock();
        self.cancelled.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Lets its task look again (credit came back, it became active).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// How many more deliveries its prefetch allows.
    fn room(&self) -> usize {
        let credit = &self.consumer.credit;
        let unacked = credit.unacked.load(Ordering::Acquire);
        usize::try_from(u32::from(credit.prefetch).saturating_sub(unacked)).unwrap_or(0)
    }

    /// The chunk filter for reads from disk.
    fn read_filter(&self) -> Option<ReadFilter> {
        (!self.args.filter.is_empty()).then(|| ReadFilter {
            values: self.args.filter.clone(),
            match_unfiltered: self.args.match_unfiltered,
        })
    }

    /// Whether a message passes its `x-stream-filter`: exactly, per message
    /// (the chunk filter only saves reads).
    fn wants(&self, message: &Message) -> bool {
        if self.args.filter.is_empty() {
            return true;
        }
        let value = super::filter_value_of(message);
        match value {
            Some(v) => self.args.filter.contains(&v),
            None => self.args.match_unfiltered,
        }
    }
}

/// The consumer's task: runs until it is cancelled, its channel goes or the
/// stream is deleted.
pub async fn run(queue: Arc<Queue>, c: Arc<StreamConsumer>) {
    let Backend::Stream(stream) = &queue.backend else {
        return;
    };
    let mut committed = stream.committed.subscribe();
    let mut cursor: Option<StreamReader> = None;
    let filter = c.read_filter();
    let sink = c.consumer.sink.clone();
    loop {
        if c.is_cancelled() {
            return;
        }
        let room = c.room().min(BATCH);
        let active = c
            .name()
            .is_none_or(|_| stream.tracking.lock().is_active(&c));
        if room == 0 || !active {
            c.wake.notified().await;
            continue;
        }
        committed.borrow_and_update();
        let from = c.offset();
        let read = match stream.read_tail(from, room) {
            Some(read) => {
                cursor = None;
                Ok(read)
            }
            None => {
                // Old data: read on the blocking pool, so a cold disk read
                // holds no runtime worker.
                let (s, f, mut cur) = (stream.clone(), filter.clone(), cursor.take());
                let task = tokio::task::spawn_blocking(move || {
                    let read = s.read_log(from, room, &mut cur, f.as_ref());
                    (read, cur)
                });
                match task.await {
                    Ok((read, cur)) => {
                        cursor = cur;
                        read
                    }
                    Err(error) => Err(std::io::Error::other(error)),
                }
            }
        };
        let (batch, next) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(%error, queue = %queue.name, "cannot read a stream; its consumer waits");
                cursor = None;
                tokio::select! {
                    _ = committed.changed() => {}
                    () = c.wake.notified() => {}
                }
                continue;
            }
        };
        if batch.is_empty() {
            c.next.fetch_max(next, Ordering::AcqRel);
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                () = c.wake.notified() => {}
            }
            continue;
        }
        for (offset, message) in batch {
            if !c.wants(&message) {
                c.next.store(offset + 1, Ordering::Release);
                continue;
            }
            let mut message = message;
            loop {
                let delivery = Delivery {
                    kind: DeliveryKind::Consumer(c.consumer.tag.clone()),
                    message,
                    redelivered: false,
                    live: None,
                };
                let unacked = Unacked {
                    queue: queue.clone(),
                    seq: offset,
                    consumer: Some(c.consumer.credit.clone()),
                    delivered_at: 0,
                };
                if c.name().is_some() {
                    stream.tracking.lock().delivered(&c, offset);
                }
                let sent = {
                    let _gate = c.gate.lock();
                    if c.is_cancelled() {
                        return;
                    }
                    sink.try_deliver(delivery, Some(unacked))
                };
                match sent {
                    Ok(_) => {
                        queue.counters.deliver.incr_concurrent();
                        c.next.store(offset + 1, Ordering::Release);
                        break;
                    }
                    Err(undelivered) => {
                        if c.name().is_some() {
                            stream.tracking.lock().acked(&c, offset);
                        }
                        if undelivered.refused == Refused::Closed || !sink.room().await {
                            return;
                        }
                        message = undelivered.message;
                    }
                }
            }
        }
        // Chunks the filter skipped after the last message read.
        c.next.fetch_max(next, Ordering::AcqRel);
    }
}

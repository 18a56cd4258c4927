//! Publisher confirms, pipelined.
//!
//! A channel in confirm mode collects the tags of its publishes. After each
//! batch of frames the connection's reader hands every channel's range to
//! the connection's confirm task ([`ConfirmQueue`]) and goes on reading: when
//! persistent messages of durable queues are among them, the range carries
//! the group-commit generation ([`Storage::request`]) that makes them
//! durable, and the task waits for it before it queues the basic.ack
//! (multiple when it covers several tags). One task per connection and one
//! queue in order, so confirms leave in tag order, a nack for a refused
//! publish after the acks before it, while the reader keeps reading during
//! an fsync. A channel or connection that closes waits at a barrier until the
//! task has sent what it holds, so confirms precede close-ok.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use warren_codec::protocol::{AMQPClass, basic};

use super::{Channel, Mode};
use crate::durable::Storage;
use crate::meta::Forwards;
use crate::outbound::{Outbound, OutboundTx};

/// How many confirm ranges may wait for their commit before the reader waits
/// too: a disk that cannot keep up slows its publishers instead of growing
/// this queue.
const PENDING: usize = 1024;

/// One thing for the confirm task to do, in order.
#[derive(Debug)]
enum Item {
    /// basic.ack (or nack) of tags `first..=last` on `channel`, once
    /// `generation` is durable.
    Confirm {
        channel: u16,
        first: u64,
        last: u64,
        ack: bool,
        generation: Option<u64>,
        /// Publishes forwarded to other cluster nodes, each answered by its home.
        forwarded: Forwards,
    },
    /// Answered once everything queued before it went to the writer.
    Barrier(oneshot::Sender<()>),
}

/// A connection's queue of confirms to send (cheap to clone, one per channel).
#[derive(Debug, Clone)]
pub struct ConfirmQueue {
    tx: mpsc::Sender<Item>,
}

impl ConfirmQueue {
    /// Starts the confirm task of a connection writing to `out`; it ends when
    /// every clone of the queue is dropped.
    pub fn spawn(out: OutboundTx, storage: Arc<Storage>) -> Self {
        let (tx, rx) = mpsc::channel(PENDING);
        tokio::spawn(run(rx, out, storage));
        ConfirmQueue { tx }
    }

    async fn push(&self, item: Item) {
        // The task only ends when every sender is gone.
        let _ = self.tx.send(item).await;
    }

    /// Waits until every confirm queued before went to the writer.
    pub async fn barrier(&self) {
        let (done, wait) = oneshot::channel();
        self.push(Item::Barrier(done)).await;
        let _ = wait.await;
    }
}

async fn run(mut rx: mpsc::Receiver<Item>, out: OutboundTx, storage: Arc<Storage>) {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Confirm {
                channel,
                first,
                last,
                ack,
                generation,
                forwarded,
            } => {
                let mut durable = match generation {
                    Some(generation) => storage.wait(generation).await.is_ok(),
                    None => true,
                };
                if !forwarded.is_empty() {
                    // A home node that did not take its share: the range is nacked
                    // (the publisher republishes; duplicates, never a loss).
                    durable &= forwarded.all_taken().await;
                }
                if ack && !durable {
                    // A publisher never hears "safe" about what the disk did not take.
                    tracing::error!("nacking publishes: the store could not make them durable");
                }
                let multiple = first != last;
                let method = if ack && durable {
                    basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: last,
                        multiple,
                    })
                } else {
                    basic::AMQPMethod::Nack(basic::Nack {
                        delivery_tag: last,
                        multiple,
                        requeue: false,
                    })
                };
                let frame = Outbound::Method(channel, AMQPClass::Basic(method));
                if out.send(frame).await.is_err() {
                    return;
                }
            }
            Item::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Forwarded publishes without confirms a channel may have unanswered before it waits:
/// a publisher to a queue on a slow or stopped node is held back, as RabbitMQ's credit
/// flow holds it, instead of queueing without bound.
const FORWARD_WINDOW: usize = 1024;

impl Channel {
    /// Keeps `forwarded` (publishes without confirms) until their homes answer; past the
    /// window, waits for the oldest ones first.
    async fn hold_forwarded(&mut self, forwarded: Forwards) {
        self.forwarded_unconfirmed.extend(forwarded.0);
        while self.forwarded_unconfirmed.len() > FORWARD_WINDOW {
            if let Some(oldest) = self.forwarded_unconfirmed.pop_front() {
                // Taken or not, it is answered (a home that stays away fails it in 10 s).
                let _ = oldest.await;
            }
        }
        // Drop what was answered already from the front.
        while let Some(front) = self.forwarded_unconfirmed.front_mut() {
            match front.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                _ => {
                    self.forwarded_unconfirmed.pop_front();
                }
            }
        }
    }

    /// A publish in confirm mode was handled: `refused` by a queue (nacked
    /// at once, after the acks before it), else collected for the next flush;
    /// `stored` when its ack must wait for the group commit.
    pub(super) async fn confirm_publish(
        &mut self,
        refused: bool,
        stored: bool,
        forwarded: Forwards,
    ) {
        let Mode::Confirm(next) = &mut self.mode else {
            if !forwarded.is_empty() {
                self.hold_forwarded(forwarded).await;
            }
            return;
        };
        let tag = *next;
        *next += 1;
        self.durable_pending |= stored;
        if !refused {
            self.forwarded_pending.append(forwarded);
        }
        if refused {
            self.flush_confirms().await;
            self.conn
                .confirms
                .push(Item::Confirm {
                    channel: self.id,
                    first: tag,
                    last: tag,
                    ack: false,
                    generation: None,
                    forwarded: Forwards::default(),
                })
                .await;
            return;
        }
        self.shared.counters.confirm.incr();
        let first = self.unsent_acks.map_or(tag, |(first, _)| first);
        self.unsent_acks = Some((first, tag));
        self.shared
            .report
            .unconfirmed
            .store(tag - first + 1, Ordering::Relaxed);
    }

    /// Hands the confirms collected since the last flush to the confirm task
    /// as one range. The connection flushes after each batch of frames it
    /// read, before a channel closes and before it closes itself, so a return
    /// always precedes its message's ack.
    pub async fn flush_confirms(&mut self) {
        let durable_pending = std::mem::take(&mut self.durable_pending);
        let forwarded = std::mem::take(&mut self.forwarded_pending);
        let Some((first, last)) = self.unsent_acks.take() else {
            return;
        };
        self.shared.report.unconfirmed.store(0, Ordering::Relaxed);
        // Asked now, so the commit covers every persistent message above.
        let generation = durable_pending.then(|| self.conn.vhost.storage.request());
        self.conn
            .confirms
            .push(Item::Confirm {
                channel: self.id,
                first,
                last,
                ack: true,
                generation,
                forwarded,
            })
            .await;
    }

    /// Whether confirms wait for [`Channel::flush_confirms`].
    pub fn has_unsent_confirms(&self) -> bool {
        self.unsent_acks.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_storage::Engine;

    fn method(item: Outbound) -> (u16, basic::AMQPMethod) {
        match item {
            Outbound::Method(channel, AMQPClass::Basic(m)) => (channel, m),
            other => panic!("not a basic method: {other:?}"),
        }
    }

    #[tokio::test]
    async fn confirms_leave_in_order_after_their_commit_and_before_a_barrier_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path(), 1 << 20, Engine::Segments).expect("store");
        let (out, mut written) = mpsc::channel(16);
        let confirms = ConfirmQueue::spawn(out, storage.clone());
        let generation = storage.request();
        confirms
            .push(Item::Confirm {
                channel: 1,
                first: 1,
                last: 3,
                ack: true,
                generation: Some(generation),
                forwarded: Forwards::default(),
            })
            .await;
        // Needs no commit, but must not overtake the range before it.
        confirms
            .push(Item::Confirm {
                channel: 1,
                first: 4,
                last: 4,
                ack: false,
                generation: None,
                forwarded: Forwards::default(),
            })
            .await;
        confirms.barrier().await;
        let (channel, first) = method(written.try_recv().expect("ack sent before the barrier"));
        assert_eq!(channel, 1);
        assert!(matches!(
            first,
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 3,
                multiple: true
            })
        ));
        let (_, second) = method(written.try_recv().expect("nack sent"));
        assert!(matches!(
            second,
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 4,
                multiple: false,
                ..
            })
        ));
        assert!(written.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_range_waits_for_its_forwarded_publishes_and_is_nacked_if_one_was_not_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path(), 1 << 20, Engine::Segments).expect("store");
        let (out, mut written) = mpsc::channel(16);
        let confirms = ConfirmQueue::spawn(out, storage);
        let (taken, taken_rx) = oneshot::channel();
        let (refused, refused_rx) = oneshot::channel();
        for (first, rx) in [(1, taken_rx), (2, refused_rx)] {
            confirms
                .push(Item::Confirm {
                    channel: 1,
                    first,
                    last: first,
                    ack: true,
                    generation: None,
                    forwarded: Forwards(vec![rx]),
                })
                .await;
        }
        tokio::task::yield_now().await;
        assert!(
            written.try_recv().is_err(),
            "nothing before the home answers"
        );
        let _ = taken.send(true);
        let (_, first) = method(written.recv().await.expect("ack"));
        assert!(matches!(
            first,
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 1,
                ..
            })
        ));
        let _ = refused.send(false);
        let (_, second) = method(written.recv().await.expect("nack"));
        assert!(matches!(
            second,
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 2,
                ..
            })
        ));
    }
}

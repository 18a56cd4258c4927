//! Time in a queue: message TTL (`x-message-ttl` and the per-message
//! `expiration`, the lower wins) and the queue's own lease (`x-expires`).
//!
//! Every operation drops the ready messages whose expiry has come before it
//! delivers anything. Between operations, one timer task per queue (started
//! the first time the queue has a deadline) sleeps until the next deadline,
//! the earliest expiry among ready messages wherever they sit, or the end of
//! the lease of an unused queue, and is woken when an earlier deadline
//! appears. It holds the queue weakly and ends with it.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;

use super::dead_letter::{Dead, DeadLetterTarget, Reason};
use super::{Queue, QueueState};
use crate::durable::records::wall_clock_ms;

/// State of a queue's timer task, kept under the queue's lock.
#[derive(Debug, Default)]
pub(super) struct Timer {
    /// The task was started.
    running: bool,
    /// What it sleeps until (`None`: until woken).
    at: Option<Instant>,
}

/// The wall-clock milliseconds of `at`, from one reading of both clocks
/// taken once (no clock call per message beyond the `Instant` the caller has).
fn wall_ms_at(at: Instant) -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let &(base, wall) = BASE.get_or_init(|| (Instant::now(), wall_clock_ms()));
    if at >= base {
        wall.saturating_add(at.duration_since(base).as_millis() as u64)
    } else {
        wall.saturating_sub(base.duration_since(at).as_millis() as u64)
    }
}

/// When a publish happened: both clocks read once and shared by every queue
/// the message reaches (per queue, the two readings were 100 instructions of
/// a fanout delivery).
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The monotonic time (expiry, due times).
    pub(super) at: Instant,
    /// The wall-clock milliseconds (a message's age).
    pub(super) wall_ms: u64,
}

impl Arrival {
    /// Now.
    pub fn now() -> Self {
        let at = Instant::now();
        Arrival {
            at,
            wall_ms: wall_ms_at(at),
        }
    }
}

/// When a message enqueued `now` expires: the lower of the queue's TTL in
/// force and the message's own.
pub(super) fn expiry_of(
    queue_ttl: Option<u64>,
    ttl_ms: Option<u64>,
    now: Instant,
) -> Option<Instant> {
    let ttl = match (queue_ttl, ttl_ms) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(now + Duration::from_millis(ttl))
}

impl Queue {
    /// Makes the waiting messages due by `now` ready, then drops the ready
    /// messages whose expiry is `now` or earlier (a waiting message expires
    /// when it is ready again, as on RabbitMQ's quorum queues).
    pub(super) fn expire(&self, st: &mut QueueState, now: Instant, dead: &mut Vec<Dead>) {
        self.release_due(st, now);
        st.ready.take_expired(now, |entry| {
            self.discard(dead, entry.message, Reason::Expired)
        });
    }

    /// The queue was used (declared, created, basic.get, or its last consumer
    /// left): its `x-expires` lease starts again.
    pub(super) fn renew_lease(self: &Arc<Self>, st: &mut QueueState) {
        if st.args.expires.is_some() {
            st.used_at = Instant::now();
            self.schedule(st);
        }
    }

    /// The next thing the timer has to do: the next expiry, the next due
    /// time of a waiting message, or the end of the lease if the queue has no
    /// consumers.
    fn next_deadline(&self, st: &QueueState) -> Option<Instant> {
        let lease = st
            .args
            .expires
            .filter(|_| st.consumers.is_empty())
            .map(|ms| st.used_at + Duration::from_millis(ms));
        [st.ready.next_expiry(), lease, st.waiting.next_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Makes sure the timer wakes for the next deadline: starts the task, or
    /// wakes it when the deadline is earlier than what it sleeps until.
    pub(super) fn schedule(self: &Arc<Self>, st: &mut QueueState) {
        let Some(next) = self.next_deadline(st) else {
            return;
        };
        if !st.timer.running {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            st.timer = Timer {
                running: true,
                at: None,
            };
            runtime.spawn(run_timer(Arc::downgrade(self), self.wake.clone()));
        } else if st.timer.at.is_none_or(|at| next < at) {
            self.wake.notify_one();
        }
    }

    /// One round of the timer: makes due messages ready and delivers them,
    /// expires messages, deletes the queue when its lease ran out unused.
    /// Returns what to sleep until, or `None` to stop.
    fn on_timer(self: &Arc<Self>) -> Option<Option<Instant>> {
        let mut dead = Vec::new();
        let (next, lease_over, target) = {
            let mut st = self.classic()?.lock();
            if st.deleted {
                return None;
            }
            let now = Instant::now();
            self.expire(&mut st, now, &mut dead);
            self.dispatch(&mut st);
            let lease_over = st.consumers.is_empty()
                && st
                    .args
                    .expires
                    .is_some_and(|ms| now >= st.used_at + Duration::from_millis(ms));
            if lease_over {
                // Under the lock, so no consumer can arrive before the deletion.
                st.deleted = true;
            }
            let next = self.next_deadline(&st);
            st.timer.at = next;
            // Expired messages leave the store too, as in `with_state`.
            st.ready.flush_gone();
            let target = DeadLetterTarget::of(&st.args).filter(|_| !dead.is_empty());
            (next, lease_over, target)
        };
        if let Some(target) = target {
            self.dead_letter(dead, &target);
        }
        if lease_over {
            tracing::debug!(queue = %self.name, "deleting queue on expiry (x-expires)");
            if let Some(host) = self.host.upgrade() {
                host.delete_expired(self);
            }
            return None;
        }
        Some(next)
    }
}

async fn run_timer(queue: Weak<Queue>, wake: Arc<Notify>) {
    loop {
        let Some(q) = queue.upgrade() else {
            return;
        };
        let Some(next) = q.on_timer() else {
            return;
        };
        drop(q);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

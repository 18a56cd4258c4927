//! What a run's threads share: the epoch send times are measured from, the
//! progress counters the supervisor watches, the stop flag and the first
//! failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Shared by every producer, consumer and the supervisor of one run.
pub struct Shared {
    /// Send times in message bodies are nanoseconds since this instant.
    pub epoch: Instant,
    /// Messages published (confirmed, where confirms are on).
    pub published: AtomicU64,
    /// Deliveries the messages written so far should produce.
    pub expected: AtomicU64,
    /// Deliveries received by all consumers.
    pub delivered: AtomicU64,
    /// When the last delivery was read, ns since the epoch.
    pub last_delivery_ns: AtomicU64,
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Counters at zero, epoch `epoch`.
    pub fn new(epoch: Instant) -> Shared {
        Shared {
            epoch,
            published: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Deliveries still owed by the broker for what was written.
    pub fn backlog(&self) -> u64 {
        self.expected
            .load(Ordering::Relaxed)
            .saturating_sub(self.delivered.load(Ordering::Relaxed))
    }

    /// Tells every thread to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the run is over.
    #[inline]
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records the first failure and stops the run.
    pub fn fail(&self, why: &str) {
        let mut f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if f.is_none() {
            *f = Some(why.to_string());
        }
        drop(f);
        self.stop();
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

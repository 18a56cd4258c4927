//! Message counters and their history, for the rates the management API
//! reports (`message_stats` with `*_details.rate`, as RabbitMQ's API has them).
//!
//! Counting costs one relaxed atomic add on a counter the counting object
//! owns (a queue's, an exchange's, a channel's): no lock, no clock read on
//! the message path. A ticker (`broker/stats.rs`) samples every counter
//! once per statistics interval into a short [`History`]; rates are the
//! difference between samples, computed when the API is asked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Whether counters count (`collect_statistics = "none"` turns them off,
/// for the benchmark that measures what counting costs).
static COUNTING: AtomicBool = AtomicBool::new(true);

/// Turns every counter on or off (the broker does it once, at start).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// A monotonic count of events.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// `n` more events.
    pub fn add(&self, n: u64) {
        if COUNTING.load(Ordering::Relaxed) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One more event.
    pub fn incr(&self) {
        self.add(1);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A queue's counters.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Messages enqueued.
    pub publish: Counter,
    /// Deliveries to consumers that ack.
    pub deliver: Counter,
    /// Deliveries to no-ack consumers.
    pub deliver_no_ack: Counter,
    /// basic.get with ack.
    pub get: Counter,
    /// basic.get without ack.
    pub get_no_ack: Counter,
    /// Deliveries (of any kind) of messages delivered before.
    pub redeliver: Counter,
    /// Acknowledged deliveries.
    pub ack: Counter,
}

/// The names of a queue's rates, in [`QueueCounters::values`] order.
pub const QUEUE_RATES: [&str; 8] = [
    "publish",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "deliver_get",
    "redeliver",
    "ack",
];

impl QueueCounters {
    /// The counts, in [`QUEUE_RATES`] order (`deliver_get` is the sum of the
    /// four delivery kinds, as in RabbitMQ).
    pub fn values(&self) -> [u64; 8] {
        let (deliver, deliver_no_ack) = (self.deliver.get(), self.deliver_no_ack.get());
        let (get, get_no_ack) = (self.get.get(), self.get_no_ack.get());
        [
            self.publish.get(),
            deliver,
            deliver_no_ack,
            get,
            get_no_ack,
            deliver + deliver_no_ack + get + get_no_ack,
            self.redeliver.get(),
            self.ack.get(),
        ]
    }
}

/// The lengths a queue's samples carry after its rates, in this order, then
/// one 0/1 sample of consumer capacity (at [`QUEUE_CAPACITY`]).
pub const QUEUE_LENGTHS: [&str; 3] = ["messages", "messages_ready", "messages_unacknowledged"];

/// Where a queue's sample holds its consumer capacity sample.
pub const QUEUE_CAPACITY: usize = QUEUE_RATES.len() + QUEUE_LENGTHS.len();

/// An exchange's counters.
#[derive(Debug, Default)]
pub struct ExchangeCounters {
    /// Messages published to it.
    pub publish_in: Counter,
    /// Messages it routed to at least one queue.
    pub publish_out: Counter,
}

/// The names of an exchange's rates.
pub const EXCHANGE_RATES: [&str; 2] = ["publish_in", "publish_out"];

impl ExchangeCounters {
    /// The counts, in [`EXCHANGE_RATES`] order.
    pub fn values(&self) -> [u64; 2] {
        [self.publish_in.get(), self.publish_out.get()]
    }
}

/// A channel's counters (summed per connection and for the overview).
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// basic.publish received.
    pub publish: Counter,
    /// Publisher confirms sent (acks).
    pub confirm: Counter,
    /// Mandatory messages returned unroutable.
    pub return_unroutable: Counter,
    /// Messages dropped unroutable (not mandatory).
    pub drop_unroutable: Counter,
    /// Deliveries to consumers that ack.
    pub deliver: Counter,
    /// Deliveries to no-ack consumers.
    pub deliver_no_ack: Counter,
    /// basic.get with ack.
    pub get: Counter,
    /// basic.get without ack.
    pub get_no_ack: Counter,
    /// Redeliveries.
    pub redeliver: Counter,
    /// Acks received.
    pub ack: Counter,
}

/// The names of a channel's rates, in [`ChannelCounters::values`] order.
pub const CHANNEL_RATES: [&str; 11] = [
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "deliver_get",
    "redeliver",
    "ack",
];

impl ChannelCounters {
    /// The counts, in [`CHANNEL_RATES`] order.
    pub fn values(&self) -> [u64; 11] {
        let (deliver, deliver_no_ack) = (self.deliver.get(), self.deliver_no_ack.get());
        let (get, get_no_ack) = (self.get.get(), self.get_no_ack.get());
        [
            self.publish.get(),
            self.confirm.get(),
            self.return_unroutable.get(),
            self.drop_unroutable.get(),
            deliver,
            deliver_no_ack,
            get,
            get_no_ack,
            deliver + deliver_no_ack + get + get_no_ack,
            self.redeliver.get(),
            self.ack.get(),
        ]
    }

    /// Adds a closed channel's counts (what the overview keeps of it).
    pub fn absorb(&self, values: &[u64; 11]) {
        let counters = [
            &self.publish,
            &self.confirm,
            &self.return_unroutable,
            &self.drop_unroutable,
            &self.deliver,
            &self.deliver_no_ack,
            &self.get,
            &self.get_no_ack,
        ];
        for (counter, value) in counters.into_iter().zip(values.iter()) {
            counter.add(*value);
        }
        self.redeliver.add(values[9]);
        self.ack.add(values[10]);
    }
}

/// How many samples an object keeps.
pub const HISTORY: usize = 64;

/// One sample of an object's series: when (ms since the epoch) and the
/// values, in the object's rate order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Wall-clock milliseconds.
    pub at_ms: u64,
    /// The values.
    pub values: Vec<u64>,
}

/// The last [`HISTORY`] samples of an object.
#[derive(Debug, Default)]
pub struct History(Mutex<VecDeque<Sample>>);

/// A rate (or length) series as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    /// Per second, over the last interval.
    pub rate: f64,
    /// Over the asked age: (sample, timestamp) newest first, the average
    /// rate and the average value.
    pub window: Option<Window>,
}

/// The samples of an asked age (`msg_rates_age` / `lengths_age`).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// (value, timestamp ms), newest first.
    pub samples: Vec<(u64, u64)>,
    /// Per second over the window.
    pub avg_rate: f64,
    /// The mean of the values.
    pub avg: f64,
}

impl History {
    /// Records a sample, forgetting the oldest past [`HISTORY`].
    pub fn push(&self, at_ms: u64, values: Vec<u64>) {
        let mut samples = self.0.lock();
        if samples.len() == HISTORY {
            samples.pop_front();
        }
        samples.push_back(Sample { at_ms, values });
    }

    /// The series `index`: its rate over the last interval and, if `age`
    /// is given (seconds), the samples in that age every `incr` seconds.
    pub fn details(&self, index: usize, age: Option<(u64, u64)>) -> Details {
        let samples = self.0.lock();
        let value = |s: &Sample| s.values.get(index).copied().unwrap_or(0);
        let rate = match (samples.len().checked_sub(2), samples.back()) {
            (Some(i), Some(last)) => per_second(&samples[i], last, value),
            _ => 0.0,
        };
        let window = age.and_then(|(age_s, incr_s)| {
            let newest = samples.back()?;
            let since = newest.at_ms.saturating_sub(age_s.saturating_mul(1000));
            let step = incr_s.max(1).saturating_mul(1000);
            let mut picked: Vec<&Sample> = Vec::new();
            for s in samples.iter().rev().filter(|s| s.at_ms >= since) {
                if picked
                    .last()
                    .is_none_or(|p| p.at_ms.saturating_sub(s.at_ms) + 500 >= step)
                {
                    picked.push(s);
                }
            }
            let oldest = picked.last()?;
            let avg_rate = per_second(oldest, newest, value);
            let avg = picked.iter().map(|s| value(s) as f64).sum::<f64>() / picked.len() as f64;
            Some(Window {
                samples: picked.iter().map(|s| (value(s), s.at_ms)).collect(),
                avg_rate,
                avg,
            })
        });
        Details { rate, window }
    }

    /// The newest sample's values.
    pub fn last(&self) -> Option<Sample> {
        self.0.lock().back().cloned()
    }

    /// The mean of series `index` over the last `n` samples (0 without any).
    pub fn mean(&self, index: usize, n: usize) -> f64 {
        let samples = self.0.lock();
        let recent: Vec<u64> = samples
            .iter()
            .rev()
            .take(n)
            .map(|s| s.values.get(index).copied().unwrap_or(0))
            .collect();
        if recent.is_empty() {
            return 0.0;
        }
        recent.iter().sum::<u64>() as f64 / recent.len() as f64
    }
}

/// The change per second of a series between two samples (0 if time did
/// not pass; a counter that went down, a restarted one, counts as 0).
fn per_second(from: &Sample, to: &Sample, value: impl Fn(&Sample) -> u64) -> f64 {
    let ms = to.at_ms.saturating_sub(from.at_ms);
    if ms == 0 {
        return 0.0;
    }
    let (a, b) = (value(from) as f64, value(to) as f64);
    (b - a) * 1000.0 / ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_last_two_samples_and_windows_from_the_age() {
        let history = History::default();
        assert_eq!(history.details(0, None).rate, 0.0);
        for i in 0..10u64 {
            history.push(1_000_000 + i * 5000, vec![i * 500, 7]);
        }
        let d = history.details(0, None);
        assert!((d.rate - 100.0).abs() < 1e-9, "{d:?}");
        assert_eq!(history.details(1, None).rate, 0.0);
        let w = history.details(0, Some((20, 10))).window.expect("window");
        // Newest first, every 10 s, within the last 20 s.
        assert_eq!(
            w.samples,
            [(4500, 1_045_000), (3500, 1_035_000), (2500, 1_025_000)]
        );
        assert!((w.avg_rate - 100.0).abs() < 1e-9);
        assert!((w.avg - 3500.0).abs() < 1e-9);
    }

    #[test]
    fn history_is_bounded() {
        let history = History::default();
        for i in 0..(HISTORY as u64 + 10) {
            history.push(i * 1000, vec![i]);
        }
        let w = history
            .details(0, Some((1_000_000, 1)))
            .window
            .expect("window");
        assert_eq!(w.samples.len(), HISTORY);
    }

    #[test]
    fn a_closed_channel_adds_its_counts() {
        let channel = ChannelCounters::default();
        channel.publish.add(3);
        channel.get_no_ack.add(2);
        channel.ack.add(5);
        let total = ChannelCounters::default();
        total.absorb(&channel.values());
        total.absorb(&channel.values());
        assert_eq!(total.values(), [6, 0, 0, 0, 0, 0, 0, 4, 4, 0, 10]);
    }
}

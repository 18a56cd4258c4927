//! Message counters and their history, for the rates the management API
//! reports (`message_stats` with `*_details.rate`, as RabbitMQ's API has them).
//!
//! Counting costs a plain load and store on a counter the counting object
//! owns and writes from one place at a time (a queue's under its lock, a
//! channel's from its task or under its deliveries lock): no locked
//! instruction, no clock read on the message path. Counters many threads
//! write at once (an exchange's, the broker's) are sharded per thread. A ticker (`broker/stats.rs`) samples every counter
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

/// A monotonic count of events with one writer at a time (its owner's
/// lock or task serialises the writes); any thread may read it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// `n` more events, from the counter's one writer: a load and a store,
    /// without a locked read-modify-write (readers see either value).
    pub fn add(&self, n: u64) {
        if COUNTING.load(Ordering::Relaxed) {
            let now = self.0.load(Ordering::Relaxed);
            self.0.store(now.wrapping_add(n), Ordering::Relaxed);
        }
    }

    /// One more event, from any of several writers at once.
    pub fn incr_concurrent(&self) {
        self.add_concurrent(1);
    }

    /// `n` more events, from any of several writers at once.
    pub fn add_concurrent(&self, n: u64) {
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

/// An exchange's counters: every publisher writes them, so they are sharded.
#[derive(Debug, Default)]
pub struct ExchangeCounters {
    /// Messages published to it.
    pub publish_in: ShardedCounter,
    /// Messages it routed to at least one queue.
    pub publish_out: ShardedCounter,
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
    /// basic.get that found the queue empty.
    pub get_empty: Counter,
}

/// The names of a channel's rates, in [`ChannelCounters::values`] order.
pub const CHANNEL_RATES: [&str; 12] = [
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
    "get_empty",
];

impl ChannelCounters {
    /// The counts, in [`CHANNEL_RATES`] order.
    pub fn values(&self) -> [u64; 12] {
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
            self.get_empty.get(),
        ]
    }

    /// Adds a closed channel's counts (what the overview keeps of it).
    pub fn absorb(&self, values: &[u64; 12]) {
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
            counter.add_concurrent(*value);
        }
        self.redeliver.add_concurrent(values[9]);
        self.ack.add_concurrent(values[10]);
        self.get_empty.add_concurrent(values[11]);
    }
}

/// A counter many threads add to at once: each thread adds to its own
/// cache line (one of [`SHARDS`]), the shards are summed when read. For the
/// broker-wide counts taken on the message path.
#[derive(Debug, Default)]
pub struct ShardedCounter([Shard; SHARDS]);

/// How many cache lines a [`ShardedCounter`] spreads over.
pub const SHARDS: usize = 16;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard(AtomicU64);

/// The shard of the calling thread, handed out round-robin.
fn shard() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl ShardedCounter {
    /// `n` more events.
    pub fn add(&self, n: u64) {
        if COUNTING.load(Ordering::Relaxed) {
            self.0[shard()].0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One more event.
    pub fn incr(&self) {
        self.add(1);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// The upper bounds (bytes) of the message size histogram's buckets, as
/// RabbitMQ's `rabbitmq_message_size_bytes` has them (then +Inf).
pub const MESSAGE_SIZE_BUCKETS: [u64; 8] = [
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
];

/// Published message body sizes: a count per bucket (not cumulative; the
/// last is +Inf) and their sum.
#[derive(Debug, Default)]
pub struct SizeHistogram {
    buckets: [ShardedCounter; MESSAGE_SIZE_BUCKETS.len() + 1],
    sum: ShardedCounter,
}

impl SizeHistogram {
    /// One message of `bytes`.
    pub fn observe(&self, bytes: u64) {
        let bucket = MESSAGE_SIZE_BUCKETS.partition_point(|&bound| bound < bytes);
        self.buckets[bucket].incr();
        self.sum.add(bytes);
    }

    /// The cumulative counts per bucket (the last is +Inf, the total count)
    /// and the sum of the sizes.
    pub fn cumulative(&self) -> ([u64; MESSAGE_SIZE_BUCKETS.len() + 1], u64) {
        let mut out = [0; MESSAGE_SIZE_BUCKETS.len() + 1];
        let mut total = 0;
        for (slot, bucket) in out.iter_mut().zip(&self.buckets) {
            total += bucket.get();
            *slot = total;
        }
        (out, self.sum.get())
    }
}

/// Broker-wide counts that no object owns, as RabbitMQ's global counters:
/// they survive the connections, channels and queues they counted.
#[derive(Debug, Default)]
pub struct GlobalCounters {
    /// Connections registered as live.
    pub connections_opened: Counter,
    /// Channels opened.
    pub channels_opened: Counter,
    /// basic.publish received on channels in confirm mode.
    pub received_confirm: ShardedCounter,
    /// Published messages routed to at least one queue (or held by a
    /// delayed exchange they reached through a binding).
    pub routed: ShardedCounter,
    /// basic.get answered get-empty.
    pub get_empty: ShardedCounter,
    /// Body sizes of the messages published.
    pub message_sizes: SizeHistogram,
    /// What `/metrics` last reported per name (see [`GlobalCounters::monotonic`]).
    reported: Mutex<std::collections::HashMap<&'static str, u64>>,
}

impl GlobalCounters {
    /// `value` for the counter `name`, never less than what was reported
    /// before: a total summed over objects dips for a moment while a closed
    /// one's counts move to the retired totals, and Prometheus would read
    /// the dip as a counter reset.
    pub fn monotonic(&self, name: &'static str, value: u64) -> u64 {
        let mut reported = self.reported.lock();
        let last = reported.entry(name).or_insert(0);
        *last = (*last).max(value);
        *last
    }
}

/// A vhost's queue churn.
#[derive(Debug, Default)]
pub struct QueueChurn {
    /// queue.declare (and API declarations), passive or not.
    pub declared: Counter,
    /// Queues created.
    pub created: Counter,
    /// Queues deleted (deletion, auto-delete, exclusive owner gone, expiry).
    pub deleted: Counter,
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
    fn sizes_fall_in_rabbitmqs_buckets_and_sharded_counts_sum() {
        let h = SizeHistogram::default();
        for bytes in [0, 100, 101, 1_000, 50_000_000, 100_000_001] {
            h.observe(bytes);
        }
        let (buckets, sum) = h.cumulative();
        assert_eq!(buckets, [2, 4, 4, 4, 4, 4, 5, 5, 6]);
        assert_eq!(sum, 150_001_202);
        let c = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("thread"));
        assert_eq!(c.get(), 4000);
        let g = GlobalCounters::default();
        assert_eq!(g.monotonic("x", 5), 5);
        assert_eq!(g.monotonic("x", 4), 5);
        assert_eq!(g.monotonic("x", 7), 7);
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
        assert_eq!(total.values(), [6, 0, 0, 0, 0, 0, 0, 4, 4, 0, 10, 0]);
    }
}

//! The statistics ticker: once per `collect_statistics_interval` it samples
//! the message counters of every queue, exchange, channel and connection,
//! and the overview's totals, into their histories (`crate::stats`), from
//! which the management API computes rates. It reads atomics and takes each
//! queue's lock once per interval, never anything per message.

use std::sync::Weak;

use super::Broker;
use crate::durable::records::wall_clock_ms;
use crate::stats::CHANNEL_RATES;

/// Where the overview's sample puts the queues' lengths, after the rates.
pub const OVERVIEW_LENGTHS: usize = CHANNEL_RATES.len();

/// Runs until the broker is gone.
pub async fn run(broker: Weak<Broker>) {
    let Some(interval) = broker.upgrade().map(|b| b.config.statistics_interval()) else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.sample_statistics(wall_clock_ms());
    }
}

impl Broker {
    /// One round of samples, stamped `at_ms`.
    pub fn sample_statistics(&self, at_ms: u64) {
        let (mut messages, mut ready, mut unacked) = (0u64, 0u64, 0u64);
        for vhost in self.vhosts() {
            for queue in vhost.queues() {
                let stats = queue.sample(at_ms);
                messages += stats.messages();
                ready += stats.messages_ready;
                unacked += stats.messages_unacknowledged;
            }
            for exchange in vhost.exchanges() {
                exchange
                    .history
                    .push(at_ms, exchange.counters.values().to_vec());
            }
        }
        let mut totals = self.retired.values();
        let connections: Vec<_> = self.connections.iter().map(|c| c.value().clone()).collect();
        for connection in connections {
            for channel in connection.channels() {
                channel
                    .history
                    .push(at_ms, channel.counters.values().to_vec());
            }
            let counts = connection.totals();
            connection.history.push(at_ms, counts.to_vec());
            for (total, value) in totals.iter_mut().zip(counts) {
                *total += value;
            }
        }
        let mut overview = totals.to_vec();
        overview.extend([messages, ready, unacked]);
        self.history.push(at_ms, overview);
    }
}

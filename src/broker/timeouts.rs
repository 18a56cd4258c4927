//! The broker's ticker: once a second it advances the clock deliveries are
//! stamped with and checks every channel for a delivery held unacknowledged
//! longer than its consumer timeout (RabbitMQ's delivery acknowledgement
//! timeout: `consumer_timeout`, the queue's `x-consumer-timeout`, a
//! consumer's `x-consumer-timeout`). The check reads each channel's oldest
//! deliveries only; the delivery path pays one atomic load for the stamp.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;

/// How often the clock advances and the timeouts are checked.
const TICK: Duration = Duration::from_secs(1);

/// Runs until the broker stops (the caller aborts it).
pub async fn run(broker: Arc<Broker>) {
    let default = broker.config.consumer_timeout_ms();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is immediate.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        broker.clock.tick();
        let connections: Vec<_> = broker.connections.iter().map(|c| c.clone()).collect();
        for connection in connections {
            for channel in connection.channels() {
                channel.check_ack_timeout(default);
            }
        }
    }
}

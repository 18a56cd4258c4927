//! The queue metrics: RabbitMQ's `rabbitmq_queue_*` and Warren's
//! `warren_queue_*`, summed (or the max) on `/metrics`, per queue on
//! `/metrics/per-object`.

use super::{Page, escape};
use crate::broker::Broker;
use crate::queue::QueueStats;

/// How a queue metric is aggregated on `/metrics`.
#[derive(Clone, Copy)]
enum Total {
    Sum,
    Max,
}

/// The queue metrics: name, type, help, aggregation, and one queue's value.
type QueueMetric = (
    &'static str,
    &'static str,
    &'static str,
    Total,
    fn(&Queued) -> f64,
);

/// One queue as the metrics see it.
pub(super) struct Queued {
    vhost: String,
    name: String,
    pub(super) stats: QueueStats,
    /// Its message counters, in [`crate::stats::QUEUE_RATES`] order.
    counts: [u64; 8],
}

const QUEUE_METRICS: [QueueMetric; 11] = [
    (
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered to consumers",
        Total::Sum,
        |q| q.stats.messages_ready as f64,
    ),
    (
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered to consumers but not yet acknowledged",
        Total::Sum,
        |q| q.stats.messages_unacknowledged as f64,
    ),
    (
        "rabbitmq_queue_messages",
        "gauge",
        "Sum of ready, unacknowledged and delayed messages - total queue depth",
        Total::Sum,
        |q| q.stats.messages() as f64,
    ),
    (
        "rabbitmq_queue_messages_bytes",
        "gauge",
        "Size in bytes of ready, unacknowledged and delayed messages",
        Total::Sum,
        |q| q.stats.message_bytes() as f64,
    ),
    (
        "rabbitmq_queue_consumers",
        "gauge",
        "Consumers on a queue",
        Total::Sum,
        |q| q.stats.consumers as f64,
    ),
    (
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        Total::Sum,
        |q| q.counts[0] as f64,
    ),
    (
        "warren_queue_head_message_age_seconds",
        "gauge",
        "How long the next message to deliver has waited in the queue, in seconds (aggregated: the oldest)",
        Total::Max,
        |q| {
            q.stats.head_arrived_ms.map_or(0.0, |at| {
                crate::durable::records::wall_clock_ms().saturating_sub(at) as f64 / 1000.0
            })
        },
    ),
    (
        "warren_queue_messages_delayed",
        "gauge",
        "Messages waiting for a due time (delayed retries, x-opt-delivery-time)",
        Total::Sum,
        |q| q.stats.messages_delayed as f64,
    ),
    (
        "warren_queue_messages_delivered_total",
        "counter",
        "Total number of messages a queue delivered (basic.consume and basic.get, with and without ack)",
        Total::Sum,
        |q| q.counts[5] as f64,
    ),
    (
        "warren_queue_messages_redelivered_total",
        "counter",
        "Total number of messages a queue delivered again",
        Total::Sum,
        |q| q.counts[6] as f64,
    ),
    (
        "warren_queue_messages_acknowledged_total",
        "counter",
        "Total number of a queue's deliveries acknowledged",
        Total::Sum,
        |q| q.counts[7] as f64,
    ),
];

/// Every queue, with its stats and counts.
pub(super) fn queues(broker: &Broker) -> Vec<Queued> {
    broker
        .vhosts()
        .iter()
        .flat_map(|v| {
            v.queues()
                .into_iter()
                .map(|q| Queued {
                    vhost: v.name.to_string(),
                    name: q.name.to_string(),
                    stats: q.stats(),
                    counts: q.counters.values(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The queue metrics: one sample per queue, or their total; the per-queue
/// counters only per queue.
pub(super) fn render(page: &mut Page, queues: &[Queued], per_object: bool) {
    for (name, kind, help, total, read) in QUEUE_METRICS {
        let samples: Vec<(String, f64)> = if per_object {
            queues
                .iter()
                .map(|q| {
                    let labels = format!(
                        "{{vhost=\"{}\",queue=\"{}\"}}",
                        escape(&q.vhost),
                        escape(&q.name)
                    );
                    (labels, read(q))
                })
                .collect()
        } else {
            let values = queues.iter().map(read);
            let value = match total {
                Total::Sum => values.sum(),
                Total::Max => values.fold(0.0, f64::max),
            };
            vec![(String::new(), value)]
        };
        // A counter summed over queues would go down when a queue is
        // deleted: the aggregated page leaves the per-queue counters out.
        if per_object || kind == "gauge" {
            page.family(name, kind, help, &samples);
        }
    }
}

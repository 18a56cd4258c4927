//! Prometheus text exposition (format 0.0.4) with `rabbitmq_prometheus`'s
//! metric names: `/metrics` has totals as RabbitMQ aggregates them,
//! `/metrics/per-object` one sample per queue, labelled `vhost` and `queue`.
//! No authentication, as RabbitMQ's Prometheus endpoint.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::broker::Broker;
use crate::queue::QueueStats;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The queue metrics: name, help, and how to read one queue's value.
type QueueMetric = (&'static str, &'static str, fn(&QueueStats) -> u64);

const QUEUE_METRICS: [QueueMetric; 7] = [
    (
        "rabbitmq_queue_messages_ready",
        "Messages ready to be delivered to consumers",
        |s| s.messages_ready,
    ),
    (
        "rabbitmq_queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
        |s| s.messages_unacknowledged,
    ),
    (
        "rabbitmq_queue_messages",
        "Sum of ready, unacknowledged and delayed messages - total queue depth",
        QueueStats::messages,
    ),
    (
        "rabbitmq_queue_messages_bytes",
        "Size in bytes of ready, unacknowledged and delayed messages",
        QueueStats::message_bytes,
    ),
    (
        "warren_queue_head_message_age_seconds",
        "How long the next message to deliver has waited in the queue, in seconds",
        |s| {
            s.head_arrived_ms.map_or(0, |at| {
                crate::durable::records::wall_clock_ms().saturating_sub(at) / 1000
            })
        },
    ),
    (
        "warren_queue_messages_delayed",
        "Messages waiting for a due time (delayed retries, x-opt-delivery-time)",
        |s| s.messages_delayed,
    ),
    ("rabbitmq_queue_consumers", "Consumers on a queue", |s| {
        s.consumers
    }),
];

/// `# HELP`, `# TYPE` and the samples of one gauge.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value escaped as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every queue's (vhost, name, stats).
fn queue_stats(broker: &Broker) -> Vec<(String, String, QueueStats)> {
    broker
        .vhosts()
        .iter()
        .flat_map(|v| {
            v.queues()
                .into_iter()
                .map(|q| (v.name.to_string(), q.name.to_string(), q.stats()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The totals page.
pub fn render(broker: &Broker) -> String {
    let mut out = String::new();
    let node = escape(&broker.cluster_name);
    gauge(
        &mut out,
        "rabbitmq_identity_info",
        "RabbitMQ node & cluster identity info",
        &[(
            format!("{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\"}}"),
            1,
        )],
    );
    gauge(
        &mut out,
        "rabbitmq_build_info",
        "RabbitMQ & Erlang/OTP version info",
        &[(
            format!(
                "{{rabbitmq_version=\"{}\",product=\"Warren\",product_version=\"{}\"}}",
                super::MANAGEMENT_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
            1,
        )],
    );
    let connections = broker.connections.len() as u64;
    let channels: u64 = broker
        .connections
        .iter()
        .map(|c| c.channels().len() as u64)
        .sum();
    let queues = queue_stats(broker);
    let consumers: u64 = queues.iter().map(|(_, _, s)| s.consumers).sum();
    let plain = |v: u64| vec![(String::new(), v)];
    gauge(
        &mut out,
        "rabbitmq_connections",
        "Connections currently open",
        &plain(connections),
    );
    gauge(
        &mut out,
        "rabbitmq_channels",
        "Channels currently open",
        &plain(channels),
    );
    gauge(
        &mut out,
        "rabbitmq_consumers",
        "Consumers currently connected",
        &plain(consumers),
    );
    gauge(
        &mut out,
        "rabbitmq_queues",
        "Queues available",
        &plain(queues.len() as u64),
    );
    for (name, help, read) in QUEUE_METRICS {
        let total = queues.iter().map(|(_, _, s)| read(s)).sum();
        gauge(&mut out, name, help, &plain(total));
    }
    gauge(
        &mut out,
        "rabbitmq_process_resident_memory_bytes",
        "Memory used in bytes",
        &plain(crate::alarms::resident_memory().unwrap_or(0)),
    );
    out
}

/// The per-queue page.
pub fn render_per_object(broker: &Broker) -> String {
    let mut out = String::new();
    let queues = queue_stats(broker);
    for (name, help, read) in QUEUE_METRICS {
        let samples: Vec<(String, u64)> = queues
            .iter()
            .map(|(vhost, queue, s)| {
                (
                    format!(
                        "{{vhost=\"{}\",queue=\"{}\"}}",
                        escape(vhost),
                        escape(queue)
                    ),
                    read(s),
                )
            })
            .collect();
        gauge(&mut out, name, help, &samples);
    }
    out
}

/// GET /metrics.
pub async fn metrics(State(broker): State<Arc<Broker>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&broker)).into_response()
}

/// GET /metrics/per-object.
pub async fn metrics_per_object(State(broker): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render_per_object(&broker),
    )
        .into_response()
}

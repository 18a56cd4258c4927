//! Prometheus text exposition (format 0.0.4) with `rabbitmq_prometheus`'s
//! metric names, types and labels, so that RabbitMQ's Grafana dashboards
//! (RabbitMQ-Overview) work unchanged: `/metrics` aggregates as RabbitMQ's
//! default endpoint does, `/metrics/per-object` has the same families with
//! one sample per queue (labelled `vhost` and `queue`) for the queue ones.
//! Warren's own metrics are prefixed `warren_`. A RabbitMQ metric Warren
//! cannot measure (Erlang VM internals, Raft, streams) is absent rather
//! than a made-up constant; README's "Metrics" lists both.
//! No authentication, as RabbitMQ's Prometheus endpoint.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::broker::Broker;
use crate::queue::QueueStats;
use crate::stats::CHANNEL_RATES;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The protocol label of RabbitMQ's global counters.
const PROTOCOL: &str = "{protocol=\"amqp091\"}";

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
struct Queued {
    vhost: String,
    name: String,
    stats: QueueStats,
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

/// The global counters derived from the channels' counts: name, help and
/// the index in [`CHANNEL_RATES`].
const CHANNEL_COUNTERS: [(&str, &str, &str); 10] = [
    (
        "rabbitmq_global_messages_received_total",
        "Total number of messages received from publishers",
        "publish",
    ),
    (
        "rabbitmq_global_messages_confirmed_total",
        "Total number of messages confirmed to publishers",
        "confirm",
    ),
    (
        "rabbitmq_global_messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        "return_unroutable",
    ),
    (
        "rabbitmq_global_messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        "drop_unroutable",
    ),
    (
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        "deliver",
    ),
    (
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        "deliver_no_ack",
    ),
    (
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        "get",
    ),
    (
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        "get_no_ack",
    ),
    (
        "rabbitmq_global_messages_delivered_total",
        "Total number of messages delivered to consumers",
        "deliver_get",
    ),
    (
        "rabbitmq_global_messages_redelivered_total",
        "Total number of messages redelivered to consumers",
        "redeliver",
    ),
];

/// The bucket bounds of `rabbitmq_message_size_bytes` spelled as RabbitMQ
/// spells them (the dashboard selects buckets by these strings).
const SIZE_BUCKET_LABELS: [&str; 9] = [
    "100.0", "1000.0", "10000.0", "100000.0", "1e+06", "1e+07", "5e+07", "1e+08", "+Inf",
];

/// An exposition page being written.
struct Page(String);

impl Page {
    /// `# HELP`, `# TYPE` and the samples (labels, value) of one family.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    /// One unlabelled gauge.
    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help, &[(String::new(), value)]);
    }

    /// One unlabelled counter.
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help, &[(String::new(), value as f64)]);
    }
}

/// A label value escaped as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every queue, with its stats and counts.
fn queues(broker: &Broker) -> Vec<Queued> {
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

/// The page: aggregated, or per object.
pub fn render(broker: &Broker, per_object: bool) -> String {
    let mut page = Page(String::new());
    identity(
        &mut page,
        broker,
        if per_object {
            "per-object"
        } else {
            "aggregated"
        },
    );
    let queues = queues(broker);
    objects(&mut page, broker, &queues);
    global(&mut page, broker, &queues);
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
    process(&mut page, broker);
    page.0
}

/// `rabbitmq_identity_info` (the dashboards join every query on it) and
/// `rabbitmq_build_info`.
fn identity(page: &mut Page, broker: &Broker, endpoint: &str) {
    let node = escape(&broker.cluster_name);
    page.family(
        "rabbitmq_identity_info",
        "gauge",
        "RabbitMQ node & cluster identity info",
        &[(
            format!(
                "{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_endpoint=\"{endpoint}\"}}"
            ),
            1.0,
        )],
    );
    page.family(
        "rabbitmq_build_info",
        "gauge",
        "RabbitMQ & Erlang/OTP version info (Warren: the RabbitMQ version it is compatible with, and its own)",
        &[(
            format!(
                "{{rabbitmq_version=\"{}\",product_name=\"Warren\",product_version=\"{}\"}}",
                super::MANAGEMENT_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
}

/// Connections, channels, consumers and queues: how many now, and the churn.
fn objects(page: &mut Page, broker: &Broker, queues: &[Queued]) {
    let global = &broker.global;
    let connections = broker.connections.len() as u64;
    let channels: u64 = broker
        .connections
        .iter()
        .map(|c| c.channel_count() as u64)
        .sum();
    let consumers: u64 = queues.iter().map(|q| q.stats.consumers).sum();
    page.gauge(
        "rabbitmq_connections",
        "Connections currently open",
        connections as f64,
    );
    page.gauge(
        "rabbitmq_channels",
        "Channels currently open",
        channels as f64,
    );
    page.gauge(
        "rabbitmq_consumers",
        "Consumers currently connected",
        consumers as f64,
    );
    page.gauge("rabbitmq_queues", "Queues available", queues.len() as f64);
    let opened = global.connections_opened.get();
    page.counter(
        "rabbitmq_connections_opened_total",
        "Total number of connections opened",
        opened,
    );
    page.counter(
        "rabbitmq_connections_closed_total",
        "Total number of connections closed or terminated",
        global.monotonic("connections_closed", opened.saturating_sub(connections)),
    );
    let opened = global.channels_opened.get();
    page.counter(
        "rabbitmq_channels_opened_total",
        "Total number of channels opened",
        opened,
    );
    page.counter(
        "rabbitmq_channels_closed_total",
        "Total number of channels closed",
        global.monotonic("channels_closed", opened.saturating_sub(channels)),
    );
    let (mut declared, mut created, mut deleted) = (0, 0, 0);
    for vhost in broker.vhosts() {
        declared += vhost.queue_churn.declared.get();
        created += vhost.queue_churn.created.get();
        deleted += vhost.queue_churn.deleted.get();
    }
    for (name, help, value) in [
        (
            "queues_declared",
            "Total number of queues declared",
            declared,
        ),
        ("queues_created", "Total number of queues created", created),
        ("queues_deleted", "Total number of queues deleted", deleted),
    ] {
        let name_total = format!("rabbitmq_{name}_total");
        page.counter(&name_total, help, global.monotonic(name, value));
    }
}

/// RabbitMQ's global counters (`rabbitmq_global_*`, labelled `protocol`),
/// the publishers and consumers, and the message size histogram.
fn global(page: &mut Page, broker: &Broker, queues: &[Queued]) {
    let global = &broker.global;
    let mut totals = broker.retired.values();
    let mut publishers = 0u64;
    let connections: Vec<_> = broker
        .connections
        .iter()
        .map(|c| c.value().clone())
        .collect();
    for connection in connections {
        for (total, value) in totals.iter_mut().zip(connection.totals()) {
            *total += value;
        }
        publishers += connection
            .channels()
            .iter()
            .filter(|c| c.counters.publish.get() > 0)
            .count() as u64;
    }
    let total = |rate: &str| {
        CHANNEL_RATES
            .iter()
            .position(|r| *r == rate)
            .map_or(0, |i| totals[i])
    };
    let with_protocol = |value: u64| [(PROTOCOL.to_owned(), value as f64)];
    for (name, help, rate) in CHANNEL_COUNTERS {
        let value = global.monotonic(name, total(rate));
        page.family(name, "counter", help, &with_protocol(value));
    }
    for (name, help, value) in [
        (
            "rabbitmq_global_messages_acknowledged_total",
            "Total number of messages acknowledged by consumers",
            global.monotonic("acknowledged", total("ack")),
        ),
        (
            "rabbitmq_global_messages_received_confirm_total",
            "Total number of messages received from publishers expecting confirmations",
            global.received_confirm.get(),
        ),
        (
            "rabbitmq_global_messages_routed_total",
            "Total number of messages routed to queues or streams",
            global.routed.get(),
        ),
        (
            "rabbitmq_global_messages_get_empty_total",
            "Total number of times basic.get operations fetched no message",
            global.get_empty.get(),
        ),
    ] {
        page.family(name, "counter", help, &with_protocol(value));
    }
    let consumers: u64 = queues.iter().map(|q| q.stats.consumers).sum();
    page.family(
        "rabbitmq_global_publishers",
        "gauge",
        "Current number of publishers (open channels that have published)",
        &with_protocol(publishers),
    );
    page.family(
        "rabbitmq_global_consumers",
        "gauge",
        "Current number of consumers",
        &with_protocol(consumers),
    );
    let (buckets, sum) = global.message_sizes.cumulative();
    let name = "rabbitmq_message_size_bytes";
    let _ = writeln!(
        page.0,
        "# HELP {name} Size of messages received from publishers"
    );
    let _ = writeln!(page.0, "# TYPE {name} histogram");
    for (le, count) in SIZE_BUCKET_LABELS.iter().zip(buckets) {
        let _ = writeln!(
            page.0,
            "{name}_bucket{{protocol=\"amqp091\",le=\"{le}\"}} {count}"
        );
    }
    let _ = writeln!(page.0, "{name}_sum{PROTOCOL} {sum}");
    let _ = writeln!(
        page.0,
        "{name}_count{PROTOCOL} {}",
        buckets[buckets.len() - 1]
    );
}

/// Memory, disk, file descriptors and uptime: what Warren measures of its
/// process and host.
fn process(page: &mut Page, broker: &Broker) {
    if let Some(rss) = crate::alarms::resident_memory() {
        page.gauge(
            "rabbitmq_process_resident_memory_bytes",
            "Memory used in bytes",
            rss as f64,
        );
    }
    let limit = broker.alarms.memory_limit();
    if limit != u64::MAX {
        page.gauge(
            "rabbitmq_resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            limit as f64,
        );
    }
    if let Ok(free) = fs2::available_space(&broker.config.data_dir) {
        page.gauge(
            "rabbitmq_disk_space_available_bytes",
            "Disk space available in bytes",
            free as f64,
        );
    }
    if let Ok(limit) = broker.config.disk_free_limit_bytes() {
        page.gauge(
            "rabbitmq_disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            limit as f64,
        );
    }
    let alarm = broker.alarms.current();
    page.gauge(
        "rabbitmq_alarms_memory_used_watermark",
        "Is 1 if VM memory watermark alarm is in effect",
        f64::from(u8::from(alarm.memory)),
    );
    page.gauge(
        "rabbitmq_alarms_free_disk_space_watermark",
        "Is 1 if free disk space watermark alarm is in effect",
        f64::from(u8::from(alarm.disk)),
    );
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        page.gauge(
            "rabbitmq_process_open_fds",
            "Open file descriptors",
            fds.count() as f64,
        );
    }
    if let Some(max) = max_fds() {
        page.gauge(
            "rabbitmq_process_max_fds",
            "Open file descriptors limit",
            max as f64,
        );
    }
    page.gauge(
        "rabbitmq_erlang_uptime_seconds",
        "Node uptime (Warren: seconds since the broker started)",
        f64::from(broker.clock.now()),
    );
}

/// The soft limit of open files (Linux); `None` elsewhere or unlimited.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// GET /metrics.
pub async fn metrics(State(broker): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&broker, false),
    )
        .into_response()
}

/// GET /metrics/per-object.
pub async fn metrics_per_object(State(broker): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&broker, true),
    )
        .into_response()
}

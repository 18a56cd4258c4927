//! Connections, channels, consumers and queues with their churn, RabbitMQ's
//! global counters (`rabbitmq_global_*`) and the message size histogram.

use std::fmt::Write;

use super::Page;
use super::queues::Queued;
use crate::broker::Broker;
use crate::stats::CHANNEL_RATES;

/// The protocol label of RabbitMQ's global counters.
const PROTOCOL: &str = "{protocol=\"amqp091\"}";

/// The global counters derived from the channels' counts: name, help and
/// the rate's name in [`CHANNEL_RATES`].
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

/// Connections, channels, consumers and queues: how many now, and the churn.
pub(super) fn objects(page: &mut Page, broker: &Broker, queues: &[Queued]) {
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
pub(super) fn global(page: &mut Page, broker: &Broker, queues: &[Queued]) {
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

//! The node: `/api/overview`, `/api/whoami` and `/api/nodes`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use super::cluster::{ClusterExt, node_entry};
use super::rates::{RatesQuery, length_details, message_stats};
use super::{MANAGEMENT_VERSION, started};
use crate::broker::Broker;
use crate::broker::stats::OVERVIEW_LENGTHS;
use crate::stats::{CHANNEL_RATES, QUEUE_LENGTHS};

/// The node's name, as RabbitMQ's `rabbit@host`.
pub fn node_name(broker: &Broker) -> String {
    broker.cluster_name.clone()
}

/// The exchange types the node has.
fn exchange_types() -> Value {
    json!([
        {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
        {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
        {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
        {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
        {"name": "x-message-deduplication", "description": "Message Deduplication Exchange.", "enabled": true},
    ])
}

/// Connection, channel, exchange, queue and consumer counts the caller may see.
fn object_totals(broker: &Broker, caller: &Caller) -> Value {
    let (mut exchanges, mut queues, mut consumers) = (0u64, 0u64, 0u64);
    let (mut messages, mut ready, mut unacked) = (0u64, 0u64, 0u64);
    for vhost in broker.vhosts() {
        if !caller.sees_vhost(&vhost.name) {
            continue;
        }
        exchanges += vhost.exchanges().len() as u64;
        for queue in vhost.queues() {
            let stats = queue.stats();
            queues += 1;
            consumers += stats.consumers;
            ready += stats.messages_ready;
            unacked += stats.messages_unacknowledged;
            messages += stats.messages();
        }
    }
    let (mut connections, mut channels) = (0u64, 0u64);
    for conn in broker.connections.iter() {
        if caller.is_monitor() || conn.user == caller.user.name {
            connections += 1;
            channels += conn.channels().len() as u64;
        }
    }
    json!({
        "object_totals": {
            "channels": channels,
            "connections": connections,
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "queue_totals": {
            "messages": messages,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        },
    })
}

/// The overview's `message_stats`: every channel's counts, closed ones
/// included, with their rates; only users tagged monitoring or
/// administrator see the node's (others get `{}`).
fn overview_stats(
    broker: &Broker,
    caller: &Caller,
    rates: RatesQuery,
    totals: &mut Value,
) -> Value {
    if !caller.is_monitor() {
        return json!({});
    }
    let mut counts = broker.retired.values();
    for connection in broker.connections.iter() {
        for (total, value) in counts.iter_mut().zip(connection.totals()) {
            *total += value;
        }
    }
    length_details(
        &mut totals["queue_totals"],
        &QUEUE_LENGTHS,
        &broker.history,
        OVERVIEW_LENGTHS,
        rates.lengths(),
    );
    message_stats(&CHANNEL_RATES, &counts, &broker.history, rates.msg_rates())
}

/// GET /api/overview.
pub async fn overview(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(rates): Query<RatesQuery>,
) -> Response {
    let mut totals = object_totals(&broker, &caller);
    let message_stats = overview_stats(&broker, &caller, rates, &mut totals);
    let node = node_name(&broker);
    Json(json!({
        "management_version": MANAGEMENT_VERSION,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "product_version": MANAGEMENT_VERSION,
        "product_name": "RabbitMQ",
        "rabbitmq_version": MANAGEMENT_VERSION,
        "cluster_name": broker.cluster_name,
        "erlang_version": "none (Warren is written in Rust)",
        "disable_stats": false,
        "enable_queue_totals": true,
        "message_stats": message_stats,
        "statistics_interval": broker.config.collect_statistics_interval,
        "churn_rates": {},
        "queue_totals": totals["queue_totals"],
        "object_totals": totals["object_totals"],
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": [{
            "node": node,
            "protocol": "amqp",
            "ip_address": broker.config.bind.to_string(),
            "port": broker.config.port,
        }],
        "contexts": [],
    }))
    .into_response()
}

/// GET /api/whoami.
pub async fn whoami(caller: Caller) -> Response {
    Json(json!({"name": caller.user.name, "tags": caller.user.tags})).into_response()
}

fn node_json(broker: &Broker) -> Value {
    let memory = crate::alarms::resident_memory().unwrap_or(0);
    json!({
        "name": node_name(broker),
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "uptime": started().elapsed().as_millis() as u64,
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "mem_used": memory,
        "mem_limit": broker.alarms.memory_limit(),
        "mem_alarm": broker.alarms.current().memory,
        "disk_free_alarm": broker.alarms.current().disk,
        // A single node is never in maintenance mode (RabbitMQ 3.13+ reports it).
        "being_drained": false,
        "rabbitmq_version": MANAGEMENT_VERSION,
        "fd_used": open_fds(),
        "sockets_used": broker.connections.len(),
        "partitions": [],
        "run_queue": 0,
        "rates_mode": "none",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
    })
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Every node: this one alone, or every cluster member (with Warren's `cluster` object).
fn all_nodes(broker: &Broker, cluster: Option<&ClusterExt>) -> Vec<Value> {
    match cluster {
        None => vec![node_json(broker)],
        Some(ClusterExt(cluster)) => cluster
            .nodes()
            .iter()
            .map(|view| node_entry(view, view.this_node.then(|| node_json(broker))))
            .collect(),
    }
}

/// GET /api/nodes (tag monitoring).
pub async fn nodes(
    State(broker): State<Arc<Broker>>,
    cluster: Option<Extension<ClusterExt>>,
    caller: Caller,
) -> ApiResult {
    caller.require_monitor()?;
    let cluster = cluster.map(|Extension(c)| c);
    Ok(Json(json!(all_nodes(&broker, cluster.as_ref()))).into_response())
}

/// 401 unless the caller is a monitor, 404 unless `name` is this node.
fn this_node(broker: &Broker, caller: &Caller, name: &str) -> ApiResult<()> {
    caller.require_monitor()?;
    if name != node_name(broker) {
        return Err(ApiError::not_found());
    }
    Ok(())
}

/// GET /api/nodes/{node}: this node, or in a cluster any member.
pub async fn node(
    State(broker): State<Arc<Broker>>,
    cluster: Option<Extension<ClusterExt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_monitor()?;
    let cluster = cluster.map(|Extension(c)| c);
    all_nodes(&broker, cluster.as_ref())
        .into_iter()
        .find(|n| n["name"] == name.as_str())
        .map(|n| Json(n).into_response())
        .ok_or_else(ApiError::not_found)
}

/// GET /api/nodes/{node}/memory: Warren has no per-category breakdown of its
/// memory, which RabbitMQ words as `not_available`.
pub async fn node_memory(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    this_node(&broker, &caller, &name)?;
    Ok(Json(json!({"memory": "not_available"})).into_response())
}

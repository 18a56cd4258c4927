//! Connections, channels and consumers from the broker's live registry.
//! Management users see their own connections; monitors see all.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use super::json::table_to_json;
use super::listing::ListQuery;
use super::overview::node_name;
use super::rates::{RatesQuery, message_stats};
use super::vhosts::live_vhost;
use crate::broker::Broker;
use crate::broker::connections::{CLOSED_VIA_MANAGEMENT, LiveConnection};
use crate::channel::ChannelShared;
use crate::stats::CHANNEL_RATES;

fn visible(broker: &Broker, caller: &Caller) -> Vec<Arc<LiveConnection>> {
    let mut all: Vec<_> = broker
        .connections
        .iter()
        .filter(|c| caller.is_monitor() || c.user == caller.user.name)
        .map(|c| c.clone())
        .collect();
    all.sort_by_key(|c| c.id);
    all
}

fn connection_json(node: &str, c: &LiveConnection, rates: RatesQuery) -> Value {
    let connected_at = c
        .connected_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "name": c.name,
        "node": node,
        "vhost": c.vhost,
        "user": c.user,
        "user_who_performed_action": c.user,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "host": c.local.map(|l| l.ip().to_string()),
        "port": c.local.map(|l| l.port()),
        "protocol": "AMQP 0-9-1",
        "type": "network",
        "state": "running",
        "ssl": c.ssl,
        "channels": c.channels().len(),
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat.map_or(0, |h| h.as_secs()),
        "connected_at": connected_at,
        "client_properties": table_to_json(&c.client_properties),
        "message_stats": message_stats(&CHANNEL_RATES, &c.totals(), &c.history, rates.msg_rates()),
    })
}

/// GET /api/connections and /api/vhosts/{vhost}/connections.
pub async fn connections(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let only = existing_vhost(&broker, vhost.as_deref())?;
    let node = node_name(&broker);
    let items = visible(&broker, &caller)
        .iter()
        .filter(|c| only.is_none_or(|v| c.vhost == v))
        .map(|c| connection_json(&node, c, rates))
        .collect();
    query.respond(items)
}

/// The vhost a path names, 404 when it does not exist.
fn existing_vhost<'a>(broker: &Broker, named: Option<&'a String>) -> ApiResult<Option<&'a str>> {
    if let Some(name) = named {
        live_vhost(broker, name)?;
    }
    Ok(named.map(String::as_str))
}

fn find(broker: &Broker, caller: &Caller, name: &str) -> ApiResult<Arc<LiveConnection>> {
    visible(broker, caller)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)
}

/// GET /api/connections/{name}.
pub async fn connection(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let c = find(&broker, &caller, &name)?;
    Ok(Json(connection_json(&node_name(&broker), &c, rates)).into_response())
}

/// DELETE /api/connections/{name}: the client gets connection.close 320 with
/// the `X-Reason` header's text, or RabbitMQ's default reason.
pub async fn close_connection(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    find(&broker, &caller, &name)?.force_close(close_reason(&headers));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `X-Reason` header's text, or RabbitMQ's default reason.
fn close_reason(headers: &HeaderMap) -> &str {
    headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(CLOSED_VIA_MANAGEMENT)
}

/// GET /api/connections/username/{user}: that user's connections, in
/// RabbitMQ's short form (name, node, user, vhost).
pub async fn user_connections(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(user): Path<String>,
) -> Response {
    let node = node_name(&broker);
    let items: Vec<Value> = visible(&broker, &caller)
        .iter()
        .filter(|c| c.user == user)
        .map(|c| json!({"name": c.name, "node": node, "user": c.user, "vhost": c.vhost}))
        .collect();
    Json(items).into_response()
}

/// DELETE /api/connections/username/{user}: closes that user's connections
/// (204 also when there are none, as RabbitMQ).
pub async fn close_user_connections(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Response {
    for c in visible(&broker, &caller).iter().filter(|c| c.user == user) {
        c.force_close(close_reason(&headers));
    }
    StatusCode::NO_CONTENT.into_response()
}

fn channel_json(node: &str, c: &LiveConnection, ch: &ChannelShared, rates: RatesQuery) -> Value {
    let (unacked, global_prefetch) = {
        let unacked = ch.deliveries.lock().unacked.len();
        (unacked, ch.credit.prefetch.load(Ordering::Relaxed))
    };
    let report = &ch.report;
    json!({
        "name": format!("{} ({})", c.name, ch.id),
        "number": ch.id,
        "node": node,
        "vhost": c.vhost,
        "user": c.user,
        "state": "running",
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "consumer_count": ch.consumers.lock().len(),
        "messages_unacknowledged": unacked,
        "messages_unconfirmed": report.unconfirmed.load(Ordering::Relaxed),
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "confirm": report.confirm.load(Ordering::Relaxed),
        "transactional": report.transactional.load(Ordering::Relaxed),
        "prefetch_count": report.prefetch.load(Ordering::Relaxed),
        "global_prefetch_count": global_prefetch,
        "user_who_performed_action": c.user,
        "message_stats": message_stats(
            &CHANNEL_RATES,
            &ch.counters.values(),
            &ch.history,
            rates.msg_rates(),
        ),
    })
}

fn channels_json(broker: &Broker, conns: &[Arc<LiveConnection>], rates: RatesQuery) -> Vec<Value> {
    let node = node_name(broker);
    conns
        .iter()
        .flat_map(|c| {
            c.channels()
                .iter()
                .map(|ch| channel_json(&node, c, ch, rates))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// GET /api/channels and /api/connections/{name}/channels.
pub async fn channels(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    connection: Option<Path<String>>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let conns = match connection {
        Some(Path(name)) => vec![find(&broker, &caller, &name)?],
        None => visible(&broker, &caller),
    };
    query.respond(channels_json(&broker, &conns, rates))
}

/// The delivery acknowledgement timeout reported per consumer, in
/// milliseconds: Warren enforces none, reported as 0.
const CONSUMER_TIMEOUT_MS: u64 = 0;

fn consumers_json(broker: &Broker, caller: &Caller, only: Option<&str>) -> Vec<Value> {
    let node = node_name(broker);
    let mut out = Vec::new();
    for vhost in broker.vhosts() {
        if only.is_some_and(|o| o != vhost.name) || !caller.sees_vhost(&vhost.name) {
            continue;
        }
        for queue in vhost.queues() {
            for consumer in queue.consumers() {
                let owner = broker.connections.get(&consumer.sink.connection_id());
                let channel = consumer.sink.channel_id();
                let channel_details = owner.map_or(json!({}), |c| {
                    json!({
                        "name": format!("{} ({})", c.name, channel),
                        "number": channel,
                        "node": node,
                        "connection_name": c.name,
                        "peer_host": c.peer.ip().to_string(),
                        "peer_port": c.peer.port(),
                        "user": c.user,
                    })
                });
                out.push(json!({
                    "consumer_tag": consumer.tag.to_string(),
                    "queue": {"name": queue.name, "vhost": vhost.name},
                    "channel_details": channel_details,
                    "ack_required": !consumer.no_ack,
                    "exclusive": consumer.exclusive,
                    "prefetch_count": consumer.credit.prefetch,
                    "priority": consumer.priority,
                    "active": true,
                    "activity_status": "up",
                    "arguments": {},
                    // RabbitMQ 3.13+ reports it; rabbitmqadmin requires it.
                    "consumer_timeout": CONSUMER_TIMEOUT_MS,
                }));
            }
        }
    }
    out
}

/// GET /api/consumers and /api/consumers/{vhost}.
pub async fn consumers(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
) -> ApiResult {
    let only = existing_vhost(&broker, vhost.as_deref())?;
    Ok(Json(consumers_json(&broker, &caller, only)).into_response())
}

//! `/api/queues`: list, show, declare (PUT) and delete queues, with the
//! permissions an AMQP client with the caller's credentials would need.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::api::{
    API_CONNECTION, ApiError, ApiResult, DeleteQuery, bool_field, created_or_updated, parse_body,
};
use super::caller::Caller;
use super::json::{json_to_table, table_to_json};
use super::listing::{ListQuery, list_in_vhosts, one_in_vhost};
use super::overview::node_name;
use super::rates::{RatesQuery, length_details, message_stats};
use super::vhosts::{live_vhost, vhost_to_declare};
use crate::auth::{Kind, Permission};
use crate::broker::Broker;
use crate::durable::records::wall_clock_ms;
use crate::meta::{Arguments, DefinitionOp, NodeId};
use crate::queue::Queue;
use crate::queue::stream::StreamQueue;
use crate::stats::{QUEUE_CAPACITY, QUEUE_LENGTHS, QUEUE_RATES};

/// How many recent samples consumer capacity averages.
const CAPACITY_SAMPLES: usize = 12;
use crate::queue::notify_cancelled;
use crate::vhost::{QueueDeclare, RemoteQueue, VHost};
use warren_codec::types::AMQPValue;

fn queue_json(vhost: &str, node: &str, q: &Arc<Queue>, rates: RatesQuery) -> Value {
    let s = q.stats();
    let policy = q.policy();
    let exclusive_tag = q
        .consumers()
        .into_iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.to_string());
    let mut json = json!({
        "name": q.name,
        "vhost": vhost,
        "durable": q.spec.durable,
        "auto_delete": q.spec.auto_delete,
        "exclusive": q.spec.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.spec.arguments),
        "node": node,
        "type": q.type_name(),
        "state": "running",
        "consumers": s.consumers,
        "exclusive_consumer_tag": exclusive_tag,
        "messages": s.messages(),
        "messages_ready": s.messages_ready,
        "messages_unacknowledged": s.messages_unacknowledged,
        "messages_delayed": s.messages_delayed,
        "message_bytes": s.message_bytes(),
        "message_bytes_ready": s.message_bytes_ready,
        "message_bytes_unacknowledged": s.message_bytes_unacknowledged,
        "messages_ram": s.messages_ram(),
        "message_bytes_ram": s.message_bytes_ram(),
        "messages_paged_out": s.messages_paged_out,
        "message_bytes_paged_out": s.message_bytes_paged_out,
        // Bodies in memory plus a fixed overhead per message: an estimate, not a measurement.
        "memory": s.message_bytes_ram() + 64 * s.messages_ram() + 1024,
        "policy": policy.policy,
        "operator_policy": policy.operator_policy,
        "effective_policy_definition": policy.definition,
    });
    json["message_stats"] = message_stats(
        &QUEUE_RATES,
        &q.counters.values(),
        &q.history,
        rates.msg_rates(),
    );
    length_details(
        &mut json,
        &QUEUE_LENGTHS,
        &q.history,
        QUEUE_RATES.len(),
        rates.lengths(),
    );
    if let Some(timestamp) = s.head_message_timestamp {
        json["head_message_timestamp"] = Value::from(timestamp);
    }
    // Warren's own: how long the next message to deliver has waited.
    json["head_message_age_seconds"] = match s.head_arrived_ms {
        Some(arrived) => {
            let age = wall_clock_ms().saturating_sub(arrived);
            Value::from((age as f64 / 10.0).round() / 100.0)
        }
        None => Value::from(0),
    };
    // The share of recent samples in which consumers could take what was
    // ready (RabbitMQ's consumer capacity; 0 without consumers).
    let capacity = if s.consumers == 0 {
        0.0
    } else {
        q.history.mean(QUEUE_CAPACITY, CAPACITY_SAMPLES)
    };
    json["consumer_capacity"] = Value::from(capacity);
    json["consumer_utilisation"] = Value::from(capacity);
    if let Some(stream) = q.stream() {
        stream_json(&mut json, node, stream);
    }
    // As the plugin's `message_deduplication_cache_info`: ids cached and the bound.
    if let Some((entries, size)) = q.dedup_cache_info() {
        json["message_deduplication_cache_info"] = json!({"entries": entries, "size": size});
    }
    json
}

/// A quorum queue's RabbitMQ fields: `leader` (also its `node`), `members`, `online`
/// (members whose group this node hears from: the leader's view when it is here).
fn quorum_json(v: &crate::vhost::VHost, mut json: Value, q: &Arc<Queue>) -> Value {
    let Some(quorum) = q.quorum() else {
        return json;
    };
    let name = |id: crate::names::NodeId| {
        v.meta()
            .and_then(|m| m.node_name(id))
            .unwrap_or_else(|| id.to_string())
    };
    let members: Vec<String> = quorum
        .placement()
        .members
        .iter()
        .map(|&m| name(m))
        .collect();
    let online: Vec<String> = quorum.online().into_iter().map(name).collect();
    if let Some(leader) = quorum.leader() {
        json["leader"] = Value::from(name(leader));
        json["node"] = Value::from(name(leader));
    }
    json["members"] = json!(members);
    json["online"] = json!(online);
    json
}

/// A stream's fields: RabbitMQ 3.10's (`members`, `online`, `readers`) and
/// Warren's `stream` object (offsets, size on disk, each consumer's offset
/// and lag, the offsets kept for named consumers).
fn stream_json(json: &mut Value, node: &str, stream: &StreamQueue) {
    let s = stream.stats();
    let lag = |offset: u64| s.committed_offset.saturating_sub(offset);
    let consumers = stream.consumers();
    json["members"] = json!([node]);
    json["online"] = json!([node]);
    json["readers"] = json!({ node: consumers.len() });
    let consumers: Vec<Value> = consumers
        .iter()
        .map(|c| {
            json!({
                "consumer_tag": c.consumer().tag.to_string(),
                "channel": c.sink().channel_id(),
                "connection": c.sink().connection_id().to_string(),
                "name": c.name(),
                "active": stream.is_active(c),
                "offset": c.offset(),
                "lag": lag(c.offset()),
                "arguments": table_to_json(c.arguments()),
            })
        })
        .collect();
    let named: Vec<Value> = stream
        .named_offsets()
        .into_iter()
        .map(|(name, offset, attached)| {
            json!({"name": name, "offset": offset, "lag": lag(offset), "attached": attached})
        })
        .collect();
    json["stream"] = json!({
        "first_offset": s.first_offset,
        "last_offset": s.last_offset,
        "committed_offset": s.committed_offset,
        "messages": s.messages,
        "size_bytes": s.size_bytes,
        "segments": s.segments,
        "consumers": consumers,
        "named_consumers": named,
    });
}

/// A queue living on another cluster node: its definition and home; its counts are that
/// node's to give (ask its API) until queues are reachable from every node.
fn remote_json(v: &VHost, r: &RemoteQueue) -> Value {
    let kind = match r.arguments.inner().get("x-queue-type") {
        Some(AMQPValue::LongString(s)) if s.as_bytes() == b"stream" => "stream",
        _ if !r.members.is_empty() => "quorum",
        _ => "classic",
    };
    let mut json = json!({
        "name": r.name,
        "vhost": v.name.to_string(),
        "durable": r.durable,
        "auto_delete": r.auto_delete,
        "exclusive": r.exclusive_owner.is_some(),
        "arguments": table_to_json(&r.arguments),
        "node": v.home_name(r),
        "type": kind,
        "state": "running",
    });
    if !r.members.is_empty() {
        let name = |id: crate::names::NodeId| {
            v.meta()
                .and_then(|m| m.node_name(id))
                .unwrap_or_else(|| id.to_string())
        };
        json["members"] = json!(r.members.iter().map(|&m| name(m)).collect::<Vec<_>>());
    }
    json
}

/// GET /api/queues and /api/queues/{vhost}.
pub async fn queues(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let node = node_name(&broker);
    let only = vhost.as_deref().map(String::as_str);
    list_in_vhosts(&broker, &caller, only, &query, |v| {
        let mut all: Vec<Value> = v
            .queues()
            .iter()
            .map(|q| quorum_json(v, queue_json(&v.name, &node, q, rates), q))
            .collect();
        all.extend(v.remote_queues().iter().map(|r| remote_json(v, r)));
        all
    })
}

/// GET /api/queues/{vhost}/{name}.
pub async fn queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let node = node_name(&broker);
    one_in_vhost(&broker, &caller, &vhost, &query, |v| {
        v.queue(&name)
            .map(|q| quorum_json(v, queue_json(&v.name, &node, &q, rates), &q))
            .or_else(|| v.remote_queue(&name).map(|r| remote_json(v, &r)))
    })
}

/// PUT /api/queues/{vhost}/{name}: 201 created, 204 already there, 400 when
/// inequivalent (the AMQP text as reason).
pub async fn put_queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let v = vhost_to_declare(&broker, &caller, &vhost, Kind::Queue, &name)?;
    let request = QueueDeclare {
        name,
        passive: false,
        durable: bool_field(&body, "durable", false),
        exclusive: false,
        auto_delete: bool_field(&body, "auto_delete", false),
        arguments: json_to_table(body.get("arguments").unwrap_or(&Value::Null))?,
        server_named: false,
        quorum: None,
    };
    let created = v.queue(&request.name).is_none() && v.remote_queue(&request.name).is_none();
    let op = DefinitionOp::DeclareQueue {
        name: request.name,
        durable: request.durable,
        exclusive: false,
        auto_delete: request.auto_delete,
        server_named: false,
        arguments: Arguments(request.arguments),
        home: v.meta().map_or(NodeId(0), |m| m.node()),
        id: None,
        members: Vec::new(),
    };
    v.change(op, API_CONNECTION).await?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
    Ok(created_or_updated(created))
}

/// A queue the caller may act on with `permission`.
pub(super) fn queue_for(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    name: &str,
    permission: Permission,
) -> ApiResult<(Arc<VHost>, Arc<Queue>)> {
    let v = live_vhost(broker, vhost)?;
    let q = v.queue(name).ok_or_else(ApiError::not_found)?;
    caller.require(vhost, permission, Kind::Queue, name)?;
    Ok((v, q))
}

/// DELETE /api/queues/{vhost}/{name} (`if-unused`, `if-empty`).
pub async fn delete_queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult {
    if let Ok(v) = live_vhost(&broker, &vhost)
        && let Some(remote) = v.remote_queue(&name)
    {
        caller.require(&vhost, Permission::Configure, Kind::Queue, &name)?;
        if q.if_unused() || q.if_empty() {
            return Err(ApiError::bad_request(
                v.elsewhere(&remote, "a conditional delete").text,
            ));
        }
        let op = DefinitionOp::DeleteQueue {
            name: remote.name.clone(),
            id: Some(remote.id),
        };
        v.change(op, API_CONNECTION).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (v, queue) = queue_for(&broker, &caller, &vhost, &name, Permission::Configure)?;
    if q.if_unused() && queue.stats().consumers > 0 {
        return Err(ApiError::bad_request(format!(
            "{} in use",
            queue.describe()
        )));
    }
    if q.if_empty() && queue.stats().messages_ready > 0 {
        return Err(ApiError::bad_request(format!(
            "{} not empty",
            queue.describe()
        )));
    }
    let deleted = v.retire_queue_now(&queue).await?;
    notify_cancelled(&deleted.consumers).await;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! Exchanges, queues and bindings through the API, and the three message
//! operations RabbitMQ's UI offers: publish, get, purge. The caller needs the
//! same permissions an AMQP client with their credentials would need.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use warren_codec::ContentHeader;
use warren_codec::types::FieldTable;

use super::api::{
    ApiError, ApiResult, bool_field, created_or_updated, parse_body, require_keys, str_field,
};
use super::caller::Caller;
use super::json::{json_to_properties, json_to_table, properties_to_json, table_to_json};
use super::listing::ListQuery;
use crate::auth::{Kind, Permission};
use crate::channel::{ChannelShared, notify_cancelled};
use crate::connection::writer::Outbound;
use crate::message::Message;
use crate::queue::{GetResult, Queue, by_queue};
use crate::server::Broker;
use crate::vhost::{Destination, ExchangeEntry, QueueDeclare, VHost};

/// The connection id the API declares and binds as: no AMQP connection has
/// it, so the API cannot create exclusive queues and is refused by others'.
const API_CONNECTION: u64 = 0;

/// The API names the default exchange `amq.default`.
fn exchange_name(name: &str) -> &str {
    if name == "amq.default" { "" } else { name }
}

fn live_vhost(broker: &Broker, name: &str) -> ApiResult<Arc<VHost>> {
    broker.vhost(name).ok_or_else(ApiError::not_found)
}

/// 404 `vhost_not_found` where RabbitMQ answers it (creating in a missing vhost).
fn vhost_for_create(broker: &Broker, name: &str) -> ApiResult<Arc<VHost>> {
    broker.vhost(name).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        error: "not_found",
        reason: "vhost_not_found".into(),
    })
}

fn exchange_json(vhost: &str, x: &ExchangeEntry) -> Value {
    json!({
        "name": x.name,
        "vhost": vhost,
        "type": x.spec.kind.as_str(),
        "durable": x.spec.durable,
        "auto_delete": x.spec.auto_delete,
        "internal": x.spec.internal,
        "arguments": table_to_json(&x.spec.arguments),
        "user_who_performed_action": "rmq-internal",
    })
}

fn visible_vhosts(
    broker: &Broker,
    caller: &Caller,
    only: Option<&str>,
) -> ApiResult<Vec<Arc<VHost>>> {
    if let Some(name) = only {
        let vhost = live_vhost(broker, name)?;
        if !caller.sees_vhost(name) {
            return Err(ApiError::not_authorised("Access refused."));
        }
        return Ok(vec![vhost]);
    }
    Ok(broker
        .vhosts()
        .into_iter()
        .filter(|v| caller.sees_vhost(&v.name))
        .collect())
}

fn list_exchanges(
    broker: &Broker,
    caller: &Caller,
    only: Option<&str>,
    query: &ListQuery,
) -> ApiResult {
    let mut items = Vec::new();
    for vhost in visible_vhosts(broker, caller, only)? {
        items.extend(
            vhost
                .exchanges()
                .iter()
                .map(|x| exchange_json(&vhost.name, x)),
        );
    }
    query.respond(items)
}

/// GET /api/exchanges.
pub async fn exchanges(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    list_exchanges(&broker, &caller, None, &query)
}

/// GET /api/exchanges/{vhost}.
pub async fn exchanges_in(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    list_exchanges(&broker, &caller, Some(&vhost), &query)
}

/// GET /api/exchanges/{vhost}/{name}.
pub async fn exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhosts(&broker, &caller, Some(&vhost))?.remove(0);
    let x = v
        .exchange(exchange_name(&name))
        .ok_or_else(ApiError::not_found)?;
    Ok(query.respond_one(exchange_json(&vhost, &x)))
}

/// AMQP refusals of system names read "Access refused." through the API.
fn refused_as_api(error: crate::error::AmqpError) -> ApiError {
    if error.code == warren_codec::ReplyCode::AccessRefused {
        ApiError::not_authorised("Access refused.")
    } else {
        ApiError::amqp(error)
    }
}

/// PUT /api/exchanges/{vhost}/{name}: 201 created, 204 already there.
pub async fn put_exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let v = vhost_for_create(&broker, &vhost)?;
    caller.require(&vhost, Permission::Configure, Kind::Exchange, &name)?;
    if name.is_empty()
        || name == "amq.default"
        || name.starts_with("amq.") && v.exchange(&name).is_none()
    {
        return Err(ApiError::not_authorised("Access refused."));
    }
    let kind = str_field(&body, "type").unwrap_or("direct");
    if crate::vhost::exchanges::parse_kind(kind).is_err() {
        return Err(ApiError::bad_request(format!(
            "unknown exchange type '{kind}'"
        )));
    }
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let created = v.exchange(&name).is_none();
    v.declare_exchange(
        &name,
        kind,
        false,
        bool_field(&body, "durable", false),
        bool_field(&body, "auto_delete", false),
        bool_field(&body, "internal", false),
        &arguments,
    )
    .map_err(|e| ApiError::bad_request(e.text))?;
    Ok(created_or_updated(created))
}

/// `if-unused` / `if-empty` on DELETE.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
}

/// DELETE /api/exchanges/{vhost}/{name}.
pub async fn delete_exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult {
    let v = live_vhost(&broker, &vhost)?;
    let name = exchange_name(&name);
    v.exchange(name).ok_or_else(ApiError::not_found)?;
    caller.require(&vhost, Permission::Configure, Kind::Exchange, name)?;
    v.delete_exchange(name, q.if_unused.as_deref() == Some("true"))
        .map_err(refused_as_api)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// POST /api/exchanges/{vhost}/{name}/publish: `{"routed": bool}`.
pub async fn publish(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    require_keys(
        &body,
        &["properties", "routing_key", "payload", "payload_encoding"],
    )?;
    let v = live_vhost(&broker, &vhost)?;
    let exchange = exchange_name(&name);
    caller.require(&vhost, Permission::Write, Kind::Exchange, exchange)?;
    let routing_key = str_field(&body, "routing_key").unwrap_or_default();
    let payload = str_field(&body, "payload").unwrap_or_default();
    let payload = match str_field(&body, "payload_encoding") {
        Some("base64") => STANDARD
            .decode(payload)
            .map_err(|_| ApiError::bad_request("payload_not_base64"))?,
        _ => payload.as_bytes().to_vec(),
    };
    let properties = json_to_properties(body.get("properties").unwrap_or(&Value::Null))?;
    let queues = v
        .route(exchange, routing_key, properties.headers().as_ref())
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code.code(), e.reply_text())))?;
    let header = ContentHeader::from_properties(payload.len() as u64, &properties)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let message = Arc::new(Message {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        header,
        properties,
        body: payload.into(),
        cc_routed: true,
    });
    for queue in &queues {
        queue.publish(message.clone());
    }
    Ok(Json(json!({"routed": !queues.is_empty()})).into_response())
}

fn queue_json(vhost: &str, node: &str, q: &Arc<Queue>) -> Value {
    let s = q.stats();
    let exclusive_tag = q
        .consumers()
        .into_iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.to_string());
    json!({
        "name": q.name,
        "vhost": vhost,
        "durable": q.spec.durable,
        "auto_delete": q.spec.auto_delete,
        "exclusive": q.spec.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.spec.arguments),
        "node": node,
        "type": "classic",
        "state": "running",
        "consumers": s.consumers,
        "exclusive_consumer_tag": exclusive_tag,
        "messages": s.messages_ready + s.messages_unacknowledged,
        "messages_ready": s.messages_ready,
        "messages_unacknowledged": s.messages_unacknowledged,
        "message_bytes": s.message_bytes_ready + s.message_bytes_unacknowledged,
        "message_bytes_ready": s.message_bytes_ready,
        "message_bytes_unacknowledged": s.message_bytes_unacknowledged,
        // Bodies plus a fixed overhead per message: an estimate, not a measurement.
        "memory": s.message_bytes_ready + s.message_bytes_unacknowledged
            + 64 * (s.messages_ready + s.messages_unacknowledged) + 1024,
        "policy": null,
        "operator_policy": null,
        "effective_policy_definition": {},
    })
}

fn list_queues(
    broker: &Broker,
    caller: &Caller,
    only: Option<&str>,
    query: &ListQuery,
) -> ApiResult {
    let node = super::admin::node_name(broker);
    let mut items = Vec::new();
    for vhost in visible_vhosts(broker, caller, only)? {
        items.extend(
            vhost
                .queues()
                .iter()
                .map(|q| queue_json(&vhost.name, &node, q)),
        );
    }
    query.respond(items)
}

/// GET /api/queues.
pub async fn queues(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    list_queues(&broker, &caller, None, &query)
}

/// GET /api/queues/{vhost}.
pub async fn queues_in(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    list_queues(&broker, &caller, Some(&vhost), &query)
}

/// GET /api/queues/{vhost}/{name}.
pub async fn queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let v = visible_vhosts(&broker, &caller, Some(&vhost))?.remove(0);
    let q = v.queue(&name).ok_or_else(ApiError::not_found)?;
    let node = super::admin::node_name(&broker);
    Ok(query.respond_one(queue_json(&vhost, &node, &q)))
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
    let v = vhost_for_create(&broker, &vhost)?;
    caller.require(&vhost, Permission::Configure, Kind::Queue, &name)?;
    let request = QueueDeclare {
        name,
        passive: false,
        durable: bool_field(&body, "durable", false),
        exclusive: false,
        auto_delete: bool_field(&body, "auto_delete", false),
        arguments: json_to_table(body.get("arguments").unwrap_or(&Value::Null))?,
        server_named: false,
    };
    let (_, created) = v
        .declare_queue(&request, API_CONNECTION)
        .map_err(refused_as_api)?;
    Ok(created_or_updated(created))
}

/// A queue the caller may act on with `permission`.
fn queue_for(
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
    let (v, queue) = queue_for(&broker, &caller, &vhost, &name, Permission::Configure)?;
    if q.if_unused.as_deref() == Some("true") && queue.stats().consumers > 0 {
        return Err(ApiError::bad_request(format!(
            "{} in use",
            queue.describe()
        )));
    }
    if q.if_empty.as_deref() == Some("true") && queue.stats().messages_ready > 0 {
        return Err(ApiError::bad_request(format!(
            "{} not empty",
            queue.describe()
        )));
    }
    let deleted = v.remove_queue(&queue);
    notify_cancelled(&deleted.consumers).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// DELETE /api/queues/{vhost}/{name}/contents: purge.
pub async fn purge(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let (_, queue) = queue_for(&broker, &caller, &vhost, &name, Permission::Read)?;
    queue.purge();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// POST /api/queues/{vhost}/{name}/get: `count`, `ackmode`
/// (`ack_requeue_true`, `ack_requeue_false`, `reject_requeue_true`,
/// `reject_requeue_false`), `encoding` (`auto` or `base64`), `truncate`.
pub async fn get_messages(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    require_keys(&body, &["count", "ackmode", "encoding"])?;
    let v = live_vhost(&broker, &vhost)?;
    let Some(queue) = v.queue(&name) else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: v.no_queue(&name).reply_text(),
        });
    };
    caller.require(&vhost, Permission::Read, Kind::Queue, &name)?;
    queue
        .check_exclusive(API_CONNECTION)
        .map_err(|e| ApiError::bad_request(e.reply_text()))?;
    let count = body
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .min(10_000) as usize;
    let ackmode = str_field(&body, "ackmode").unwrap_or_default();
    let base64 = str_field(&body, "encoding") == Some("base64");
    let truncate = body
        .get("truncate")
        .and_then(Value::as_u64)
        .map(|t| t as usize);
    // The queue hands messages to a channel; this one exists only for the request.
    let (tx, mut rx) = mpsc::channel(1);
    let shared = ChannelShared::new(0, tx.clone(), false);
    let mut out = Vec::new();
    for _ in 0..count {
        let Ok(permit) = tx.reserve().await else {
            break;
        };
        if let GetResult::Empty = queue.get(&shared, false, permit) {
            break;
        }
        let Ok(Outbound::GetOk {
            redelivered,
            message_count,
            message,
            ..
        }) = rx.try_recv()
        else {
            break;
        };
        let body =
            &message.body[..truncate.map_or(message.body.len(), |t| t.min(message.body.len()))];
        let (payload, encoding) = match std::str::from_utf8(body) {
            Ok(text) if !base64 => (text.to_owned(), "string"),
            _ => (STANDARD.encode(body), "base64"),
        };
        out.push(json!({
            "payload_bytes": message.body.len(),
            "redelivered": redelivered,
            "exchange": message.exchange,
            "routing_key": message.routing_key,
            "message_count": message_count,
            "properties": properties_to_json(&message.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
    }
    let taken = shared.take_all_unacked();
    match ackmode {
        "ack_requeue_false" => by_queue(taken, |q, seqs| q.ack(seqs)),
        "reject_requeue_false" => by_queue(taken, |q, seqs| q.reject(seqs)),
        _ => by_queue(taken, |q, seqs| q.requeue(seqs)),
    }
    Ok(Json(Value::Array(out)).into_response())
}

/// RabbitMQ's `properties_key`: the routing key (`~` when empty), plus `~` and
/// a hash of the arguments when there are any.
fn properties_key(key: &str, arguments: &FieldTable) -> String {
    let key = key.replace('%', "%25").replace('~', "%7E");
    if arguments.inner().is_empty() {
        return if key.is_empty() { "~".into() } else { key };
    }
    let digest = Sha256::digest(table_to_json(arguments).to_string().as_bytes());
    format!("{key}~{}", &URL_SAFE_NO_PAD.encode(digest)[..16])
}

fn binding_json(
    vhost: &str,
    source: &str,
    destination: &Destination,
    key: &str,
    args: &FieldTable,
) -> Value {
    let (name, kind) = match destination {
        Destination::Queue(q) => (q.as_str(), "queue"),
        Destination::Exchange(x) => (x.as_str(), "exchange"),
    };
    json!({
        "source": source,
        "vhost": vhost,
        "destination": name,
        "destination_type": kind,
        "routing_key": key,
        "arguments": table_to_json(args),
        "properties_key": properties_key(key, args),
    })
}

/// Every binding of a vhost: first the default exchange's implicit one per
/// queue, then the explicit ones by source, as RabbitMQ lists them.
fn vhost_bindings(v: &VHost) -> Vec<Value> {
    let mut out: Vec<Value> = v
        .queues()
        .iter()
        .map(|q| {
            binding_json(
                &v.name,
                "",
                &Destination::Queue(q.name.clone()),
                &q.name,
                &FieldTable::default(),
            )
        })
        .collect();
    for x in v.exchanges() {
        let routes = x.routes.read();
        let mut bindings: Vec<_> = routes.bindings().collect();
        bindings.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out.extend(
            bindings
                .into_iter()
                .map(|(d, k, a)| binding_json(&v.name, &x.name, d, k, a)),
        );
    }
    out
}

fn bindings_where(
    broker: &Broker,
    caller: &Caller,
    vhost: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    for v in visible_vhosts(broker, caller, vhost)? {
        out.extend(vhost_bindings(&v).into_iter().filter(&keep));
    }
    // RabbitMQ's order: by vhost, source, destination, routing key, properties key.
    let text = |b: &Value, k: &str| b[k].as_str().unwrap_or_default().to_owned();
    out.sort_by_cached_key(|b| {
        [
            "vhost",
            "source",
            "destination",
            "routing_key",
            "properties_key",
        ]
        .map(|k| text(b, k))
    });
    Ok(out)
}

fn as_json(items: Vec<Value>) -> Response {
    Json(Value::Array(items)).into_response()
}

/// GET /api/bindings.
pub async fn bindings(State(broker): State<Arc<Broker>>, caller: Caller) -> ApiResult {
    Ok(as_json(bindings_where(&broker, &caller, None, |_| true)?))
}

/// GET /api/bindings/{vhost}.
pub async fn bindings_in(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    Ok(as_json(bindings_where(
        &broker,
        &caller,
        Some(&vhost),
        |_| true,
    )?))
}

/// GET /api/exchanges/{vhost}/{name}/bindings/source.
pub async fn bindings_from(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let name = exchange_name(&name).to_owned();
    live_vhost(&broker, &vhost)?
        .exchange(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(as_json(bindings_where(
        &broker,
        &caller,
        Some(&vhost),
        |b| b["source"] == name.as_str(),
    )?))
}

/// GET /api/exchanges/{vhost}/{name}/bindings/destination.
pub async fn bindings_to_exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    live_vhost(&broker, &vhost)?
        .exchange(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(as_json(bindings_where(
        &broker,
        &caller,
        Some(&vhost),
        |b| b["destination_type"] == "exchange" && b["destination"] == name.as_str(),
    )?))
}

/// GET /api/queues/{vhost}/{name}/bindings.
pub async fn bindings_to_queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    live_vhost(&broker, &vhost)?
        .queue(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(as_json(bindings_where(
        &broker,
        &caller,
        Some(&vhost),
        |b| b["destination_type"] == "queue" && b["destination"] == name.as_str(),
    )?))
}

/// The destination a binding path names: `q` or `e`.
fn destination(kind: &str, name: &str) -> ApiResult<Destination> {
    match kind {
        "q" => Ok(Destination::Queue(name.to_owned())),
        "e" => Ok(Destination::Exchange(name.to_owned())),
        _ => Err(ApiError::not_found()),
    }
}

fn between(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    source: &str,
    dest: &Destination,
) -> ApiResult<Vec<Value>> {
    let v = live_vhost(broker, vhost)?;
    v.exchange(source).ok_or_else(ApiError::not_found)?;
    let exists = match dest {
        Destination::Queue(q) => v.queue(q).is_some(),
        Destination::Exchange(x) => v.exchange(x).is_some(),
    };
    if !exists {
        return Err(ApiError::not_found());
    }
    let kind = match dest {
        Destination::Queue(_) => "queue",
        Destination::Exchange(_) => "exchange",
    };
    bindings_where(broker, caller, Some(vhost), |b| {
        b["source"] == source && b["destination_type"] == kind && b["destination"] == dest.name()
    })
}

/// GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}.
pub async fn bindings_between(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
) -> ApiResult {
    let dest = destination(&kind, &dest)?;
    Ok(as_json(between(
        &broker,
        &caller,
        &vhost,
        exchange_name(&source),
        &dest,
    )?))
}

/// POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}: 201 with the
/// new binding's properties key as `Location`.
pub async fn add_binding(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let destination = destination(&kind, &dest)?;
    let v = live_vhost(&broker, &vhost)?;
    let dest_kind = if kind == "q" {
        Kind::Queue
    } else {
        Kind::Exchange
    };
    caller.require(&vhost, Permission::Write, dest_kind, &dest)?;
    caller.require(&vhost, Permission::Read, Kind::Exchange, &source)?;
    let key = str_field(&body, "routing_key").unwrap_or_default();
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    v.bind(
        exchange_name(&source),
        destination,
        key,
        &arguments,
        API_CONNECTION,
    )
    .map_err(refused_as_api)?;
    let location = format!("{dest}/{}", properties_key(key, &arguments));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

fn find_binding(
    broker: &Broker,
    caller: &Caller,
    path: &(String, String, String, String, String),
) -> ApiResult<Value> {
    let (vhost, source, kind, dest, props) = path;
    let dest = destination(kind, dest)?;
    between(broker, caller, vhost, exchange_name(source), &dest)?
        .into_iter()
        .find(|b| b["properties_key"] == props.as_str())
        .ok_or_else(ApiError::not_found)
}

/// GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}.
pub async fn binding(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(path): Path<(String, String, String, String, String)>,
) -> ApiResult {
    Ok(Json(find_binding(&broker, &caller, &path)?).into_response())
}

/// DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}.
pub async fn delete_binding(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(path): Path<(String, String, String, String, String)>,
) -> ApiResult {
    let found = find_binding(&broker, &caller, &path)?;
    let (vhost, source, kind, dest, _) = &path;
    let dest_kind = if kind == "q" {
        Kind::Queue
    } else {
        Kind::Exchange
    };
    caller.require(vhost, Permission::Write, dest_kind, dest)?;
    caller.require(vhost, Permission::Read, Kind::Exchange, source)?;
    let key = found["routing_key"].as_str().unwrap_or_default();
    let arguments = json_to_table(&found["arguments"])?;
    // The arguments as stored, not as re-read from JSON (types would differ).
    let stored = live_vhost(&broker, vhost)?
        .exchange(exchange_name(source))
        .and_then(|x| {
            x.routes
                .read()
                .bindings()
                .find(|(d, k, a)| d.name() == dest && *k == key && properties_key(k, a) == path.4)
                .map(|(_, _, a)| a.clone())
        })
        .unwrap_or(arguments);
    live_vhost(&broker, vhost)?
        .unbind(
            exchange_name(source),
            destination(kind, dest)?,
            key,
            &stored,
            API_CONNECTION,
        )
        .map_err(refused_as_api)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

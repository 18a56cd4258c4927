//! `/api/bindings` and the bindings of one exchange or queue: list, show, add
//! and delete, each binding named by RabbitMQ's `properties_key`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warren_codec::types::FieldTable;

use super::api::{API_CONNECTION, ApiError, ApiResult, parse_body, str_field};
use super::caller::Caller;
use super::exchanges::exchange_name;
use super::json::{json_to_table, table_to_json};
use super::listing::per_vhost;
use super::vhosts::live_vhost;
use crate::auth::{Kind, Permission};
use crate::broker::Broker;
use crate::meta::{Arguments, BindTo, DefinitionOp};
use crate::vhost::{Destination, VHost};

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

/// The destination's kind as RabbitMQ's JSON names it.
fn destination_type(destination: &Destination) -> &'static str {
    match destination {
        Destination::Queue(_) => "queue",
        Destination::Exchange(_) => "exchange",
    }
}

fn binding_json(
    vhost: &str,
    source: &str,
    destination: &Destination,
    key: &str,
    args: &FieldTable,
) -> Value {
    json!({
        "source": source,
        "vhost": vhost,
        "destination": destination.name(),
        "destination_type": destination_type(destination),
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

/// The bindings `keep` picks of the vhosts the caller sees (or of `vhost`),
/// in RabbitMQ's order.
fn bindings_where(
    broker: &Broker,
    caller: &Caller,
    vhost: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult<Vec<Value>> {
    let mut out = per_vhost(broker, caller, vhost, vhost_bindings)?;
    out.retain(|b| keep(b));
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

/// The bindings of `vhost` that `keep` picks, once `exists` finds in it what
/// the path names (404 otherwise).
fn bindings_of(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    exists: impl FnOnce(&VHost) -> bool,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult<Vec<Value>> {
    if !exists(&*live_vhost(broker, vhost)?) {
        return Err(ApiError::not_found());
    }
    bindings_where(broker, caller, Some(vhost), keep)
}

/// Whether `destination` exists in `v`.
fn exists(v: &VHost, destination: &Destination) -> bool {
    match destination {
        Destination::Queue(q) => v.queue(q).is_some(),
        Destination::Exchange(x) => v.exchange(x).is_some(),
    }
}

/// Whether a binding leads to `destination`.
fn leads_to(binding: &Value, destination: &Destination) -> bool {
    binding["destination_type"] == destination_type(destination)
        && binding["destination"] == destination.name()
}

/// The bindings to `destination` in `vhost`, 404 when it does not exist.
fn bindings_to(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    destination: Destination,
) -> ApiResult {
    let found = bindings_of(
        broker,
        caller,
        vhost,
        |v| exists(v, &destination),
        |b| leads_to(b, &destination),
    )?;
    Ok(as_json(found))
}

fn as_json(items: Vec<Value>) -> Response {
    Json(Value::Array(items)).into_response()
}

/// GET /api/bindings and /api/bindings/{vhost}.
pub async fn bindings(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
) -> ApiResult {
    let only = vhost.as_deref().map(String::as_str);
    Ok(as_json(bindings_where(&broker, &caller, only, |_| true)?))
}

/// GET /api/exchanges/{vhost}/{name}/bindings/source.
pub async fn bindings_from(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let name = exchange_name(&name);
    let found = bindings_of(
        &broker,
        &caller,
        &vhost,
        |v| v.exchange(name).is_some(),
        |b| b["source"] == name,
    )?;
    Ok(as_json(found))
}

/// GET /api/exchanges/{vhost}/{name}/bindings/destination.
pub async fn bindings_to_exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    bindings_to(&broker, &caller, &vhost, Destination::Exchange(name.into()))
}

/// GET /api/queues/{vhost}/{name}/bindings.
pub async fn bindings_to_queue(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    bindings_to(&broker, &caller, &vhost, Destination::Queue(name.into()))
}

/// The destination a binding path names: `q` or `e`.
fn destination(kind: &str, name: &str) -> ApiResult<Destination> {
    match kind {
        "q" => Ok(Destination::Queue(name.into())),
        "e" => Ok(Destination::Exchange(name.into())),
        _ => Err(ApiError::not_found()),
    }
}

/// The bindings from `source` to `dest`, 404 unless both exist.
fn between(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    source: &str,
    dest: &Destination,
) -> ApiResult<Vec<Value>> {
    bindings_of(
        broker,
        caller,
        vhost,
        |v| v.exchange(source).is_some() && exists(v, dest),
        |b| b["source"] == source && leads_to(b, dest),
    )
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

/// 401 unless the caller may bind as an AMQP client would: write on the
/// destination (`q` or `e`), read on the source exchange.
fn require_bind(
    caller: &Caller,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
) -> ApiResult<()> {
    let dest_kind = if kind == "q" {
        Kind::Queue
    } else {
        Kind::Exchange
    };
    caller.require(vhost, Permission::Write, dest_kind, dest)?;
    caller.require(vhost, Permission::Read, Kind::Exchange, source)
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
    require_bind(&caller, &vhost, &source, &kind, &dest)?;
    let key = str_field(&body, "routing_key").unwrap_or_default();
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let op = DefinitionOp::Bind {
        source: exchange_name(&source).to_owned(),
        destination: BindTo::from(&destination),
        routing_key: key.to_owned(),
        arguments: Arguments(arguments.clone()),
    };
    v.change(op, API_CONNECTION).await?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
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
    require_bind(&caller, vhost, source, kind, dest)?;
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
    let op = DefinitionOp::Unbind {
        source: exchange_name(source).to_owned(),
        destination: BindTo::from(&destination(kind, dest)?),
        routing_key: key.to_owned(),
        arguments: Arguments(stored),
    };
    live_vhost(&broker, vhost)?
        .change(op, API_CONNECTION)
        .await?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

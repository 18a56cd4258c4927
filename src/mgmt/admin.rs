//! The node and access control: overview, whoami, nodes, health checks,
//! vhosts, users and permissions.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, created_or_updated, parse_body, require_keys, str_field};
use super::caller::Caller;
use super::listing::ListQuery;
use super::{HttpListener, MANAGEMENT_VERSION, started};
use crate::auth::hashing;
use crate::auth::registry::parse_tags;
use crate::auth::{PermissionDef, RegistryError, UserDef, VHostDef};
use crate::server::Broker;

/// The node's name, as RabbitMQ's `rabbit@host`.
pub fn node_name(broker: &Broker) -> String {
    broker.cluster_name.clone()
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
            messages += stats.messages_ready + stats.messages_unacknowledged;
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

/// The exchange types the node has.
fn exchange_types() -> Value {
    json!([
        {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
        {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
        {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
        {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
    ])
}

/// GET /api/overview.
pub async fn overview(State(broker): State<Arc<Broker>>, caller: Caller) -> Response {
    let totals = object_totals(&broker, &caller);
    let node = node_name(&broker);
    Json(json!({
        "management_version": MANAGEMENT_VERSION,
        "rates_mode": "none",
        "exchange_types": exchange_types(),
        "product_version": MANAGEMENT_VERSION,
        "product_name": "RabbitMQ",
        "rabbitmq_version": MANAGEMENT_VERSION,
        "cluster_name": broker.cluster_name,
        "erlang_version": "none (Warren is written in Rust)",
        "disable_stats": false,
        "enable_queue_totals": true,
        "message_stats": {},
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

/// GET /api/nodes (tag monitoring).
pub async fn nodes(State(broker): State<Arc<Broker>>, caller: Caller) -> ApiResult {
    caller.require_monitor()?;
    Ok(Json(json!([node_json(&broker)])).into_response())
}

/// GET /api/nodes/{node}.
pub async fn node(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_monitor()?;
    if name != node_name(&broker) {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_json(&broker)).into_response())
}

/// GET /api/nodes/{node}/memory: Warren has no per-category breakdown of its
/// memory, which RabbitMQ words as `not_available`.
pub async fn node_memory(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_monitor()?;
    if name != node_name(&broker) {
        return Err(ApiError::not_found());
    }
    Ok(Json(json!({"memory": "not_available"})).into_response())
}

/// GET /api/health/checks/alarms: 200 without alarms, 503 with the alarms in
/// effect (RabbitMQ's body).
pub async fn alarms(State(broker): State<Arc<Broker>>, _caller: Caller) -> Response {
    let alarm = broker.alarms.current();
    if !alarm.any() {
        return Json(json!({"status": "ok"})).into_response();
    }
    let node = node_name(&broker);
    let mut alarms = Vec::new();
    if alarm.memory {
        alarms.push(json!({"node": node, "resource": "memory"}));
    }
    if alarm.disk {
        alarms.push(json!({"node": node, "resource": "disk"}));
    }
    let body = json!({
        "status": "failed",
        "reason": "There are alarms in effect in the cluster",
        "alarms": alarms,
    });
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// The port the management API answers on: where this request came in, or
/// the configured one for a router served without [`super::serve`].
fn http_port(broker: &Broker, listener: Option<Extension<HttpListener>>) -> u16 {
    listener.map_or(broker.config.management_port, |Extension(l)| l.0.port())
}

/// The node's listeners as RabbitMQ names their protocols: AMQP and the API.
fn listeners(broker: &Broker, http: u16) -> [(&'static str, u16); 2] {
    [("amqp", broker.config.port), ("http", http)]
}

/// 503 with RabbitMQ's body for a failed boolean health check.
fn check_failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// GET /api/health/checks/port-listener/{port}: 200 when the node listens
/// on `port`, 503 with the ports it does listen on otherwise.
pub async fn port_listener(
    State(broker): State<Arc<Broker>>,
    _caller: Caller,
    listener: Option<Extension<HttpListener>>,
    Path(port): Path<String>,
) -> ApiResult {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = listeners(&broker, http_port(&broker, listener))
        .iter()
        .map(|(_, p)| *p)
        .collect();
    if ports.contains(&port) {
        return Ok(Json(json!({"status": "ok", "port": port})).into_response());
    }
    Ok(check_failed(json!({
        "status": "failed",
        "reason": "No active listener",
        "missing": port,
        "ports": ports,
    })))
}

/// GET /api/health/checks/protocol-listener/{protocol}: 200 when the node has
/// a listener for `protocol` (`amqp091` and the like mean `amqp`), else 503.
pub async fn protocol_listener(
    State(broker): State<Arc<Broker>>,
    _caller: Caller,
    listener: Option<Extension<HttpListener>>,
    Path(protocol): Path<String>,
) -> Response {
    let protocol = match protocol.to_lowercase().as_str() {
        "amqp091" | "amqp0-9-1" | "amqp0.9.1" | "amqp10" | "amqp1.0" => "amqp".to_owned(),
        "management" => "http".to_owned(),
        other => other.to_owned(),
    };
    let protocols: Vec<&str> = listeners(&broker, http_port(&broker, listener))
        .iter()
        .map(|(name, _)| *name)
        .collect();
    if protocols.contains(&protocol.as_str()) {
        return Json(json!({"status": "ok", "protocol": protocol})).into_response();
    }
    check_failed(json!({
        "status": "failed",
        "reason": "No active listener",
        "missing": protocol,
        "protocols": protocols,
    }))
}

/// GET /api/health/checks/node-is-quorum-critical (and the mirror-sync one):
/// a single node is never critical to a quorum.
pub async fn not_quorum_critical(_caller: Caller) -> Response {
    Json(json!({"status": "ok", "reason": "single node cluster"})).into_response()
}

/// GET /api/health/checks/virtual-hosts: every vhost runs.
pub async fn vhosts_running(_caller: Caller) -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// GET /api/health/checks/certificate-expiration/{within}/{unit}: Warren has
/// no TLS listeners, so no certificate expires.
pub async fn certificates(
    _caller: Caller,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult {
    if within.parse::<u32>().is_err() {
        return Err(ApiError::bad_request("Invalid expiration value."));
    }
    if !["days", "weeks", "months", "years"].contains(&unit.as_str()) {
        return Err(ApiError::bad_request(
            "Time unit not recognised. Supported units: days, weeks, months, years.",
        ));
    }
    Ok(Json(json!({"status": "ok"})).into_response())
}

fn vhost_json(broker: &Broker, def: &VHostDef) -> Value {
    let (mut ready, mut unacked) = (0u64, 0u64);
    if let Some(vhost) = broker.vhost(&def.name) {
        for queue in vhost.queues() {
            let s = queue.stats();
            ready += s.messages_ready;
            unacked += s.messages_unacknowledged;
        }
    }
    json!({
        "name": def.name,
        "description": def.description,
        "tags": def.tags,
        "metadata": {"description": def.description, "tags": def.tags},
        "default_queue_type": "undefined",
        "tracing": false,
        "cluster_state": {node_name(broker): "running"},
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    })
}

/// GET /api/vhosts: those the caller has permissions in (all for monitors).
pub async fn vhosts(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let items = broker
        .auth
        .vhosts()
        .iter()
        .filter(|v| caller.sees_vhost(&v.name))
        .map(|v| vhost_json(&broker, v))
        .collect();
    query.respond(items)
}

/// GET /api/vhosts/{vhost}.
pub async fn vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    match broker.auth.vhost(&name) {
        Some(def) if caller.sees_vhost(&name) => Ok(query.respond_one(vhost_json(&broker, &def))),
        _ => Err(ApiError::not_found()),
    }
}

/// PUT /api/vhosts/{vhost}: 201 when created, 204 when it existed.
pub async fn put_vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let body = parse_body(&body)?;
    let tags = match body.get("tags") {
        Some(Value::String(s)) => parse_tags(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => broker.auth.vhost(&name).map(|v| v.tags).unwrap_or_default(),
    };
    let description = match str_field(&body, "description") {
        Some(d) => d.to_owned(),
        None => broker
            .auth
            .vhost(&name)
            .map(|v| v.description)
            .unwrap_or_default(),
    };
    let created = broker.add_vhost(VHostDef {
        name: name.clone(),
        description,
        tags,
    });
    if created {
        // As RabbitMQ: whoever creates a vhost through the API may use it.
        let all = PermissionDef {
            user: caller.user.name.clone(),
            vhost: name,
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        };
        broker.auth.set_permissions(all).map_err(registry_error)?;
    }
    Ok(created_or_updated(created))
}

/// DELETE /api/vhosts/{vhost}.
pub async fn delete_vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.delete_vhost(&name).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// GET /api/users (administrator).
pub async fn users(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_admin()?;
    let items = broker
        .auth
        .users()
        .iter()
        .map(|u| serde_json::to_value(u).unwrap_or(Value::Null))
        .collect();
    query.respond(items)
}

/// GET /api/users/{user}.
pub async fn user(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    let user = broker.auth.user(&name).ok_or_else(ApiError::not_found)?;
    Ok(Json(user).into_response())
}

/// PUT /api/users/{user}: `password` or `password_hash` (with optional
/// `hashing_algorithm`), and `tags`. Without either, an existing user keeps
/// their password and a new one gets none (cannot log in with a password).
pub async fn put_user(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let body = parse_body(&body)?;
    let tags = match body.get("tags") {
        Some(Value::String(s)) => parse_tags(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => return Err(ApiError::bad_request("tags_not_present")),
    };
    let existing = broker.auth.user(&name);
    let (password_hash, hashing_algorithm) = if let Some(pw) = str_field(&body, "password") {
        (hashing::hash_password(pw), hashing::SHA256.to_owned())
    } else if let Some(hash) = str_field(&body, "password_hash") {
        let algorithm = str_field(&body, "hashing_algorithm").unwrap_or(hashing::SHA256);
        (hash.to_owned(), algorithm.to_owned())
    } else if let Some(user) = &existing {
        (user.password_hash.clone(), user.hashing_algorithm.clone())
    } else {
        (String::new(), hashing::SHA256.to_owned())
    };
    let user = UserDef {
        name,
        password_hash,
        hashing_algorithm,
        tags,
        limits: existing.map(|u| u.limits).unwrap_or_default(),
    };
    let created = broker.auth.put_user(user).map_err(registry_error)?;
    Ok(created_or_updated(created))
}

fn registry_error(error: RegistryError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

/// DELETE /api/users/{user}.
pub async fn delete_user(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.delete_user(&name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// GET /api/permissions (administrator).
pub async fn permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_admin()?;
    let items = broker
        .auth
        .permissions()
        .iter()
        .map(permission_json)
        .collect();
    query.respond(items)
}

fn permission_json(p: &PermissionDef) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// GET /api/vhosts/{vhost}/permissions.
pub async fn vhost_permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = broker
        .auth
        .permissions()
        .iter()
        .filter(|p| p.vhost == vhost)
        .map(permission_json)
        .collect();
    Ok(Json(items).into_response())
}

/// GET /api/users/{user}/permissions.
pub async fn user_permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.user(&user).is_none() {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = broker
        .auth
        .permissions()
        .iter()
        .filter(|p| p.user == user)
        .map(permission_json)
        .collect();
    Ok(Json(items).into_response())
}

/// GET /api/permissions/{vhost}/{user}.
pub async fn permission(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    caller.require_admin()?;
    let p = broker
        .auth
        .permission(&vhost, &user)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&p)).into_response())
}

/// PUT /api/permissions/{vhost}/{user}: configure, write and read, all required.
pub async fn put_permission(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let body = parse_body(&body)?;
    require_keys(&body, &["configure", "write", "read"])?;
    let field = |k: &str| str_field(&body, k).unwrap_or_default().to_owned();
    let def = PermissionDef {
        user,
        vhost,
        configure: field("configure"),
        write: field("write"),
        read: field("read"),
    };
    let created = broker.auth.set_permissions(def).map_err(registry_error)?;
    Ok(created_or_updated(created))
}

/// DELETE /api/permissions/{vhost}/{user}.
pub async fn delete_permission(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.clear_permissions(&vhost, &user) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// GET /api/policies and /api/operator-policies: Warren has no policies, so
/// none are listed.
pub async fn no_policies(_caller: Caller) -> Response {
    Json(json!([])).into_response()
}

/// GET /api/feature-flags (administrator): Warren has no feature flags (one
/// node, no upgrades in place to coordinate), so none are listed.
pub async fn no_feature_flags(caller: Caller) -> ApiResult {
    caller.require_admin()?;
    Ok(Json(json!([])).into_response())
}

/// GET /api/parameters (policymaker): Warren has no runtime parameters.
pub async fn no_parameters(caller: Caller) -> ApiResult {
    caller.require_policymaker()?;
    Ok(Json(json!([])).into_response())
}

/// GET /api/policies/{vhost} and /api/operator-policies/{vhost}: none, or
/// 404 for a vhost that does not exist.
pub async fn no_policies_in(
    State(broker): State<Arc<Broker>>,
    _caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(json!([])).into_response())
}

/// GET /api/vhost-limits: Warren has no vhost limits, so none are listed.
pub async fn vhost_limits(_caller: Caller) -> Response {
    Json(json!([])).into_response()
}

/// GET /api/vhost-limits/{vhost}: none, or 404 for a vhost that does not exist.
pub async fn vhost_limits_of(
    State(broker): State<Arc<Broker>>,
    _caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(json!([])).into_response())
}

/// Users with limits set, as `{"user": ..., "value": {...}}`: administrators
/// see everyone's, others their own.
fn limits_json(broker: &Broker, caller: &Caller, only: Option<&str>) -> Vec<Value> {
    let admin = caller.require_admin().is_ok();
    broker
        .auth
        .users()
        .iter()
        .filter(|u| !u.limits.is_empty() && (admin || u.name == caller.user.name))
        .filter(|u| only.is_none_or(|name| u.name == name))
        .map(|u| json!({"user": u.name, "value": u.limits}))
        .collect()
}

/// GET /api/user-limits.
pub async fn user_limits(State(broker): State<Arc<Broker>>, caller: Caller) -> Response {
    Json(limits_json(&broker, &caller, None)).into_response()
}

/// GET /api/user-limits/{user}: 404 for a user that does not exist.
pub async fn user_limits_of(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult {
    if broker.auth.user(&user).is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(limits_json(&broker, &caller, Some(&user))).into_response())
}

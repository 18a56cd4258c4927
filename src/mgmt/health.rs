//! `/api/health/checks/*`: RabbitMQ's health checks as a single node answers
//! them, 200 with `{"status": "ok"}` or 503 with RabbitMQ's failure body.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::HttpListener;
use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use super::overview::node_name;
use crate::broker::Broker;

/// 503 with RabbitMQ's body for a failed health check.
fn check_failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
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
    check_failed(body)
}

/// The node's listeners as RabbitMQ names their protocols: AMQP and the API.
/// The API's port is where this request came in, or the configured one for a
/// router served without [`super::serve`].
fn listeners(
    broker: &Broker,
    listener: Option<Extension<HttpListener>>,
) -> Vec<(&'static str, u16)> {
    let config = &broker.config;
    let http = listener.map_or(config.management_port, |Extension(l)| l.0.port());
    // RabbitMQ's protocol names: `amqp/ssl` for amqps, `https` for the API over TLS.
    let http_protocol = if config.management_tls {
        "https"
    } else {
        "http"
    };
    let mut all = vec![("amqp", config.port), (http_protocol, http)];
    if config.tls_port != 0 {
        all.push(("amqp/ssl", config.tls_port));
    }
    all
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
    let ports: Vec<u16> = listeners(&broker, listener)
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
        "amqps" | "amqp-ssl" => "amqp/ssl".to_owned(),
        other => other.to_owned(),
    };
    let protocols: Vec<&str> = listeners(&broker, listener)
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

/// GET /api/health/checks/node-is-mirror-sync-critical: Warren has no mirrored queues.
pub async fn not_mirror_sync_critical(_caller: Caller) -> Response {
    Json(json!({"status": "ok", "reason": "single node cluster"})).into_response()
}

/// GET /api/health/checks/node-is-quorum-critical: 503 with the quorum queues that would
/// lose their majority if this node stopped (RabbitMQ's body); a single node is never
/// critical.
pub async fn not_quorum_critical(
    State(broker): State<Arc<Broker>>,
    cluster: Option<Extension<super::cluster::ClusterExt>>,
    _caller: Caller,
) -> Response {
    let Some(Extension(super::cluster::ClusterExt(cluster))) = cluster else {
        return Json(json!({"status": "ok", "reason": "single node cluster"})).into_response();
    };
    let critical = cluster.quorum_critical(&broker);
    if critical.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    let queues: Vec<Value> = critical
        .iter()
        .map(|c| {
            json!({
                "name": c.queue,
                "readable_name": format!("queue '{}' in vhost '{}'", c.queue, c.vhost),
                "virtual_host": c.vhost,
                "type": "quorum",
            })
        })
        .collect();
    check_failed(json!({
        "status": "failed",
        "reason": "There are quorum queues that would lose their quorum if the target node is shut down",
        "queues": queues,
    }))
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

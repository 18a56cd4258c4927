//! POST /api/route-explain/{vhost} (Warren's own): where a message would go,
//! hop by hop, without publishing. The body:
//!
//! ```json
//! {"exchange": "orders", "routing_key": "order.42",
//!  "headers": {"CC": ["audit"]},
//!  "properties": {"message_id": "m-1", "correlation_id": "c", "timestamp": 1700000000}}
//! ```
//!
//! `exchange` (`""` or `amq.default`: the default exchange) is required; the
//! rest is optional. `properties` is the publish API's shape (its `headers`
//! are used when `headers` is absent). The caller needs what publishing
//! needs: access to the vhost and write permission on the exchange.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, parse_body, require_keys, str_field};
use super::caller::Caller;
use super::exchanges::exchange_name;
use super::json::{json_to_properties, json_to_table, table_to_json};
use super::vhosts::live_vhost;
use crate::auth::{Kind, Permission};
use crate::broker::Broker;
use crate::names::Destination;
use crate::vhost::explain::Explanation;
use crate::vhost::publish::routing_properties;

/// POST /api/route-explain/{vhost}.
pub async fn explain(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    require_keys(&body, &["exchange"])?;
    let v = live_vhost(&broker, &vhost)?;
    let exchange = exchange_name(str_field(&body, "exchange").unwrap_or_default());
    caller.require(&vhost, Permission::Write, Kind::Exchange, exchange)?;
    let routing_key = str_field(&body, "routing_key").unwrap_or_default();
    let properties = json_to_properties(body.get("properties").unwrap_or(&Value::Null))?;
    let headers = match body.get("headers") {
        Some(h) if !h.is_null() => Some(json_to_table(h)?),
        _ => properties.headers().clone(),
    };
    let explanation = v
        .explain(
            exchange,
            routing_key,
            headers.as_ref(),
            &routing_properties(&properties),
        )
        .map_err(|e| match e.code.code() {
            404 => ApiError::not_found_because(e.text),
            403 => ApiError::not_authorised(e.text),
            _ => ApiError::bad_request(e.text),
        })?;
    let mut answer = explanation_json(exchange, &explanation);
    // A delayed exchange on the way keeps the message first: the walk shows
    // where it would go with today's bindings.
    let delayed_hop = explanation
        .hops
        .iter()
        .any(|hop| hop.kind == crate::delayed::EXCHANGE_TYPE);
    if delayed_hop && let Some(delay) = crate::delayed::delay_of(headers.as_ref()) {
        answer["delayed_ms"] = Value::from(delay);
    }
    Ok(Json(answer).into_response())
}

fn destination_json(d: &Destination) -> (&str, &'static str) {
    match d {
        Destination::Queue(q) => (q.as_str(), "queue"),
        Destination::Exchange(x) => (x.as_str(), "exchange"),
    }
}

/// The answer's shape (documented in README, "Route explain").
fn explanation_json(exchange: &str, e: &Explanation) -> Value {
    let hops: Vec<Value> = e
        .hops
        .iter()
        .map(|hop| {
            let bindings: Vec<Value> = hop
                .bindings
                .iter()
                .map(|b| {
                    let (name, kind) = destination_json(&b.destination);
                    json!({
                        "destination": name,
                        "destination_type": kind,
                        "routing_key": b.routing_key,
                        "arguments": table_to_json(&b.arguments),
                    })
                })
                .collect();
            let partition = hop.partition.as_ref().map(|p| {
                let (name, kind) = destination_json(&p.destination);
                json!({
                    "hashed": p.hashed,
                    "hash": p.hash,
                    "destination": name,
                    "destination_type": kind,
                    "of": p.of,
                })
            });
            json!({
                "exchange": hop.exchange,
                "type": hop.kind,
                "bindings": bindings,
                "partition": partition,
                "alternate_exchange": hop.alternate_exchange,
            })
        })
        .collect();
    json!({
        "exchange": exchange,
        "routing_keys": e.routing_keys,
        "routed": !e.queues.is_empty(),
        "queues": e.queues,
        "direct_reply_to_consumers": e.replies,
        "hops": hops,
    })
}

//! `/api/exchanges`: list, show, declare (PUT) and delete exchanges. The
//! caller needs the permissions an AMQP client with their credentials would
//! need; the API names the default exchange `amq.default`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::api::{
    ApiError, ApiResult, DeleteQuery, bool_field, created_or_updated, parse_body, str_field,
};
use super::caller::Caller;
use super::json::{json_to_table, table_to_json};
use super::listing::{ListQuery, list_in_vhosts, one_in_vhost};
use super::rates::{RatesQuery, message_stats};
use super::vhosts::{live_vhost, vhost_to_declare};
use crate::auth::{Kind, Permission};
use crate::broker::Broker;
use crate::meta::{Arguments, DefinitionOp};
use crate::mgmt::api::API_CONNECTION;
use crate::stats::EXCHANGE_RATES;
use crate::vhost::ExchangeEntry;

/// The API names the default exchange `amq.default`.
pub(super) fn exchange_name(name: &str) -> &str {
    if name == "amq.default" { "" } else { name }
}

fn exchange_json(vhost: &str, x: &ExchangeEntry, rates: RatesQuery) -> Value {
    let mut json = json!({
        "name": x.name,
        "vhost": vhost,
        "type": x.spec.type_name(),
        "durable": x.spec.durable,
        "auto_delete": x.spec.auto_delete,
        "internal": x.spec.internal,
        "arguments": table_to_json(&x.spec.arguments),
        "user_who_performed_action": "rmq-internal",
        "message_stats": message_stats(&EXCHANGE_RATES, &x.counters.values(), &x.history, rates.msg_rates()),
    });
    // Warren's own: what a delayed exchange holds, and when the next is due.
    if let Some(index) = &x.delayed {
        json["messages_delayed"] = Value::from(index.count());
        json["next_delayed_due"] = index.next_due().map_or(Value::Null, Value::from);
    }
    // As the plugin's `cache_info`: ids cached and the bound.
    if let Some(dedup) = &x.dedup {
        json["cache_info"] = json!({"entries": dedup.len(), "size": dedup.args().cache_size});
    }
    // RabbitMQ shows `policy` only on an exchange that has one.
    if let Some(policy) = &x.policy().policy {
        json["policy"] = Value::from(policy.as_str());
    }
    json
}

/// GET /api/exchanges and /api/exchanges/{vhost}.
pub async fn exchanges(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    let only = vhost.as_deref().map(String::as_str);
    list_in_vhosts(&broker, &caller, only, &query, |v| {
        v.exchanges()
            .iter()
            .map(|x| exchange_json(&v.name, x, rates))
            .collect::<Vec<_>>()
    })
}

/// GET /api/exchanges/{vhost}/{name}.
pub async fn exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RatesQuery>,
) -> ApiResult {
    one_in_vhost(&broker, &caller, &vhost, &query, |v| {
        v.exchange(exchange_name(&name))
            .map(|x| exchange_json(&v.name, &x, rates))
    })
}

/// PUT /api/exchanges/{vhost}/{name}: 201 created, 204 already there.
pub async fn put_exchange(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let v = vhost_to_declare(&broker, &caller, &vhost, Kind::Exchange, &name)?;
    if name.is_empty()
        || name == "amq.default"
        || name.starts_with("amq.") && v.exchange(&name).is_none()
    {
        return Err(ApiError::not_authorised("Access refused."));
    }
    let kind = str_field(&body, "type").unwrap_or("direct");
    if kind != crate::delayed::EXCHANGE_TYPE && crate::vhost::exchanges::parse_kind(kind).is_err() {
        return Err(ApiError::bad_request(format!(
            "unknown exchange type '{kind}'"
        )));
    }
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let created = v.exchange(&name).is_none();
    let op = DefinitionOp::DeclareExchange {
        name: name.clone(),
        type_name: kind.to_owned(),
        durable: bool_field(&body, "durable", false),
        auto_delete: bool_field(&body, "auto_delete", false),
        internal: bool_field(&body, "internal", false),
        arguments: Arguments(arguments),
    };
    v.change(op, API_CONNECTION)
        .await
        // Always 400 with the AMQP text (an inequivalent redeclare): the name
        // checks above gave the refusals that `?` would make 401s.
        .map_err(|e| ApiError::bad_request(e.text))?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
    Ok(created_or_updated(created))
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
    let op = DefinitionOp::DeleteExchange {
        name: name.to_owned(),
        if_unused: q.if_unused(),
    };
    v.change(op, API_CONNECTION).await?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker.storage.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

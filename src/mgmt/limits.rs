//! What Warren does not have, listed empty as RabbitMQ lists none: feature
//! flags; and vhost and
//! user limits (`/api/vhost-limits`, `/api/user-limits`): listed, set and
//! cleared by administrators, enforced by the broker (see `auth::limits`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, parse_body, require_keys};
use super::caller::Caller;
use crate::broker::Broker;
use crate::meta::BrokerOp;

/// An empty list: all Warren has of what these endpoints list.
fn none() -> Response {
    Json(json!([])).into_response()
}

/// GET /api/feature-flags (administrator): Warren has no feature flags (one
/// node, no upgrades in place to coordinate), so none are listed.
pub async fn no_feature_flags(caller: Caller) -> ApiResult {
    caller.require_admin()?;
    Ok(none())
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

/// GET /api/user-limits and /api/user-limits/{user} (404 for a user that
/// does not exist).
pub async fn user_limits(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    user: Option<Path<String>>,
) -> ApiResult {
    let only = user.as_deref().map(String::as_str);
    if only.is_some_and(|u| broker.auth.user(u).is_none()) {
        return Err(ApiError::not_found());
    }
    Ok(Json(limits_json(&broker, &caller, only)).into_response())
}

/// GET /api/vhost-limits and /api/vhost-limits/{vhost}: vhosts with limits
/// set, as `{"vhost": ..., "value": {...}}`, those the caller sees (404 for a
/// vhost that does not exist).
pub async fn vhost_limits(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
) -> ApiResult {
    let only = vhost.as_deref().map(String::as_str);
    if only.is_some_and(|v| broker.auth.vhost(v).is_none()) {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = broker
        .auth
        .vhost_limits()
        .into_iter()
        .filter(|l| only.is_none_or(|v| l.vhost == v) && caller.sees_vhost(&l.vhost))
        .map(|l| json!({"vhost": l.vhost, "value": l.value}))
        .collect();
    Ok(Json(items).into_response())
}

/// The `value` of a limit's PUT body (RabbitMQ: `[{key_missing,value}]`
/// without it).
fn limit_value(body: &Bytes) -> ApiResult<Value> {
    let body = parse_body(body)?;
    require_keys(&body, &["value"])?;
    Ok(body["value"].clone())
}

/// PUT /api/vhost-limits/{vhost}/{name} with `{"value": N}` (administrator):
/// 204; 400 with RabbitMQ's validation text for an unknown name or a value
/// that is not an integer; a negative value is kept and means no limit.
pub async fn put_vhost_limit(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found_because("vhost_not_found"));
    }
    let value = limit_value(&body)?;
    broker
        .change(BrokerOp::SetVHostLimit { vhost, name, value })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// DELETE /api/vhost-limits/{vhost}/{name} (administrator): 204, set or not
/// (as RabbitMQ); 404 for a vhost that does not exist.
pub async fn delete_vhost_limit(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    broker
        .change(BrokerOp::ClearVHostLimit { vhost, name })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// PUT /api/user-limits/{user}/{name} with `{"value": N}` (administrator):
/// 204; 400 with RabbitMQ's validation text; for an unknown user 400 with
/// RabbitMQ's `["no_such_user", user]` reason.
pub async fn put_user_limit(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.user(&user).is_none() {
        let reason = json!({"error": "bad_request", "reason": ["no_such_user", user]});
        return Ok((StatusCode::BAD_REQUEST, Json(reason)).into_response());
    }
    let value = limit_value(&body)?;
    broker
        .change(BrokerOp::SetUserLimit { user, name, value })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// DELETE /api/user-limits/{user}/{name} (administrator): 204, set or not;
/// 404 for an unknown user.
pub async fn delete_user_limit(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult {
    caller.require_admin()?;
    if broker.auth.user(&user).is_none() {
        return Err(ApiError::not_found());
    }
    broker
        .change(BrokerOp::ClearUserLimit { user, name })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! What Warren does not have, listed empty as RabbitMQ lists none: policies,
//! operator policies, runtime parameters, feature flags and vhost limits; and
//! user limits, which Warren keeps.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use crate::server::Broker;

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

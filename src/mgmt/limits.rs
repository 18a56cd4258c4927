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
use crate::broker::Broker;

/// An empty list: all Warren has of what these endpoints list.
fn none() -> Response {
    Json(json!([])).into_response()
}

/// GET /api/policies, /api/operator-policies and /api/vhost-limits, each also
/// per vhost: Warren has no policies and no vhost limits, so none are listed
/// (404 for a vhost that does not exist).
pub async fn none_listed(
    State(broker): State<Arc<Broker>>,
    _caller: Caller,
    vhost: Option<Path<String>>,
) -> ApiResult {
    if vhost.is_some_and(|Path(v)| broker.auth.vhost(&v).is_none()) {
        return Err(ApiError::not_found());
    }
    Ok(none())
}

/// GET /api/feature-flags (administrator): Warren has no feature flags (one
/// node, no upgrades in place to coordinate), so none are listed.
pub async fn no_feature_flags(caller: Caller) -> ApiResult {
    caller.require_admin()?;
    Ok(none())
}

/// GET /api/parameters (policymaker): Warren has no runtime parameters.
pub async fn no_parameters(caller: Caller) -> ApiResult {
    caller.require_policymaker()?;
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

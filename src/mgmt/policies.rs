//! Policies and operator policies (`/api/policies`, `/api/operator-policies`),
//! as RabbitMQ's API has them: any management user lists those of the vhosts
//! it sees; reading one and changing policies need the policymaker (or
//! administrator) tag and access to the vhost, operator policies the
//! administrator tag. A change applies at once to the vhost's queues and
//! exchanges (`Broker::put_policy`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::Value;

use super::api::{ApiError, ApiResult, created_or_updated, deleted, parse_body};
use super::caller::Caller;
use crate::broker::Broker;
use crate::meta::BrokerOp;
use crate::policy::{PolicyDef, PolicyError, PolicyKind};

/// 401 unless the caller may manage this kind of policy.
fn require(caller: &Caller, kind: PolicyKind) -> Result<(), ApiError> {
    match kind {
        PolicyKind::Policy => caller.require_policymaker(),
        PolicyKind::Operator => caller.require_admin(),
    }
}

/// The policies of `kind` the caller sees, of one vhost or all (404 for a
/// vhost that does not exist).
/// Any management user may list them, as in RabbitMQ (reading one needs the
/// tag that sets it).
fn list(broker: &Broker, caller: &Caller, kind: PolicyKind, vhost: Option<&str>) -> ApiResult {
    if vhost.is_some_and(|v| broker.auth.vhost(v).is_none()) {
        return Err(ApiError::not_found());
    }
    let items: Vec<PolicyDef> = broker
        .policies
        .list(kind, vhost)
        .into_iter()
        .filter(|p| caller.sees_vhost(&p.vhost))
        .collect();
    Ok(Json(items).into_response())
}

fn one(broker: &Broker, caller: &Caller, kind: PolicyKind, vhost: &str, name: &str) -> ApiResult {
    require(caller, kind)?;
    if !caller.sees_vhost(vhost) {
        return Err(ApiError::not_found());
    }
    let policy = broker
        .policies
        .get(kind, vhost, name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(policy).into_response())
}

async fn put(
    broker: &Broker,
    caller: &Caller,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    body: &Bytes,
) -> ApiResult {
    require(caller, kind)?;
    if broker.auth.vhost(vhost).is_none() {
        return Err(ApiError::not_found_because("vhost_not_found"));
    }
    caller.require_vhost_access(vhost)?;
    let body = Value::Object(parse_body(body)?);
    let def = PolicyDef::parse(kind, vhost, name, &body).map_err(refused)?;
    let created = broker.change(BrokerOp::PutPolicy { kind, def }).await?;
    Ok(created_or_updated(created))
}

async fn delete(
    broker: &Broker,
    caller: &Caller,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
) -> ApiResult {
    require(caller, kind)?;
    caller.require_vhost_access(vhost)?;
    let op = BrokerOp::DeletePolicy {
        kind,
        vhost: vhost.to_owned(),
        name: name.to_owned(),
    };
    deleted(broker.change(op).await?)
}

/// A refused policy as RabbitMQ's 400.
fn refused(error: PolicyError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

/// Which kind a handler serves: `OPERATOR` picks `/api/operator-policies`.
fn kind<const OPERATOR: bool>() -> PolicyKind {
    if OPERATOR {
        PolicyKind::Operator
    } else {
        PolicyKind::Policy
    }
}

/// GET /api/policies and /api/policies/{vhost} (and the operator ones).
pub async fn policies<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
) -> ApiResult {
    let only = vhost.as_deref().map(String::as_str);
    list(&broker, &caller, kind::<OPERATOR>(), only)
}

/// GET /api/policies/{vhost}/{name}.
pub async fn policy<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    one(&broker, &caller, kind::<OPERATOR>(), &vhost, &name)
}

/// PUT /api/policies/{vhost}/{name}: 201 new, 204 updated, 400 with
/// RabbitMQ's validation text.
pub async fn put_policy<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    put(&broker, &caller, kind::<OPERATOR>(), &vhost, &name, &body).await
}

/// DELETE /api/policies/{vhost}/{name}: 204, or 404.
pub async fn delete_policy<const OPERATOR: bool>(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    delete(&broker, &caller, kind::<OPERATOR>(), &vhost, &name).await
}

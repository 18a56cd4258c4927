//! `/api/permissions` and the permissions of one vhost or one user: list,
//! show, set and clear (administrators only).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde_json::Value;

use super::api::{
    ApiError, ApiResult, created_or_updated, deleted, parse_body, require_keys, str_field,
};
use super::caller::Caller;
use super::listing::{ListQuery, as_item};
use crate::auth::PermissionDef;
use crate::broker::Broker;
use crate::meta::BrokerOp;

/// GET /api/permissions (administrator).
pub async fn permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_admin()?;
    query.respond(broker.auth.permissions().iter().map(as_item).collect())
}

/// The permissions `keep` picks, once what the path names `exists` (404
/// otherwise); administrators only.
fn permissions_where(
    broker: &Broker,
    caller: &Caller,
    exists: impl FnOnce() -> bool,
    keep: impl Fn(&PermissionDef) -> bool,
) -> ApiResult {
    caller.require_admin()?;
    if !exists() {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = broker
        .auth
        .permissions()
        .iter()
        .filter(|p| keep(p))
        .map(as_item)
        .collect();
    Ok(Json(items).into_response())
}

/// GET /api/vhosts/{vhost}/permissions.
pub async fn vhost_permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    let exists = || broker.auth.vhost(&vhost).is_some();
    permissions_where(&broker, &caller, exists, |p| p.vhost == vhost)
}

/// GET /api/users/{user}/permissions.
pub async fn user_permissions(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult {
    let exists = || broker.auth.user(&user).is_some();
    permissions_where(&broker, &caller, exists, |p| p.user == user)
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
    Ok(Json(as_item(&p)).into_response())
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
    let created = broker.change(BrokerOp::SetPermissions(def)).await?;
    Ok(created_or_updated(created))
}

/// DELETE /api/permissions/{vhost}/{user}.
pub async fn delete_permission(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult {
    caller.require_admin()?;
    deleted(
        broker
            .change(BrokerOp::ClearPermissions { vhost, user })
            .await?,
    )
}

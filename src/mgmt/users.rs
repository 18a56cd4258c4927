//! `/api/users`: list, show, create or update, and delete users
//! (administrators only).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;

use super::api::{
    ApiError, ApiResult, created_or_updated, deleted, parse_body, str_field, tags_field,
};
use super::caller::Caller;
use super::listing::{ListQuery, as_item};
use crate::auth::UserDef;
use crate::auth::hashing;
use crate::broker::Broker;
use crate::meta::BrokerOp;

/// GET /api/users (administrator).
pub async fn users(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_admin()?;
    query.respond(broker.auth.users().iter().map(as_item).collect())
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
    let tags = tags_field(&body).ok_or_else(|| ApiError::bad_request("tags_not_present"))?;
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
    let created = broker.change(BrokerOp::PutUser(user)).await?;
    Ok(created_or_updated(created))
}

/// DELETE /api/users/{user}.
pub async fn delete_user(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    deleted(broker.change(BrokerOp::DeleteUser { name }).await?)
}

//! `/api/vhosts`: list, show, create and delete vhosts; and the lookups of a
//! live vhost that the object endpoints share.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::api::{
    ApiError, ApiResult, created_or_updated, deleted, parse_body, str_field, tags_field,
};
use super::caller::Caller;
use super::listing::ListQuery;
use super::overview::node_name;
use crate::auth::{Kind, Permission, PermissionDef, VHostDef};
use crate::broker::Broker;
use crate::meta::BrokerOp;
use crate::vhost::VHost;

/// A vhost that exists, or 404.
pub(super) fn live_vhost(broker: &Broker, name: &str) -> ApiResult<Arc<VHost>> {
    broker.vhost(name).ok_or_else(ApiError::not_found)
}

/// The vhost to declare `name` of `kind` in, once the caller may configure
/// it: 404 `vhost_not_found` for a missing vhost, as RabbitMQ answers there.
pub(super) fn vhost_to_declare(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    kind: Kind,
    name: &str,
) -> ApiResult<Arc<VHost>> {
    let v = broker
        .vhost(vhost)
        .ok_or_else(|| ApiError::not_found_because("vhost_not_found"))?;
    caller.require(vhost, Permission::Configure, kind, name)?;
    Ok(v)
}

fn vhost_json(broker: &Broker, def: &VHostDef) -> Value {
    let (mut ready, mut unacked, mut messages) = (0u64, 0u64, 0u64);
    if let Some(vhost) = broker.vhost(&def.name) {
        for queue in vhost.queues() {
            let s = queue.stats();
            ready += s.messages_ready;
            unacked += s.messages_unacknowledged;
            messages += s.messages();
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
        "messages": messages,
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
    let found = broker
        .auth
        .vhost(&name)
        .filter(|_| caller.sees_vhost(&name));
    query.respond_one(found.map(|def| vhost_json(&broker, &def)))
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
    let tags = tags_field(&body)
        .unwrap_or_else(|| broker.auth.vhost(&name).map(|v| v.tags).unwrap_or_default());
    let description = match str_field(&body, "description") {
        Some(d) => d.to_owned(),
        None => broker
            .auth
            .vhost(&name)
            .map(|v| v.description)
            .unwrap_or_default(),
    };
    let def = VHostDef {
        name: name.clone(),
        description,
        tags,
    };
    let created = broker.change(BrokerOp::PutVHost(def)).await?;
    if created {
        // As RabbitMQ: whoever creates a vhost through the API may use it.
        let all = PermissionDef {
            user: caller.user.name.clone(),
            vhost: name,
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        };
        broker.change(BrokerOp::SetPermissions(all)).await?;
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
    deleted(broker.change(BrokerOp::DeleteVHost { name }).await?)
}

//! `/api/parameters`: runtime parameters, as RabbitMQ lists them
//! (`{"vhost", "component", "name", "value"}`): `shovel` ones (declared,
//! replaced and cleared here, run by `crate::shovel`) and the
//! `vhost-limits` ones (the vhost limits, set through `/api/vhost-limits`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, created_or_updated, deleted, parse_body, str_field};
use super::caller::Caller;
use super::listing::ListQuery;
use crate::broker::Broker;
use crate::meta::BrokerOp;
use crate::shovel::{COMPONENT, ShovelParam, Shovels};

/// Components Warren has parameters of.
const VHOST_LIMITS: &str = "vhost-limits";

/// A shovel parameter as RabbitMQ lists and exports it.
pub fn shovel_json(p: &ShovelParam) -> Value {
    json!({"vhost": p.vhost, "component": COMPONENT, "name": p.name, "value": p.value})
}

/// Every parameter the caller sees, optionally of one component and vhost.
fn all(
    broker: &Broker,
    caller: &Caller,
    component: Option<&str>,
    vhost: Option<&str>,
) -> Vec<Value> {
    let wanted = |c: &str, v: &str| {
        component.is_none_or(|x| x == c) && vhost.is_none_or(|x| x == v) && caller.sees_vhost(v)
    };
    let mut out: Vec<Value> = broker
        .auth
        .vhost_limits()
        .into_iter()
        .filter(|l| wanted(VHOST_LIMITS, &l.vhost))
        .map(|l| json!({"vhost": l.vhost, "component": VHOST_LIMITS, "name": "limits", "value": l.value}))
        .collect();
    out.extend(
        broker
            .shovels
            .params()
            .iter()
            .filter(|p| wanted(COMPONENT, &p.vhost))
            .map(shovel_json),
    );
    out
}

/// GET /api/parameters, /api/parameters/{component} (policymaker).
pub async fn list(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    component: Option<Path<String>>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_policymaker()?;
    let component = component.as_deref().map(String::as_str);
    query.respond(all(&broker, &caller, component, None))
}

/// GET /api/parameters/{component}/{vhost} (404 for a vhost that does not
/// exist).
pub async fn list_in_vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((component, vhost)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_policymaker()?;
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    query.respond(all(&broker, &caller, Some(&component), Some(&vhost)))
}

/// GET /api/parameters/{component}/{vhost}/{name}.
pub async fn one(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    caller.require_policymaker()?;
    let item = all(&broker, &caller, Some(&component), Some(&vhost))
        .into_iter()
        .find(|p| p["name"] == name.as_str());
    query.respond_one(item)
}

/// PUT /api/parameters/shovel/{vhost}/{name} with `{"value": {...}}`
/// (policymaker with access to the vhost): 201 created, 204 replaced (the
/// shovel restarts), 400 with RabbitMQ's `Validation failed` reason.
pub async fn put(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    caller.require_policymaker()?;
    if broker.auth.vhost(&vhost).is_none() {
        return Err(ApiError::not_found_because("vhost_not_found"));
    }
    caller.require_vhost_access(&vhost)?;
    if component != COMPONENT {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\ncomponent {component} not found\n"
        )));
    }
    let body = parse_body(&body)?;
    // RabbitMQ's body may repeat the path; it must not contradict it.
    for (key, expected) in [
        ("component", &component),
        ("vhost", &vhost),
        ("name", &name),
    ] {
        if str_field(&body, key).is_some_and(|given| given != expected.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{key} in the body does not match the path"
            )));
        }
    }
    let Some(value) = body.get("value").cloned() else {
        return Err(ApiError::bad_request("[{key_missing,value}]"));
    };
    Shovels::check(&vhost, &name, &value)
        .map_err(|e| ApiError::bad_request(format!("Validation failed\n\n{e}\n")))?;
    // Through the metadata log in a cluster: every node knows the shovel, one runs it.
    let created = broker
        .change(BrokerOp::PutShovel {
            vhost,
            name,
            value,
            user: caller.user.name.clone(),
        })
        .await?;
    broker.storage.commit().await?;
    Ok(created_or_updated(created))
}

/// DELETE /api/parameters/shovel/{vhost}/{name}: stops and removes the
/// shovel (204; 404 when there is none).
pub async fn delete(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult {
    caller.require_policymaker()?;
    caller.require_vhost_access(&vhost)?;
    if component != COMPONENT {
        return Err(ApiError::not_found());
    }
    if !broker
        .shovels
        .params()
        .iter()
        .any(|p| p.vhost == vhost && p.name == name)
    {
        return deleted(false);
    }
    let found = broker
        .change(BrokerOp::DeleteShovel { vhost, name })
        .await?;
    if found {
        broker.storage.commit().await?;
    }
    deleted(found)
}

/// The shovel parameters of an import (each into its own vhost or
/// `default_vhost`), declared as `user`; 400 naming the one refused.
pub async fn import_shovels(
    broker: &Broker,
    parameters: &[Value],
    default_vhost: Option<&str>,
    user: &str,
) -> ApiResult<()> {
    for p in parameters {
        if p.get("component").and_then(Value::as_str) != Some(COMPONENT) {
            continue;
        }
        let vhost = p.get("vhost").and_then(Value::as_str).or(default_vhost);
        let (Some(vhost), Some(name)) = (vhost, p.get("name").and_then(Value::as_str)) else {
            return Err(ApiError::bad_request(
                "a shovel parameter needs a vhost and a name",
            ));
        };
        if broker.auth.vhost(vhost).is_none() {
            return Err(ApiError::bad_request(format!(
                "shovel '{name}': vhost '{vhost}' does not exist"
            )));
        }
        let value = p.get("value").cloned().unwrap_or_default();
        let refused = |e: &dyn std::fmt::Display| {
            ApiError::bad_request(format!("shovel '{name}' in vhost '{vhost}': {e}"))
        };
        Shovels::check(vhost, name, &value).map_err(|e| refused(&e))?;
        broker
            .change(BrokerOp::PutShovel {
                vhost: vhost.to_owned(),
                name: name.to_owned(),
                value,
                user: user.to_owned(),
            })
            .await
            .map_err(|e| refused(&e))?;
    }
    Ok(())
}

/// The shovel parameters (of one vhost), as definitions export them.
pub fn shovel_params_json(broker: &Broker, vhost: Option<&str>) -> Vec<Value> {
    broker
        .shovels
        .params()
        .iter()
        .filter(|p| vhost.is_none_or(|v| p.vhost == v))
        .map(shovel_json)
        .collect()
}

//! `/api/definitions`: the broker's users, vhosts, permissions, queues,
//! exchanges and bindings in RabbitMQ's definitions JSON, exported and imported
//! (a RabbitMQ export imports here, and the other way round). Vhost limits
//! are RabbitMQ's `vhost-limits` parameters, user limits the users' `limits`,
//! shovels its `shovel` parameters (imported last, declared as the
//! configured default user); policies are RabbitMQ's `policies` (operator
//! policies are imported from an `operator_policies` list when one is given,
//! and not exported, as RabbitMQ exports none); other parameters and topic
//! permissions are exported empty and ignored on import.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::MANAGEMENT_VERSION;
use super::api::{API_CONNECTION, ApiError, ApiResult};
use super::caller::Caller;
use super::json::{json_to_table, table_to_json};
use super::vhosts::live_vhost;
use crate::auth::limits::{Limits, VHostLimitsDef};
use crate::auth::{AuthDefinitions, PermissionDef, UserDef, VHostDef};
use crate::broker::Broker;
use crate::meta::{Arguments, BindTo, BrokerOp, DefinitionOp, NodeId};
use crate::names::resource;
use crate::policy::{PolicyDef, PolicyKind};
use crate::vhost::{Destination, VHost};

/// A queue in the definitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDef {
    /// Name.
    pub name: String,
    /// Vhost (absent in a per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Durable.
    #[serde(default)]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// Declare arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// An exchange in the definitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeDef {
    /// Name.
    pub name: String,
    /// Vhost (absent in a per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Durable.
    #[serde(default)]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// Internal.
    #[serde(default)]
    pub internal: bool,
    /// Declare arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// A binding in the definitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindingDef {
    /// Source exchange.
    pub source: String,
    /// Vhost (absent in a per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Destination name.
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    /// Routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Binding arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// RabbitMQ's definitions document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Definitions {
    /// The version that exported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// Also the version (newer exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    /// Users (whole-broker exports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    /// Vhosts (whole-broker exports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhosts: Option<Vec<VHostDef>>,
    /// Permissions (whole-broker exports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionDef>>,
    /// Topic permissions: not supported, exported empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_permissions: Option<Vec<Value>>,
    /// Runtime parameters: only `vhost-limits` ones (RabbitMQ's vhost limits).
    #[serde(default)]
    pub parameters: Vec<Value>,
    /// Global parameters: not supported, exported empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_parameters: Option<Vec<Value>>,
    /// Policies (RabbitMQ's shape; without `vhost` in a per-vhost export).
    #[serde(default)]
    pub policies: Vec<Value>,
    /// Operator policies: imported when given, never exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_policies: Option<Vec<Value>>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    /// Exchanges (not the default or `amq.*` ones).
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    /// Bindings (not the default exchange's implicit ones).
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

/// Queues, exchanges and bindings of one vhost (exclusive queues are a
/// connection's, not definitions).
fn topology(v: &VHost, with_vhost: bool, out: &mut Definitions) {
    let tag = || with_vhost.then(|| v.name.to_string());
    for q in v.queues() {
        if q.spec.exclusive_owner.is_some() {
            continue;
        }
        out.queues.push(QueueDef {
            name: q.name.to_string(),
            vhost: tag(),
            durable: q.spec.durable,
            auto_delete: q.spec.auto_delete,
            arguments: object(table_to_json(&q.spec.arguments)),
        });
    }
    for x in v.exchanges() {
        if x.name.is_empty() || x.name.starts_with("amq.") {
            continue;
        }
        out.exchanges.push(ExchangeDef {
            name: x.name.to_string(),
            vhost: tag(),
            kind: x.spec.type_name().to_owned(),
            durable: x.spec.durable,
            auto_delete: x.spec.auto_delete,
            internal: x.spec.internal,
            arguments: object(table_to_json(&x.spec.arguments)),
        });
    }
    for x in v.exchanges() {
        for (dest, key, args) in x.routes.read().bindings() {
            let (destination, destination_type) = match &dest.destination {
                Destination::Queue(q) => (q.to_string(), "queue"),
                Destination::Exchange(e) => (e.to_string(), "exchange"),
            };
            out.bindings.push(BindingDef {
                source: x.name.to_string(),
                vhost: tag(),
                destination,
                destination_type: destination_type.into(),
                routing_key: key.to_owned(),
                arguments: object(table_to_json(args)),
            });
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A vhost's limits as RabbitMQ exports them: a runtime parameter.
fn limits_parameter(l: &VHostLimitsDef) -> Value {
    serde_json::json!({
        "vhost": l.vhost,
        "component": "vhost-limits",
        "name": "limits",
        "value": l.value,
    })
}

/// The `vhost-limits` parameters of an import (vhost from the parameter, or
/// the one imported into); 400 for a value that is not integers.
fn limits_from(
    parameters: &[Value],
    default_vhost: Option<&str>,
) -> ApiResult<Vec<VHostLimitsDef>> {
    let mut out = Vec::new();
    for p in parameters {
        if p.get("component").and_then(Value::as_str) != Some("vhost-limits") {
            continue;
        }
        let Some(vhost) = p.get("vhost").and_then(Value::as_str).or(default_vhost) else {
            continue;
        };
        let value: Limits = serde_json::from_value(p.get("value").cloned().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("vhost-limits of '{vhost}': {e}")))?;
        out.push(VHostLimitsDef {
            vhost: vhost.to_owned(),
            value,
        });
    }
    Ok(out)
}

/// Policies as RabbitMQ exports them: all, or one vhost's without the
/// `vhost` key.
fn policies_json(broker: &Broker, vhost: Option<&str>) -> Vec<Value> {
    broker
        .policies
        .list(PolicyKind::Policy, vhost)
        .into_iter()
        .filter_map(|p| {
            let mut json = serde_json::to_value(p).ok()?;
            if vhost.is_some()
                && let Some(map) = json.as_object_mut()
            {
                map.remove("vhost");
            }
            Some(json)
        })
        .collect()
}

/// The whole broker's definitions.
pub fn export_all(broker: &Broker) -> Definitions {
    let auth = broker.auth.export();
    let mut out = Definitions {
        rabbit_version: Some(MANAGEMENT_VERSION.into()),
        rabbitmq_version: Some(MANAGEMENT_VERSION.into()),
        users: Some(auth.users),
        vhosts: Some(auth.vhosts),
        permissions: Some(auth.permissions),
        topic_permissions: Some(Vec::new()),
        global_parameters: Some(Vec::new()),
        parameters: auth.vhost_limits.iter().map(limits_parameter).collect(),
        policies: policies_json(broker, None),
        ..Definitions::default()
    };
    out.parameters
        .extend(super::parameters::shovel_params_json(broker, None));
    for v in broker.vhosts() {
        topology(&v, true, &mut out);
    }
    out
}

/// Imports definitions: users, vhosts and permissions first (all checked
/// before any is applied), then exchanges, queues and bindings, each into its
/// own vhost or `default_vhost` when the document is per-vhost.
pub async fn import_all(
    broker: &Broker,
    defs: &Definitions,
    default_vhost: Option<&str>,
) -> Result<(), ApiError> {
    import_entries(broker, defs, default_vhost)
        .await
        .map_err(|refused| refused.error)
}

/// An entry of a definitions document that was refused.
#[derive(Debug)]
pub struct Refused {
    /// Which entry: `users and vhosts`, `exchange 'x' in vhost '/'`, ...
    pub entry: String,
    /// Why, as the API answers it.
    pub error: ApiError,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entry, self.error.reason)
    }
}

/// [`import_all`], naming the entry that was refused.
async fn import_entries(
    broker: &Broker,
    defs: &Definitions,
    default_vhost: Option<&str>,
) -> Result<(), Refused> {
    let refused = |entry: String| move |error: ApiError| Refused { entry, error };
    let auth = AuthDefinitions {
        users: defs.users.clone().unwrap_or_default(),
        vhosts: defs.vhosts.clone().unwrap_or_default(),
        permissions: Vec::new(),
        vhost_limits: Vec::new(),
    };
    broker
        .change(BrokerOp::Import(auth))
        .await
        .map_err(ApiError::from)
        .map_err(refused("users and vhosts".into()))?;
    let limits = AuthDefinitions {
        vhost_limits: limits_from(&defs.parameters, default_vhost)
            .map_err(refused("vhost limits".into()))?,
        ..Default::default()
    };
    broker
        .change(BrokerOp::Import(limits))
        .await
        .map_err(ApiError::from)
        .map_err(refused("vhost limits".into()))?;
    let permissions = AuthDefinitions {
        permissions: defs.permissions.clone().unwrap_or_default(),
        ..Default::default()
    };
    broker
        .change(BrokerOp::Import(permissions))
        .await
        .map_err(ApiError::from)
        .map_err(refused("permissions".into()))?;
    for (kind, list) in [
        (PolicyKind::Policy, Some(&defs.policies)),
        (PolicyKind::Operator, defs.operator_policies.as_ref()),
    ] {
        for p in list.into_iter().flatten() {
            let vhost = p
                .get("vhost")
                .and_then(Value::as_str)
                .or(default_vhost)
                .unwrap_or("/");
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let entry = || resource("policy", name, vhost);
            if broker.vhost(vhost).is_none() {
                return Err(refused(entry())(ApiError::bad_request(format!(
                    "vhost_not_found: {vhost}"
                ))));
            }
            let def = PolicyDef::parse(kind, vhost, name, p)
                .map_err(|e| ApiError::bad_request(e.to_string()))
                .map_err(refused(entry()))?;
            broker
                .change(BrokerOp::PutPolicy { kind, def })
                .await
                .map_err(|e| ApiError::bad_request(e.text))
                .map_err(refused(entry()))?;
        }
    }
    let vhost_of = |named: &Option<String>| -> Result<std::sync::Arc<VHost>, ApiError> {
        let name = named.as_deref().or(default_vhost).unwrap_or("/");
        broker
            .vhost(name)
            .ok_or_else(|| ApiError::bad_request(format!("vhost_not_found: {name}")))
    };
    let in_vhost =
        |named: &Option<String>| named.as_deref().or(default_vhost).unwrap_or("/").to_owned();
    // Every refusal is 400 with its text here (a reserved name, a missing
    // queue), not the 401 or 404 that `?` would give.
    let bad = |e: crate::error::AmqpError| ApiError::bad_request(e.text);
    for x in &defs.exchanges {
        let entry = || resource("exchange", &x.name, &in_vhost(&x.vhost));
        let v = vhost_of(&x.vhost).map_err(refused(entry()))?;
        let arguments =
            json_to_table(&Value::Object(x.arguments.clone())).map_err(refused(entry()))?;
        let op = DefinitionOp::DeclareExchange {
            name: x.name.clone(),
            type_name: x.kind.clone(),
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: Arguments(arguments),
        };
        v.change(op, API_CONNECTION)
            .await
            .map_err(bad)
            .map_err(refused(entry()))?;
    }
    for q in &defs.queues {
        let entry = || resource("queue", &q.name, &in_vhost(&q.vhost));
        let v = vhost_of(&q.vhost).map_err(refused(entry()))?;
        let op = DefinitionOp::DeclareQueue {
            name: q.name.clone(),
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            server_named: false,
            arguments: Arguments(
                json_to_table(&Value::Object(q.arguments.clone())).map_err(refused(entry()))?,
            ),
            home: v.meta().map_or(NodeId(0), |m| m.node()),
            id: None,
            members: Vec::new(),
        };
        v.change(op, API_CONNECTION)
            .await
            .map_err(bad)
            .map_err(refused(entry()))?;
    }
    for b in &defs.bindings {
        let entry = || {
            format!(
                "binding from exchange '{}' to {} '{}' in vhost '{}'",
                b.source,
                b.destination_type,
                b.destination,
                in_vhost(&b.vhost)
            )
        };
        let v = vhost_of(&b.vhost).map_err(refused(entry()))?;
        let destination = match b.destination_type.as_str() {
            "exchange" => BindTo::Exchange(b.destination.clone()),
            _ => BindTo::Queue(b.destination.clone()),
        };
        let arguments =
            json_to_table(&Value::Object(b.arguments.clone())).map_err(refused(entry()))?;
        let op = DefinitionOp::Bind {
            source: b.source.clone(),
            destination,
            routing_key: b.routing_key.clone(),
            arguments: Arguments(arguments),
        };
        v.change(op, API_CONNECTION)
            .await
            .map_err(bad)
            .map_err(refused(entry()))?;
    }
    // Shovels last: the topology they may use is in place.
    super::parameters::import_shovels(
        broker,
        &defs.parameters,
        default_vhost,
        &broker.config.default_user,
    )
    .await
    .map_err(refused("shovels".into()))?;
    // As on AMQP: the answer waits until what was stored is on disk.
    broker
        .storage
        .commit()
        .await
        .map_err(ApiError::from)
        .map_err(refused("the store".into()))?;
    Ok(())
}

/// Why the `load_definitions` file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It could not be read.
    #[error("cannot read definitions file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It is not RabbitMQ's definitions JSON.
    #[error("definitions file {path} is not RabbitMQ's definitions JSON: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Where and why (line and column).
        source: serde_json::Error,
    },
    /// An entry was refused.
    #[error("definitions file {path}: {refused}")]
    Refused {
        /// The file.
        path: std::path::PathBuf,
        /// The entry and why.
        refused: Refused,
    },
}

/// Reads a definitions file (RabbitMQ's JSON, as exported).
pub fn read_file(path: &std::path::Path) -> Result<Definitions, LoadError> {
    let text = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| LoadError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// `load_definitions`: imports a definitions file at start, naming the entry
/// it refuses.
pub async fn load_file(broker: &Broker, path: &std::path::Path) -> Result<(), LoadError> {
    let defs = read_file(path)?;
    import_entries(broker, &defs, None)
        .await
        .map_err(|refused| LoadError::Refused {
            path: path.to_owned(),
            refused,
        })
}

fn parse(body: &[u8]) -> ApiResult<Definitions> {
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("not_json"))
}

/// GET /api/definitions (administrator).
pub async fn export(State(broker): State<Arc<Broker>>, caller: Caller) -> ApiResult {
    caller.require_admin()?;
    Ok(Json(export_all(&broker)).into_response())
}

/// POST /api/definitions (administrator): 204 once everything is in.
pub async fn import(State(broker): State<Arc<Broker>>, caller: Caller, body: Bytes) -> ApiResult {
    caller.require_admin()?;
    let defs = parse(&body)?;
    import_all(&broker, &defs, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/definitions/{vhost}: one vhost's queues, exchanges and bindings.
pub async fn export_vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult {
    caller.require_admin()?;
    let v = live_vhost(&broker, &vhost)?;
    let mut out = Definitions {
        rabbit_version: Some(MANAGEMENT_VERSION.into()),
        ..Definitions::default()
    };
    topology(&v, false, &mut out);
    // As RabbitMQ's per-vhost export: its limits (with the vhost key).
    out.parameters = broker
        .auth
        .vhost_limits()
        .iter()
        .filter(|l| l.vhost == vhost)
        .map(limits_parameter)
        .collect();
    out.policies = policies_json(&broker, Some(&vhost));
    out.parameters
        .extend(super::parameters::shovel_params_json(&broker, Some(&vhost)));
    Ok(Json(out).into_response())
}

/// POST /api/definitions/{vhost}.
pub async fn import_vhost(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path(vhost): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_admin()?;
    live_vhost(&broker, &vhost)?;
    let defs = parse(&body)?;
    import_all(&broker, &defs, Some(&vhost)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

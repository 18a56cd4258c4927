//! The cluster endpoints: `/api/nodes` of a clustered node, `/api/cluster` (status),
//! `POST /api/cluster/join`, `leave` and `forget` (Warren's own; RabbitMQ does
//! these with `rabbitmqctl`).
//!
//! The cluster service reaches the handlers as an optional extension: without cluster
//! keys there is none, `/api/nodes` lists this node alone as before and the cluster
//! endpoints answer 404 "not clustered".

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, parse_body, str_field};
use super::caller::Caller;
use crate::cluster::{Cluster, NodeView};

/// The cluster service, when this broker has one.
#[derive(Clone)]
pub struct ClusterExt(pub Arc<Cluster>);

fn not_clustered() -> ApiError {
    ApiError::not_found_because("this node is not clustered (no cluster keys are set)")
}

/// RabbitMQ's `/api/nodes` fields of a node, plus Warren's `cluster` object; `local` is
/// the full entry of this node (`None` for the others).
pub fn node_entry(view: &NodeView, local: Option<Value>) -> Value {
    let mut entry = local.unwrap_or_else(|| json!({"name": view.name, "type": "disc"}));
    entry["name"] = json!(view.name);
    entry["running"] = json!(view.running);
    entry["state"] = json!(if view.running {
        "running"
    } else {
        "unreachable"
    });
    entry["cluster"] = json!({
        "id": view.id.to_string(),
        "metadata_leader": view.metadata_leader,
        "raft_role": if view.voter { "voter" } else { "learner" },
        "this_node": view.this_node,
        "cluster_addr": view.cluster_addr,
        "amqp_addr": view.amqp_addr,
        "mgmt_addr": view.mgmt_addr,
    });
    entry
}

/// GET /api/cluster (tag monitoring).
pub async fn status(cluster: Option<axum::Extension<ClusterExt>>, caller: Caller) -> ApiResult {
    caller.require_monitor()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    Ok(Json(json!(cluster.status())).into_response())
}

/// POST /api/cluster/join `{"seed": "HOST:PORT"}` (administrator): a node that has no
/// cluster yet asks that node too.
pub async fn join(
    cluster: Option<axum::Extension<ClusterExt>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    let body = parse_body(&body)?;
    let seed = str_field(&body, "seed")
        .filter(|s| {
            s.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        })
        .ok_or_else(|| ApiError::bad_request("seed must be HOST:PORT (the node's cluster port)"))?;
    cluster
        .add_seed(seed.to_owned())
        .map_err(|why| ApiError::with_error("bad_request", why))?;
    Ok(accepted(json!({"joining": seed, "node": cluster.name()})))
}

/// POST /api/cluster/leave (administrator): this node leaves its cluster.
pub async fn leave(cluster: Option<axum::Extension<ClusterExt>>, caller: Caller) -> ApiResult {
    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    cluster
        .leave()
        .await
        .map_err(|why| ApiError::with_error("bad_request", why))?;
    Ok(Json(json!({"left": cluster.name()})).into_response())
}

/// POST /api/cluster/forget `{"node": NAME}` (administrator): removes a node that is down
/// for good (RabbitMQ's `forget_cluster_node`); 400 if it is running or unknown.
pub async fn forget(
    cluster: Option<axum::Extension<ClusterExt>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    let body = parse_body(&body)?;
    let node = str_field(&body, "node")
        .ok_or_else(|| ApiError::bad_request("node must be a node's name"))?;
    cluster
        .forget(node)
        .await
        .map_err(|why| ApiError::with_error("bad_request", why))?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// POST /api/rebalance/queues (administrator): spreads quorum queues' leaders over the
/// running nodes, in the background, as RabbitMQ does (204; nothing to do on one node).
pub async fn rebalance(
    axum::extract::State(broker): axum::extract::State<Arc<crate::broker::Broker>>,
    cluster: Option<axum::Extension<ClusterExt>>,
    caller: Caller,
) -> ApiResult {
    caller.require_admin()?;
    if let Some(axum::Extension(ClusterExt(cluster))) = cluster {
        crate::cluster::operate::rebalance_in_background(cluster, broker);
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// POST /api/queues/quorum/{vhost}/{name}/replicas/add `{"node": NAME}` (administrator):
/// RabbitMQ's add_member; 204 once the node is a voter of the queue's group.
pub async fn add_member(
    axum::extract::State(broker): axum::extract::State<Arc<crate::broker::Broker>>,
    cluster: Option<axum::Extension<ClusterExt>>,
    axum::extract::Path((vhost, name)): axum::extract::Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> ApiResult {
    change_member(&broker, cluster, &vhost, &name, &caller, &body, true).await
}

/// DELETE /api/queues/quorum/{vhost}/{name}/replicas/delete `{"node": NAME}`
/// (administrator): RabbitMQ's delete_member; 204 once the node left the group.
pub async fn delete_member(
    axum::extract::State(broker): axum::extract::State<Arc<crate::broker::Broker>>,
    cluster: Option<axum::Extension<ClusterExt>>,
    axum::extract::Path((vhost, name)): axum::extract::Path<(String, String)>,
    caller: Caller,
    body: Bytes,
) -> ApiResult {
    change_member(&broker, cluster, &vhost, &name, &caller, &body, false).await
}

async fn change_member(
    broker: &crate::broker::Broker,
    cluster: Option<axum::Extension<ClusterExt>>,
    vhost: &str,
    name: &str,
    caller: &Caller,
    body: &[u8],
    add: bool,
) -> ApiResult {
    use crate::cluster::operate::MemberError;

    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    let body = parse_body(body)?;
    let node = str_field(&body, "node")
        .ok_or_else(|| ApiError::bad_request("a \"node\" field naming the node is required"))?;
    let v = super::vhosts::live_vhost(broker, vhost)?;
    match cluster.change_members(&v, name, node, add).await {
        Ok(_) => Ok(axum::http::StatusCode::NO_CONTENT.into_response()),
        Err(error @ MemberError::NoQueue(..)) => {
            Err(ApiError::not_found_because(error.to_string()))
        }
        Err(error @ MemberError::Failed(_)) => Err(ApiError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal_server_error",
            reason: error.to_string(),
        }),
        Err(error) => Err(ApiError::bad_request(error.to_string())),
    }
}

/// POST /api/queues/quorum/replicas/on/{node}/grow `{"strategy": "all"|"even",
/// "vhost_pattern": RE, "queue_pattern": RE}` (administrator): RabbitMQ's grow; answers
/// Warren's count of queues grown and the failures.
pub async fn grow(
    axum::extract::State(broker): axum::extract::State<Arc<crate::broker::Broker>>,
    cluster: Option<axum::Extension<ClusterExt>>,
    axum::extract::Path(node): axum::extract::Path<String>,
    caller: Caller,
    body: Bytes,
) -> ApiResult {
    use crate::cluster::operate::GrowStrategy;

    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    let body = parse_body(&body)?;
    let strategy = match str_field(&body, "strategy").unwrap_or("all") {
        "all" => GrowStrategy::All,
        "even" => GrowStrategy::Even,
        other => {
            return Err(ApiError::bad_request(format!(
                "strategy must be \"all\" or \"even\", not \"{other}\""
            )));
        }
    };
    let pattern = |key: &str| {
        regex::Regex::new(str_field(&body, key).unwrap_or(".*"))
            .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
    };
    let (vhosts, queues) = (pattern("vhost_pattern")?, pattern("queue_pattern")?);
    let (grown, failed) = cluster
        .grow(&broker, &node, strategy, &vhosts, &queues)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({ "grown": grown, "failed": failures(&failed) })).into_response())
}

/// DELETE /api/queues/quorum/replicas/on/{node}/shrink (administrator): RabbitMQ's
/// shrink; answers Warren's count of queues shrunk and the failures.
pub async fn shrink(
    axum::extract::State(broker): axum::extract::State<Arc<crate::broker::Broker>>,
    cluster: Option<axum::Extension<ClusterExt>>,
    axum::extract::Path(node): axum::extract::Path<String>,
    caller: Caller,
) -> ApiResult {
    caller.require_admin()?;
    let axum::Extension(ClusterExt(cluster)) = cluster.ok_or_else(not_clustered)?;
    let (shrunk, failed) = cluster
        .shrink(&broker, &node)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({ "shrunk": shrunk, "failed": failures(&failed) })).into_response())
}

fn failures(failed: &[(String, String)]) -> Value {
    failed
        .iter()
        .map(|(queue, why)| json!({ "queue": queue, "error": why }))
        .collect()
}

fn accepted(body: Value) -> Response {
    (axum::http::StatusCode::ACCEPTED, Json(body)).into_response()
}

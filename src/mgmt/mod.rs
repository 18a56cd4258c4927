//! The management HTTP API: a RabbitMQ-compatible subset of
//! `rabbitmq_management` (same paths, JSON field names, status codes and error
//! bodies), plus Prometheus `/metrics` with `rabbitmq_prometheus`'s names.
//!
//! - `api.rs`: the error answer, request body fields, created/updated.
//! - `caller.rs`: HTTP basic auth and the user tags each endpoint needs.
//! - `listing.rs`: sorting, pagination (`page`, `page_size`, `name`,
//!   `use_regex`) and `columns=` for list endpoints.
//! - `json.rs`: AMQP field tables and properties to and from JSON.
//! - `admin.rs`: overview, whoami, nodes, health, vhosts, users, permissions.
//! - `topology.rs`: exchanges, queues, bindings, publish, get, purge.
//! - `connections.rs`: connections, channels, consumers.
//! - `definitions.rs`: `/api/definitions` export and import.
//! - `metrics.rs`: `/metrics`.

mod admin;
mod api;
mod caller;
mod connections;
mod definitions;
mod json;
mod listing;
mod metrics;
mod topology;

pub use api::ApiError;
pub use definitions::{Definitions, export_all, import_all};

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::server::Broker;

/// The RabbitMQ release whose management API Warren answers as.
const MANAGEMENT_VERSION: &str = crate::connection::handshake::RABBITMQ_COMPATIBLE_VERSION;

/// When the management listener started (the node's uptime).
fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The address the management API listens on (health checks report it).
#[derive(Debug, Clone, Copy)]
pub struct HttpListener(pub std::net::SocketAddr);

/// Serves the management API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    started();
    let local = HttpListener(listener.local_addr()?);
    axum::serve(listener, router(broker).layer(axum::Extension(local)))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Every route of the API.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/api/overview", get(admin::overview))
        .route("/api/whoami", get(admin::whoami))
        .route("/api/nodes", get(admin::nodes))
        .route("/api/nodes/{node}", get(admin::node))
        .route("/api/nodes/{node}/memory", get(admin::node_memory))
        .route("/api/health/checks/alarms", get(admin::alarms))
        .route("/api/health/checks/local-alarms", get(admin::alarms))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(admin::port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(admin::protocol_listener),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(admin::not_quorum_critical),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(admin::not_quorum_critical),
        )
        .route(
            "/api/health/checks/virtual-hosts",
            get(admin::vhosts_running),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(admin::certificates),
        )
        .route("/api/vhosts", get(admin::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(admin::vhost)
                .put(admin::put_vhost)
                .delete(admin::delete_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(admin::vhost_permissions),
        )
        .route("/api/users", get(admin::users))
        .route(
            "/api/users/{user}",
            get(admin::user)
                .put(admin::put_user)
                .delete(admin::delete_user),
        )
        .route(
            "/api/users/{user}/permissions",
            get(admin::user_permissions),
        )
        .route("/api/permissions", get(admin::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(admin::permission)
                .put(admin::put_permission)
                .delete(admin::delete_permission),
        )
        .route("/api/policies", get(admin::no_policies))
        .route("/api/feature-flags", get(admin::no_feature_flags))
        .route("/api/policies/{vhost}", get(admin::no_policies_in))
        .route("/api/operator-policies", get(admin::no_policies))
        .route("/api/operator-policies/{vhost}", get(admin::no_policies_in))
        .route("/api/parameters", get(admin::no_parameters))
        .route("/api/vhost-limits", get(admin::vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(admin::vhost_limits_of))
        .route("/api/user-limits", get(admin::user_limits))
        .route("/api/user-limits/{user}", get(admin::user_limits_of))
        .route("/api/exchanges", get(topology::exchanges))
        .route("/api/exchanges/{vhost}", get(topology::exchanges_in))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(topology::exchange)
                .put(topology::put_exchange)
                .delete(topology::delete_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(topology::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(topology::bindings_from),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(topology::bindings_to_exchange),
        )
        .route("/api/queues", get(topology::queues))
        .route("/api/queues/{vhost}", get(topology::queues_in))
        .route(
            "/api/queues/{vhost}/{name}",
            get(topology::queue)
                .put(topology::put_queue)
                .delete(topology::delete_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(topology::purge),
        )
        .route(
            "/api/queues/{vhost}/{name}/get",
            post(topology::get_messages),
        )
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(topology::bindings_to_queue),
        )
        .route("/api/bindings", get(topology::bindings))
        .route("/api/bindings/{vhost}", get(topology::bindings_in))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(topology::bindings_between).post(topology::add_binding),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(topology::binding).delete(topology::delete_binding),
        )
        .route("/api/connections", get(connections::connections))
        .route(
            "/api/connections/{name}",
            get(connections::connection).delete(connections::close_connection),
        )
        .route(
            "/api/connections/username/{user}",
            get(connections::user_connections).delete(connections::close_user_connections),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::channels_of),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::connections_in),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers_in))
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/metrics/per-object", get(metrics::metrics_per_object))
        .fallback(|| async { ApiError::not_found() })
        .with_state(broker)
}

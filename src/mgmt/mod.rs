//! The management HTTP API: a RabbitMQ-compatible subset of
//! `rabbitmq_management` (same paths, JSON field names, status codes and error
//! bodies), plus Prometheus `/metrics` with `rabbitmq_prometheus`'s names.
//!
//! - `api.rs`: the error answer (`ApiError`, one mapping of AMQP refusals),
//!   request body fields, created/updated/deleted answers.
//! - `caller.rs`: HTTP basic auth and the user tags each endpoint needs.
//! - `listing.rs`: the list answer (sorting, pagination with `page`,
//!   `page_size`, `name`, `use_regex`, and `columns=`), the one-object
//!   answer or 404, and the objects of the vhosts a caller sees.
//! - `json.rs`: AMQP field tables and properties to and from JSON.
//! - `overview.rs`: overview, whoami, nodes.
//! - `cluster.rs`: `/api/cluster` status, join and leave; the cluster view of `/api/nodes`.
//! - `health.rs`: `/api/health/checks/*`.
//! - `vhosts.rs`, `users.rs`, `permissions.rs`: access control.
//! - `limits.rs`: policies, feature flags (none); vhost and user
//!   limits (list, set, clear).
//! - `parameters.rs`: runtime parameters (`shovel`, `vhost-limits`).
//! - `shovels.rs`: `/api/shovels`, the shovels' state and restart.
//! - `exchanges.rs`, `queues.rs`, `bindings.rs`: the topology.
//! - `messages.rs`: publish, get and purge.
//! - `route_explain.rs`: where a message would go, without publishing (Warren's own).
//! - `connections.rs`: connections, channels, consumers.
//! - `definitions.rs`: `/api/definitions` export and import.
//! - `metrics.rs`: `/metrics`.
//! - `ui/`: the management web page at `/` (embedded HTML, CSS, JavaScript).

mod api;
mod bindings;
mod caller;
pub mod cluster;
mod connections;
pub mod definitions;
mod exchanges;
mod health;
mod json;
mod limits;
mod listing;
mod messages;
mod metrics;
mod overview;
mod parameters;
mod permissions;
mod policies;
mod queues;
mod rates;
mod route_explain;
mod shovels;
mod ui;
mod users;
mod vhosts;

pub use api::ApiError;
pub use definitions::{Definitions, export_all, import_all};

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::broker::Broker;
use crate::cluster::Cluster;
use crate::tls::TlsAcceptor;

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
    serve_cluster(listener, broker, None, shutdown).await
}

/// [`serve`] for a broker that may be a cluster node (`cluster` is then `Some`).
pub async fn serve_cluster(
    listener: TcpListener,
    broker: Arc<Broker>,
    cluster: Option<Arc<Cluster>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    started();
    let local = HttpListener(listener.local_addr()?);
    axum::serve(
        listener,
        with_cluster(router(broker), cluster).layer(axum::Extension(local)),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Adds the cluster service to the handlers' extensions, if there is one.
fn with_cluster(router: Router, cluster: Option<Arc<Cluster>>) -> Router {
    match cluster {
        Some(c) => router.layer(axum::Extension(cluster::ClusterExt(c))),
        None => router,
    }
}

/// Serves the management API over https on `listener` until `shutdown`
/// resolves. Each TLS handshake runs in a task of its own, bounded by
/// `handshake_timeout`, so a slow client never holds up the others.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls_cluster(
        listener,
        acceptor,
        handshake_timeout,
        broker,
        None,
        shutdown,
    )
    .await
}

/// [`serve_tls`] for a broker that may be a cluster node.
pub async fn serve_tls_cluster(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    broker: Arc<Broker>,
    cluster: Option<Arc<Cluster>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    started();
    let local = HttpListener(listener.local_addr()?);
    let tls = HttpsListener::spawn(listener, acceptor, handshake_timeout);
    axum::serve(
        tls,
        with_cluster(router(broker), cluster).layer(axum::Extension(local)),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A TCP listener whose connections come out of their TLS handshake: a task
/// accepts, one task per connection shakes hands, finished streams queue here.
struct HttpsListener {
    local: std::net::SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
}

impl HttpsListener {
    fn spawn(listener: TcpListener, acceptor: TlsAcceptor, timeout: Duration) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "management API: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "management API: TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "management API: TLS handshake timeout");
                        }
                    }
                });
            }
        });
        HttpsListener { local, ready }
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task is gone (it ends only with this listener).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Every route of the API.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/cluster", get(cluster::status))
        .route("/api/cluster/join", post(cluster::join))
        .route("/api/cluster/leave", post(cluster::leave))
        .route("/api/cluster/forget", post(cluster::forget))
        .route("/api/rebalance/queues", post(cluster::rebalance))
        .route(
            "/api/queues/quorum/{vhost}/{name}/replicas/add",
            post(cluster::add_member),
        )
        .route(
            "/api/queues/quorum/{vhost}/{name}/replicas/delete",
            delete(cluster::delete_member),
        )
        .route(
            "/api/queues/quorum/replicas/on/{node}/grow",
            post(cluster::grow),
        )
        .route(
            "/api/queues/quorum/replicas/on/{node}/shrink",
            delete(cluster::shrink),
        )
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/nodes/{node}/memory", get(overview::node_memory))
        .route("/api/health/checks/alarms", get(health::alarms))
        .route("/api/health/checks/local-alarms", get(health::alarms))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(health::port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(health::protocol_listener),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(health::not_quorum_critical),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(health::not_mirror_sync_critical),
        )
        .route(
            "/api/health/checks/virtual-hosts",
            get(health::vhosts_running),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(health::certificates),
        )
        .route("/api/vhosts", get(vhosts::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::vhost)
                .put(vhosts::put_vhost)
                .delete(vhosts::delete_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::vhost_permissions),
        )
        .route("/api/users", get(users::users))
        .route(
            "/api/users/{user}",
            get(users::user)
                .put(users::put_user)
                .delete(users::delete_user),
        )
        .route(
            "/api/users/{user}/permissions",
            get(permissions::user_permissions),
        )
        .route("/api/permissions", get(permissions::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::permission)
                .put(permissions::put_permission)
                .delete(permissions::delete_permission),
        )
        .route("/api/policies", get(policies::policies::<false>))
        .route("/api/feature-flags", get(limits::no_feature_flags))
        .route("/api/policies/{vhost}", get(policies::policies::<false>))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::policy::<false>)
                .put(policies::put_policy::<false>)
                .delete(policies::delete_policy::<false>),
        )
        .route("/api/operator-policies", get(policies::policies::<true>))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::policies::<true>),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::policy::<true>)
                .put(policies::put_policy::<true>)
                .delete(policies::delete_policy::<true>),
        )
        .route("/api/parameters", get(parameters::list))
        .route("/api/parameters/{component}", get(parameters::list))
        .route(
            "/api/parameters/{component}/{vhost}",
            get(parameters::list_in_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameters::one)
                .put(parameters::put)
                .delete(parameters::delete),
        )
        .route("/api/shovels", get(shovels::list))
        .route("/api/shovels/{vhost}", get(shovels::list))
        .route("/api/shovels/vhost/{vhost}/{name}", get(shovels::one))
        .route(
            "/api/shovels/vhost/{vhost}/{name}/restart",
            axum::routing::delete(shovels::restart),
        )
        .route("/api/vhost-limits", get(limits::vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(limits::vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(limits::put_vhost_limit).delete(limits::delete_vhost_limit),
        )
        .route("/api/user-limits", get(limits::user_limits))
        .route("/api/user-limits/{user}", get(limits::user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(limits::put_user_limit).delete(limits::delete_user_limit),
        )
        .route("/api/exchanges", get(exchanges::exchanges))
        .route("/api/exchanges/{vhost}", get(exchanges::exchanges))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::exchange)
                .put(exchanges::put_exchange)
                .delete(exchanges::delete_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(messages::publish),
        )
        .route("/api/route-explain/{vhost}", post(route_explain::explain))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings::bindings_from),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings::bindings_to_exchange),
        )
        .route("/api/queues", get(queues::queues))
        .route("/api/queues/{vhost}", get(queues::queues))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::queue)
                .put(queues::put_queue)
                .delete(queues::delete_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(messages::purge),
        )
        .route(
            "/api/queues/{vhost}/{name}/get",
            post(messages::get_messages),
        )
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::bindings_to_queue),
        )
        .route("/api/bindings", get(bindings::bindings))
        .route("/api/bindings/{vhost}", get(bindings::bindings))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(bindings::bindings_between).post(bindings::add_binding),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(bindings::binding).delete(bindings::delete_binding),
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
            get(connections::channels),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::connections),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers))
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
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .fallback(|| async { ApiError::not_found() })
        .with_state(broker)
}

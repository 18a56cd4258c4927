//! Listeners, the accept loop and graceful shutdown.
//!
//! [`run`] is what `main` and the tests call: it accepts connections until the
//! shutdown future resolves, then tells every connection to close (320
//! CONNECTION_FORCED, as RabbitMQ does when it stops) and waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Registry, VHostDef};
use crate::config::Config;
use crate::connection;
use crate::connection::registry::LiveConnection;
use crate::vhost::VHost;

/// How long shutdown waits for connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by every connection of one broker.
#[derive(Debug)]
pub struct Broker {
    /// The validated configuration.
    pub config: Config,
    /// Users, vhost records and permissions.
    pub auth: Arc<Registry>,
    /// Name reported as `cluster_name` in connection.start.
    pub cluster_name: String,
    vhosts: DashMap<String, Arc<VHost>>,
    /// Live connections by id (see [`crate::connection::registry`]).
    pub connections: DashMap<u64, Arc<LiveConnection>>,
    next_connection_id: AtomicU64,
}

impl Broker {
    /// A broker with the configured default user and vhost.
    pub fn new(config: Config) -> Arc<Self> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Arc::new(Broker {
            auth: Registry::from_config(&config),
            cluster_name: format!("warren@{host}"),
            vhosts: DashMap::from_iter([(
                config.default_vhost.clone(),
                VHost::new(&config.default_vhost),
            )]),
            connections: DashMap::new(),
            next_connection_id: AtomicU64::new(1),
            config,
        })
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// Every live vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<_> = self.vhosts.iter().map(|v| v.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a vhost (record and live state) unless it exists, else updates
    /// its record; returns whether it is new.
    pub fn add_vhost(&self, def: VHostDef) -> bool {
        self.vhosts
            .entry(def.name.clone())
            .or_insert_with(|| VHost::new(&def.name));
        self.auth.put_vhost(def)
    }

    /// Deletes a vhost: its connections are closed (320), its queues deleted
    /// (consumers told), its record and permissions removed.
    pub async fn delete_vhost(&self, name: &str) -> bool {
        let Some((_, vhost)) = self.vhosts.remove(name) else {
            return false;
        };
        for conn in self.connections.iter().filter(|c| c.vhost == name) {
            conn.force_close(&format!("vhost '{name}' is deleted"));
        }
        for queue in vhost.queues() {
            let deleted = vhost.remove_queue(&queue);
            crate::channel::notify_cancelled(&deleted.consumers).await;
        }
        self.auth.delete_vhost(name);
        true
    }

    /// A fresh connection id (owner key of exclusive queues).
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Accepts AMQP connections on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracker.spawn(connection::serve(stream, peer, broker.clone(), stop.child_token()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(connections = tracker.len(), "shutting down");
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}

//! Listeners, the accept loop and graceful shutdown.
//!
//! [`run`] is what `main` and the tests call: it accepts connections until the
//! shutdown future resolves, then tells every connection to close (320
//! CONNECTION_FORCED, as RabbitMQ does when it stops) and waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use crate::tls::TlsAcceptor;

/// How long shutdown waits for connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The sockets the broker accepts AMQP connections on.
pub struct Listeners {
    /// Plain AMQP.
    pub amqp: TcpListener,
    /// amqps: the socket and the TLS acceptor, when TLS is on.
    pub amqps: Option<(TcpListener, TlsAcceptor)>,
}

/// Accepts AMQP connections on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let listeners = Listeners {
        amqp: listener,
        amqps: None,
    };
    run_listeners(listeners, broker, shutdown).await;
}

/// Accepts AMQP connections on the plain listener and, when there is one, the
/// amqps listener, until `shutdown` resolves. The TLS handshake runs in each
/// connection's task ([`connection::serve_tls`]), never in this loop.
pub async fn run_listeners(
    listeners: Listeners,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let Listeners {
        amqp: listener,
        amqps,
    } = listeners;
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let alarms = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let paging = |on| broker.storage.set_memory_pressure(on);
            broker.alarms.run(paging).await;
        })
    };
    let ticker = tokio::spawn(crate::broker::timeouts::run(broker.clone()));
    let sampler = tokio::spawn(crate::broker::stats::run(Arc::downgrade(&broker)));
    // Shovels start once this node accepts connections: one may target it.
    match listener.local_addr() {
        Ok(local) => broker.shovels.start(local),
        Err(error) => tracing::error!(%error, "shovels not started: no listener address"),
    }
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
            accepted = accept_tls(amqps.as_ref()) => match accepted {
                Ok((stream, peer, acceptor)) => {
                    tracker.spawn(connection::serve_tls(stream, acceptor, peer, broker.clone(), stop.child_token()));
                }
                Err(error) => {
                    tracing::warn!(%error, "amqps accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(amqps);
    alarms.abort();
    ticker.abort();
    sampler.abort();
    // Shovels first: they close their own connections (to this node too),
    // so what they hold unacked goes back to its queue cleanly.
    broker.shovels.stop_all().await;
    tracing::info!(connections = tracker.len(), "shutting down");
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    broker.close();
}

/// The next amqps connection; pending forever without an amqps listener.
async fn accept_tls(
    amqps: Option<&(TcpListener, TlsAcceptor)>,
) -> std::io::Result<(TcpStream, SocketAddr, TlsAcceptor)> {
    match amqps {
        Some((listener, acceptor)) => {
            let (stream, peer) = listener.accept().await?;
            Ok((stream, peer, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}

/// Binds the configured amqps address (`tls_port`, on `bind`).
pub async fn bind_tls(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.tls_port)).await
}

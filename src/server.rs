//! Listeners, the accept loop and graceful shutdown.
//!
//! [`run`] is what `main` and the tests call: it accepts connections until the
//! shutdown future resolves, then tells every connection to close (320
//! CONNECTION_FORCED, as RabbitMQ does when it stops) and waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;

/// How long shutdown waits for connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts AMQP connections on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
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
    alarms.abort();
    ticker.abort();
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

/// Binds the configured address.
pub async fn bind(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}

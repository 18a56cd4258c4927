//! Shared helpers for the black-box tests: a broker started in-process on an
//! ephemeral port, polling, lapin helpers ([`lapin`]) and a raw AMQP socket for
//! sending exactly the bytes a test wants ([`raw`]).

#![allow(dead_code)]

pub mod http;
pub mod lapin;
pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warren::{Broker, Config};

/// Generous bound for anything a test waits on; tests poll, they never assert times.
pub const WAIT: Duration = Duration::from_secs(10);

/// A broker running in this process.
pub struct TestBroker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it listens for amqps, when started with [`start_tls`].
    pub tls_addr: Option<SocketAddr>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The broker itself (for tests that change it at run time).
    pub broker: Arc<Broker>,
    /// A data directory of its own, removed when the broker is dropped.
    _data: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// An AMQP URI for lapin, with optional query (e.g. "heartbeat=1").
    pub fn uri(&self, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("amqp://guest:guest@{}/%2f{q}", self.addr)
    }

    /// Stops the broker and waits for it to finish its shutdown.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The reference broker's URI and vhost when `WARREN_REFERENCE_URI` is set
/// (the black-box tests that also hold against RabbitMQ run there instead).
pub fn reference_broker() -> Option<(String, String)> {
    let uri = std::env::var("WARREN_REFERENCE_URI").ok()?;
    let path = uri.rsplit_once('/').map_or("", |(_, p)| p);
    let path = path.split('?').next().unwrap_or_default();
    let vhost = match path.replace("%2f", "/").replace("%2F", "/") {
        v if v.is_empty() => "/".to_owned(),
        v => v,
    };
    Some((uri, vhost))
}

/// Starts a broker with the default configuration (a short silent-close delay keeps
/// failure tests fast; the delay itself is RabbitMQ's and is configurable).
pub async fn start() -> TestBroker {
    start_with(|_| {}).await
}

/// Starts a broker after `tweak` has adjusted its configuration; it has a
/// fresh data directory of its own.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
    let data = tempfile::tempdir().expect("data dir");
    let mut broker = start_at(data.path(), tweak).await;
    broker._data = Some(data);
    broker
}

/// Starts a broker with an amqps listener beside the plain one, on ephemeral
/// ports; `tweak` sets the `tls_*` keys (cert and key at least). It has a fresh
/// data directory of its own.
pub async fn start_tls(tweak: impl FnOnce(&mut Config)) -> TestBroker {
    let data = tempfile::tempdir().expect("data dir");
    let mut broker = start_listening(data.path(), tweak, true).await;
    broker._data = Some(data);
    broker
}

/// Starts a broker on the data directory `dir` (which outlives it: restart
/// tests stop a broker and start another on the same directory).
pub async fn start_at(dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestBroker {
    start_listening(dir, tweak, false).await
}

/// Starts a broker on the data directory `dir` listening on `addr` (a
/// restart on the same port, for clients that reconnect to a fixed address).
pub async fn start_at_addr(
    dir: &Path,
    addr: SocketAddr,
    tweak: impl FnOnce(&mut Config),
) -> TestBroker {
    start_bound(dir, tweak, false, addr).await
}

async fn start_listening(dir: &Path, tweak: impl FnOnce(&mut Config), tls: bool) -> TestBroker {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    start_bound(dir, tweak, tls, any).await
}

async fn start_bound(
    dir: &Path,
    tweak: impl FnOnce(&mut Config),
    tls: bool,
    bind: SocketAddr,
) -> TestBroker {
    let mut config = Config {
        port: 0,
        silent_close_delay_ms: 100,
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    tweak(&mut config);
    config.validate().expect("valid test config");
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let amqps = if tls {
        let acceptor = warren::tls::acceptor(&config).expect("TLS configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind amqps");
        Some((listener, acceptor))
    } else {
        None
    };
    let tls_addr = amqps
        .as_ref()
        .map(|(listener, _)| listener.local_addr().expect("amqps addr"));
    let broker = open_when_free(config).await;
    let listeners = warren::server::Listeners {
        amqp: listener,
        amqps,
    };
    let task = tokio::spawn(warren::server::run_listeners(
        listeners,
        broker.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    TestBroker {
        addr,
        tls_addr,
        data_dir: dir.to_owned(),
        broker,
        _data: None,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Opens a broker on `config`'s data directory. A broker stopped in this
/// process a moment before may still hold the directory's lock, through a
/// task of its own that has not run since its connections closed (the test
/// runtime runs one task at a time): a held lock is tried again, every 20 ms
/// until [`WAIT`] has passed, giving those tasks their turn to end.
async fn open_when_free(config: Config) -> Arc<Broker> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Broker::open(config.clone()) {
            Ok(broker) => return broker,
            Err(warren_storage::StorageError::Engine(e))
                if e.contains("could not acquire lock")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open the data directory: {e:?}"),
        }
    }
}

/// Asks `probe` every 20 ms until it answers `expected` or [`WAIT`] has passed;
/// returns its last answer, for the caller to assert on.
pub async fn eventually<T: PartialEq>(expected: T, mut probe: impl AsyncFnMut() -> T) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = probe().await;
        if answer == expected || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

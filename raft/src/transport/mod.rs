//! One TCP connection per node pair, carrying every Raft group (and later every other
//! node-to-node message).
//!
//! Frames are `LengthDelimitedCodec` frames holding postcard-encoded [`wire::Frame`]s. The node
//! with the lower id dials and the other accepts, so a pair never ends with two connections;
//! the dialer reconnects with backoff (100 ms doubling to 2 s) for as long as it knows the
//! peer. A request waits for the response of the same id, for at most its timeout; a dropped
//! connection fails every request in flight on it at once. See docs/cluster-design.md
//! section 3.
//!
//! A link may be secured ([`LinkSecurity`]): TLS with mutual certificates ([`tls`]) and a
//! shared secret proven in the handshake ([`auth`]), either or both. Without either, anyone
//! who reaches the port may join the links: a trusted network only.

pub mod auth;
mod link;
pub mod policy;
mod shaped;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use self::auth::ClusterSecret;
use self::auth::Side;
use self::link::{LinkHandle, lock};
use self::policy::{LinkPolicy, Verdict};
pub use self::tls::LinkTls;
use self::wire::{Body, CodecError, Frame, Hello, PROTOCOL_VERSION, Request, Response};
use crate::types::NodeId;

/// A boxed future answering one request.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// Answers the requests peers send to this node.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request from node `from`.
    fn handle(&self, from: NodeId, req: Request) -> HandlerFuture;
}

/// Why a request or a link failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The link policy cut this link (tests).
    #[error("link {from} -> {to} is cut")]
    LinkCut {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
    },
    /// No live connection to the peer right now.
    #[error("no connection to node {0}")]
    NotConnected(NodeId),
    /// The peer did not answer in time.
    #[error("node {0} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
    /// The connection closed while the request was in flight.
    #[error("connection to node {0} lost")]
    ConnectionLost(NodeId),
    /// A frame could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A socket error.
    #[error("cluster socket: {0}")]
    Io(#[from] io::Error),
    /// The peer's Hello was missing or refused.
    #[error("cluster handshake: {0}")]
    Handshake(String),
    /// The peer did not prove the cluster secret (or this node could not check it).
    #[error("cluster peer not authenticated: {0}")]
    Auth(String),
    /// The TLS handshake failed (no certificate, another CA, a plain peer).
    #[error("cluster TLS: {0}")]
    Tls(String),
}

impl TransportError {
    /// Whether the peer failed the link's security (secret or TLS): worth a warning, as
    /// it is either a misconfigured node or someone who should not be there.
    pub fn is_security(&self) -> bool {
        matches!(self, Self::Auth(_) | Self::Tls(_))
    }
}

/// How a node's links are secured; the default secures nothing (a trusted network only).
#[derive(Clone, Debug, Default)]
pub struct LinkSecurity {
    /// The cluster secret every node proves it knows in the handshake.
    pub secret: Option<ClusterSecret>,
    /// TLS with mutual certificates under the cluster's CA.
    pub tls: Option<LinkTls>,
}

/// How a node's transport is set up.
pub struct TransportConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Peers in another cluster are refused.
    pub cluster_name: String,
    /// The address to listen on (port 0 picks one).
    pub bind: SocketAddr,
    /// How long a dial may take.
    pub connect_timeout: Duration,
    /// Which links may carry traffic.
    pub policy: Arc<dyn LinkPolicy>,
    /// The secret and TLS of every link.
    pub security: LinkSecurity,
}

/// What the transport knows of one peer.
#[derive(Default)]
struct Peer {
    addr: Option<String>,
    link: Option<LinkHandle>,
    dialing: bool,
}

pub(crate) struct Inner {
    pub(crate) node_id: NodeId,
    cluster_name: String,
    local_addr: SocketAddr,
    connect_timeout: Duration,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) policy: Arc<dyn LinkPolicy>,
    security: LinkSecurity,
    peers: Mutex<HashMap<NodeId, Peer>>,
    next_request: AtomicU64,
    next_generation: AtomicU64,
    pub(crate) shutdown: CancellationToken,
}

/// The node's cluster transport; clones share it.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Binds the listener and starts accepting peers; requests go to `handler`.
    pub async fn bind(
        config: TransportConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Self, TransportError> {
        let listener = TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            node_id: config.node_id,
            cluster_name: config.cluster_name,
            local_addr,
            connect_timeout: config.connect_timeout,
            handler,
            policy: config.policy,
            security: config.security,
            peers: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(inner.clone(), listener));
        Ok(Self { inner })
    }

    /// The address peers dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Records (or updates) a peer's address; dials it if this node has the lower id.
    pub fn add_peer(&self, id: NodeId, addr: impl Into<String>) {
        if id == self.inner.node_id {
            return;
        }
        let addr = addr.into();
        let dial = {
            let mut peers = lock(&self.inner.peers);
            let peer = peers.entry(id).or_default();
            peer.addr = Some(addr);
            let dial = self.inner.node_id < id && !peer.dialing;
            if dial {
                peer.dialing = true;
            }
            dial
        };
        if dial {
            tokio::spawn(dial_loop(self.inner.clone(), id));
        }
    }

    /// Forgets a peer: stops dialing it and closes its connection.
    pub fn remove_peer(&self, id: NodeId) {
        if let Some(peer) = lock(&self.inner.peers).remove(&id)
            && let Some(link) = peer.link
        {
            link.closed.cancel();
        }
    }

    /// Whether a connection to `id` is up (and not cut by the link policy either way).
    pub fn is_connected(&self, id: NodeId) -> bool {
        let linked = lock(&self.inner.peers)
            .get(&id)
            .is_some_and(|p| p.link.is_some());
        linked && !self.inner.cut_between(id)
    }

    /// Sends a request to `to` and waits for its response for at most `timeout`.
    pub async fn request(
        &self,
        to: NodeId,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = match tokio::time::timeout_at(deadline, self.put(to, req)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(TransportError::Timeout(to, timeout)),
        };
        match tokio::time::timeout_at(deadline, sent.answer).await {
            Ok(answer) => answer.map_err(|_| TransportError::ConnectionLost(to)),
            Err(_) => {
                lock(&sent.link.pending).remove(&sent.id);
                Err(TransportError::Timeout(to, timeout))
            }
        }
    }

    /// Puts a request on the link to `to` and returns at once with where its response
    /// will come: requests sent one after another leave (and reach the peer's handler) in
    /// that order, whatever their responses' timing. The caller bounds the wait.
    pub async fn send_request(
        &self,
        to: NodeId,
        req: Request,
    ) -> Result<oneshot::Receiver<Response>, TransportError> {
        Ok(self.put(to, req).await?.answer)
    }

    /// The link policy's verdict, then the request framed and queued on the pair's link.
    async fn put(&self, to: NodeId, req: Request) -> Result<Sent, TransportError> {
        let from = self.inner.node_id;
        match self.inner.policy.verdict(from, to) {
            Verdict::Pass => {}
            Verdict::Drop => return Err(TransportError::LinkCut { from, to }),
            Verdict::Delay(d) => tokio::time::sleep(d).await,
        }
        let link = lock(&self.inner.peers)
            .get(&to)
            .and_then(|p| p.link.clone())
            .ok_or(TransportError::NotConnected(to))?;
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let bytes = Frame {
            id,
            body: Body::Request(req),
        }
        .encode()?;
        let (tx, answer) = oneshot::channel();
        lock(&link.pending).insert(id, tx);
        if link.tx.send(Bytes::from(bytes)).await.is_err() {
            lock(&link.pending).remove(&id);
            return Err(TransportError::ConnectionLost(to));
        }
        Ok(Sent { link, id, answer })
    }

    /// Sends one request over a connection of its own to `addr` (any node, whatever its id;
    /// join and leave use it before the pair has a link) and closes it after the answer.
    pub async fn call_addr(
        &self,
        addr: &str,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let mut hello = self.inner.hello();
        hello.transient = true;
        let outcome = tokio::time::timeout(timeout, async {
            let stream = TcpStream::connect(addr).await?;
            let (reader, writer, theirs) =
                link::handshake(stream, &hello, Side::Dialer, &self.inner.security).await?;
            // The peer's id is known only now; a cut refuses the call as it would a link.
            if self.inner.unreachable(theirs.node_id) {
                return Err(TransportError::LinkCut {
                    from: self.inner.node_id,
                    to: theirs.node_id,
                });
            }
            link::call_once(reader, writer, req).await
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(0, timeout)),
        }
    }

    /// Stops listening, dialing and every connection.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    fn hello(&self) -> Hello {
        Hello {
            cluster_name: self.cluster_name.clone(),
            node_id: self.node_id,
            addr: self.local_addr.to_string(),
            version: PROTOCOL_VERSION,
            transient: false,
            // Set by the handshake.
            nonce: [0; auth::NONCE_LEN],
            proves: false,
        }
    }

    pub(crate) fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `link` the peer's connection, closing any previous one.
    pub(crate) fn install_link(&self, peer: NodeId, link: LinkHandle) {
        let old = lock(&self.peers)
            .entry(peer)
            .or_default()
            .link
            .replace(link);
        if let Some(old) = old {
            old.closed.cancel();
        }
    }

    /// Forgets the peer's connection if it is still the one of `generation`.
    pub(crate) fn remove_link(&self, peer: NodeId, generation: u64) {
        let mut peers = lock(&self.peers);
        if let Some(p) = peers.get_mut(&peer)
            && p.link.as_ref().is_some_and(|l| l.generation == generation)
        {
            p.link = None;
        }
    }

    /// Whether the link policy drops messages from `from` to `to` (only Drop cuts; a Delay
    /// is applied where requests are put on the link).
    pub(crate) fn cut(&self, from: NodeId, to: NodeId) -> bool {
        self.policy.verdict(from, to) == Verdict::Drop
    }

    /// Whether the link between this node and `peer` is cut in either direction: a TCP
    /// connection needs both, so a cut either way refuses or closes it.
    pub(crate) fn cut_between(&self, peer: NodeId) -> bool {
        self.cut(self.node_id, peer) || self.cut(peer, self.node_id)
    }

    /// Whether no connection with `peer` can be set up now: a cut either way, or a
    /// direction that loses every frame (a handshake needs both ways).
    pub(crate) fn unreachable(&self, peer: NodeId) -> bool {
        self.cut_between(peer)
            || self.policy.shape(self.node_id, peer).loses_all()
            || self.policy.shape(peer, self.node_id).loses_all()
    }

    fn peer_addr(&self, peer: NodeId) -> Option<String> {
        lock(&self.peers).get(&peer).and_then(|p| p.addr.clone())
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(node = inner.node_id, error = %e, "cluster accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            match link::handshake(stream, &inner.hello(), Side::Acceptor, &inner.security).await {
                Ok((reader, writer, hello)) => {
                    if inner.unreachable(hello.node_id) {
                        tracing::debug!(
                            node = inner.node_id,
                            peer = hello.node_id,
                            "refused a connection: the link is cut (test hook)"
                        );
                    } else if hello.transient {
                        link::serve_transient(inner.clone(), hello.node_id, reader, writer).await;
                    } else if hello.node_id < inner.node_id {
                        lock(&inner.peers).entry(hello.node_id).or_default().addr =
                            Some(hello.addr);
                        link::run(inner.clone(), hello.node_id, reader, writer).await;
                    } else {
                        tracing::warn!(node = inner.node_id, peer = hello.node_id, %remote,
                            "refused a dial from a higher node id (the lower id dials)");
                    }
                }
                Err(e) if e.is_security() => {
                    tracing::warn!(node = inner.node_id, %remote, error = %e, "refused a cluster peer")
                }
                Err(e) => {
                    tracing::warn!(node = inner.node_id, %remote, error = %e, "cluster handshake failed")
                }
            }
        });
    }
}

/// Keeps a connection to `peer` (a higher id) up, redialing with backoff.
async fn dial_loop(inner: Arc<Inner>, peer: NodeId) {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);
    let mut backoff = FIRST;
    loop {
        if inner.shutdown.is_cancelled() {
            break;
        }
        let Some(addr) = inner.peer_addr(peer) else {
            break;
        };
        match tokio::time::timeout(inner.connect_timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                match link::handshake(stream, &inner.hello(), Side::Dialer, &inner.security).await {
                    Ok(_) if inner.unreachable(peer) => {
                        // Cut by the test hook: retry soon, so a heal is seen within a period.
                        backoff = FIRST;
                        tracing::debug!(
                            node = inner.node_id,
                            peer,
                            "link cut (test hook); not connecting"
                        );
                    }
                    Ok((reader, writer, hello)) if hello.node_id == peer => {
                        backoff = FIRST;
                        link::run(inner.clone(), peer, reader, writer).await;
                    }
                    Ok((_, _, hello)) => tracing::warn!(node = inner.node_id, peer, %addr,
                    answered = hello.node_id, "dialed the wrong node"),
                    Err(e) if e.is_security() => {
                        tracing::warn!(node = inner.node_id, peer, %addr, error = %e, "refused a cluster peer")
                    }
                    Err(e) => {
                        tracing::debug!(node = inner.node_id, peer, %addr, error = %e, "cluster handshake failed")
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(node = inner.node_id, peer, %addr, error = %e, "cluster dial failed")
            }
            Err(_) => tracing::debug!(node = inner.node_id, peer, %addr, "cluster dial timed out"),
        }
        tokio::select! {
            _ = inner.shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX);
    }
    if let Some(p) = lock(&inner.peers).get_mut(&peer) {
        p.dialing = false;
    }
}

/// A request on its way: where its answer comes, and how to forget it.
struct Sent {
    link: LinkHandle,
    id: u64,
    answer: oneshot::Receiver<Response>,
}

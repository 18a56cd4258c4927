//! One live connection to a peer (TCP, or TLS over it): the handshake, the batching writer,
//! the reader.
//!
//! The writer drains up to [`WRITE_BATCH`] queued frames and writes them with one
//! `write_all`, so the AppendEntries of every group bound for that peer leave in one syscall
//! (the same pattern as the broker's `connection/writer.rs`). The reader decodes frames:
//! responses complete the pending request of the same id, requests run on their own task so
//! a slow group never stalls the link.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::auth::{self, ClusterSecret, Exchange, Side};
use super::wire::{self, Body, Frame, Hello, MAX_FRAME, PROTOCOL_VERSION, Request, Response};
use super::{Inner, LinkSecurity, TransportError};
use crate::types::NodeId;

/// How many queued frames the writer takes for one write.
pub(crate) const WRITE_BATCH: usize = 256;

/// How many frames may wait for the writer before senders wait.
pub(crate) const QUEUE_DEPTH: usize = 4096;

/// How long a peer has to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests sent on a link and waiting for their response, by request id.
pub(crate) type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// The handle to a live link that senders use.
#[derive(Clone)]
pub(crate) struct LinkHandle {
    /// Distinguishes this connection from a later one to the same peer.
    pub(crate) generation: u64,
    /// Encoded frames for the writer.
    pub(crate) tx: mpsc::Sender<Bytes>,
    /// Requests awaiting a response on this connection.
    pub(crate) pending: Pending,
    /// Cancelled to close the connection.
    pub(crate) closed: CancellationToken,
}

pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// The byte stream under a link's reader (TCP or TLS).
type ByteRead = Box<dyn AsyncRead + Send + Unpin>;

/// A link's read side: frames from the peer.
pub(crate) type LinkRead = FramedRead<ByteRead, LengthDelimitedCodec>;

/// A link's write side (TCP or TLS underneath).
pub(crate) type LinkWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Splits a TLS stream into boxed halves, so the link code is the same over TCP and TLS.
fn halves<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (ByteRead, LinkWrite) {
    let (read, write) = tokio::io::split(stream);
    (Box::new(read), Box::new(write))
}

/// Sets up a new connection: TLS if configured, then our Hello and the peer's (checked),
/// then the proofs of the cluster secret if configured. Returns the split stream and the
/// peer's Hello. `ours.nonce` is replaced by a fresh one.
pub(crate) async fn handshake(
    stream: TcpStream,
    ours: &Hello,
    side: Side,
    security: &LinkSecurity,
) -> Result<(LinkRead, LinkWrite, Hello), TransportError> {
    stream.set_nodelay(true)?;
    let (read, mut write): (ByteRead, LinkWrite) = match &security.tls {
        None => {
            // TCP's owned halves need no lock between reader and writer.
            let (read, write) = stream.into_split();
            (Box::new(read), Box::new(write))
        }
        Some(tls) => {
            let handshake = async {
                match side {
                    Side::Dialer => tls.connect(stream).await.map(halves),
                    Side::Acceptor => tls.accept(stream).await.map(halves),
                }
            };
            match tokio::time::timeout(HELLO_TIMEOUT, handshake).await {
                Err(_) => return Err(TransportError::Tls("no TLS handshake within 5 s".into())),
                Ok(Err(e)) => return Err(TransportError::Tls(e.to_string())),
                Ok(Ok(halves)) => halves,
            }
        }
    };
    let mut ours = ours.clone();
    ours.nonce = auth::nonce()?;
    ours.proves = security.secret.is_some();
    // In TLS 1.3 the acceptor checks the dialer's certificate after the dialer's side of
    // the handshake is done: a refusal reaches the dialer as an alert on its first read.
    let alert = |e: TransportError| match e {
        TransportError::Io(io)
            if security.tls.is_some() && io.kind() == std::io::ErrorKind::InvalidData =>
        {
            TransportError::Tls(io.to_string())
        }
        other => other,
    };
    write_frame(
        &mut write,
        Frame {
            id: 0,
            body: Body::Hello(ours.clone()),
        },
    )
    .await
    .map_err(alert)?;
    let mut reader = FramedRead::new(read, codec());
    let first = next_bytes(&mut reader, "Hello").await.map_err(alert)?;
    let body = match Frame::decode(&first) {
        Ok(frame) => frame.body,
        // Another version's Hello need not decode as ours: name its version if it can.
        Err(e) => match wire::hello_version(&first) {
            Some(v) if v != PROTOCOL_VERSION => {
                return Err(TransportError::Handshake(format!(
                    "peer speaks protocol {v}, we speak {PROTOCOL_VERSION}"
                )));
            }
            _ => return Err(e.into()),
        },
    };
    let theirs = match body {
        Body::Hello(h) => h,
        other => {
            return Err(TransportError::Handshake(format!(
                "first frame is not Hello: {other:?}"
            )));
        }
    };
    if theirs.version != PROTOCOL_VERSION {
        return Err(TransportError::Handshake(format!(
            "peer speaks protocol {}, we speak {PROTOCOL_VERSION}",
            theirs.version
        )));
    }
    if theirs.cluster_name != ours.cluster_name {
        return Err(TransportError::Handshake(format!(
            "peer is in cluster {:?}, we are in {:?}",
            theirs.cluster_name, ours.cluster_name
        )));
    }
    if theirs.node_id == ours.node_id {
        return Err(TransportError::Handshake("peer has our own node id".into()));
    }
    match (&security.secret, theirs.proves) {
        (None, false) => {}
        (None, true) => {
            return Err(TransportError::Auth(
                "the peer has a cluster secret and this node has none".into(),
            ));
        }
        (Some(_), false) => {
            return Err(TransportError::Auth(
                "the peer has no cluster secret to prove".into(),
            ));
        }
        (Some(secret), true) => {
            prove(&mut reader, &mut write, side, secret, &ours, &theirs).await?;
        }
    }
    Ok((reader, write, theirs))
}

/// The proofs of the secret: the dialer proves first, and the acceptor proves only to a
/// dialer that did (see `auth`).
async fn prove(
    reader: &mut LinkRead,
    writer: &mut LinkWrite,
    side: Side,
    secret: &ClusterSecret,
    ours: &Hello,
    theirs: &Hello,
) -> Result<(), TransportError> {
    let their_side = match side {
        Side::Dialer => Side::Acceptor,
        Side::Acceptor => Side::Dialer,
    };
    let my_proof = Exchange {
        cluster: &ours.cluster_name,
        side,
        prover: (ours.node_id, &ours.nonce),
        verifier: (theirs.node_id, &theirs.nonce),
    }
    .prove(secret);
    let mut mine = Some(Frame {
        id: 0,
        body: Body::Proof(my_proof),
    });
    if side == Side::Dialer
        && let Some(frame) = mine.take()
    {
        write_frame(writer, frame).await?;
    }
    let proof = match next_frame(reader, "proof").await {
        Ok(Body::Proof(p)) => p,
        Ok(_) => {
            return Err(TransportError::Auth(
                "the peer sent no proof of the cluster secret".into(),
            ));
        }
        // An acceptor closes on a dialer whose proof is wrong: that is all a dialer with
        // another secret sees.
        Err(TransportError::Handshake(why)) if side == Side::Dialer => {
            return Err(TransportError::Auth(format!(
                "the peer refused our proof of the cluster secret ({why}; another secret?)"
            )));
        }
        Err(TransportError::Io(e)) if side == Side::Dialer => {
            return Err(TransportError::Auth(format!(
                "the peer refused our proof of the cluster secret ({e}; another secret?)"
            )));
        }
        Err(e) => return Err(e),
    };
    let theirs_ok = Exchange {
        cluster: &ours.cluster_name,
        side: their_side,
        prover: (theirs.node_id, &theirs.nonce),
        verifier: (ours.node_id, &ours.nonce),
    }
    .verify(secret, &proof);
    if !theirs_ok {
        return Err(TransportError::Auth(
            "the peer's proof of the cluster secret is wrong (another secret?)".into(),
        ));
    }
    if let Some(frame) = mine {
        write_frame(writer, frame).await?;
    }
    Ok(())
}

/// The body of the next frame of a handshake, within [`HELLO_TIMEOUT`].
async fn next_frame(reader: &mut LinkRead, what: &str) -> Result<Body, TransportError> {
    Ok(Frame::decode(&next_bytes(reader, what).await?)?.body)
}

/// The next frame of a handshake, undecoded, within [`HELLO_TIMEOUT`].
async fn next_bytes(reader: &mut LinkRead, what: &str) -> Result<BytesMut, TransportError> {
    let bytes = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Err(_) => {
            return Err(TransportError::Handshake(format!("no {what} within 5 s")));
        }
        Ok(None) => {
            return Err(TransportError::Handshake(format!("closed before {what}")));
        }
        Ok(Some(frame)) => frame?,
    };
    Ok(bytes)
}

/// Runs a handshaken connection to `peer` until either side closes it or the transport stops.
pub(crate) async fn run(inner: Arc<Inner>, peer: NodeId, mut reader: LinkRead, writer: LinkWrite) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let closed = inner.shutdown.child_token();
    let link = LinkHandle {
        generation: inner.next_generation(),
        tx,
        pending: Arc::new(Mutex::new(HashMap::new())),
        closed: closed.clone(),
    };
    inner.install_link(peer, link.clone());
    tracing::info!(node = inner.node_id, peer, "cluster link up");
    // Only a test policy that shapes links costs the shaped writer; production keeps this one.
    let writer_task = if inner.policy.shapes_links() {
        tokio::spawn(super::shaped::write_loop(
            inner.clone(),
            writer,
            rx,
            closed.clone(),
            peer,
        ))
    } else {
        tokio::spawn(write_loop(writer, rx, closed.clone(), peer))
    };
    loop {
        let next = tokio::select! {
            _ = closed.cancelled() => break,
            next = reader.next() => next,
        };
        let bytes = match next {
            None => break,
            Some(Ok(bytes)) => bytes,
            // A peer gone without TLS's close_notify (killed): a plain TCP EOF says no more.
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(node = inner.node_id, peer, error = %e, "cluster link closed");
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(node = inner.node_id, peer, error = %e, "cluster link read failed");
                break;
            }
        };
        let frame = match Frame::decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(node = inner.node_id, peer, error = %e, "undecodable frame; closing link");
                break;
            }
        };
        // A frame that was on the wire when its link was cut breaks the connection, as a
        // cut would a TCP connection: what was in flight on it fails, nothing crosses.
        if !matches!(frame.body, Body::Hello(_) | Body::Proof(_)) && inner.cut(peer, inner.node_id)
        {
            tracing::info!(
                node = inner.node_id,
                peer,
                "link cut (test hook); closing it"
            );
            break;
        }
        match frame.body {
            Body::Response(resp) => {
                let waiter = lock(&link.pending).remove(&frame.id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(resp);
                }
            }
            Body::Request(req) => {
                let tx = link.tx.clone();
                let node = inner.node_id;
                let (policy_of, closed) = (inner.clone(), closed.clone());
                // Handed over here, in the order the frames came: a handler that acts
                // before its future runs (application messages) keeps the sender's order.
                let answer = inner.handler.handle(peer, req);
                tokio::spawn(async move {
                    let body = Body::Response(answer.await);
                    // A reply is a message too: cut, it closes the link and the request
                    // fails on the other side (it may have taken effect here).
                    if policy_of.cut(node, peer) {
                        tracing::info!(
                            node,
                            peer,
                            "link cut (test hook) before a reply; closing it"
                        );
                        closed.cancel();
                        return;
                    }
                    match (Frame { id: frame.id, body }).encode() {
                        Ok(bytes) => {
                            let _ = tx.send(Bytes::from(bytes)).await;
                        }
                        Err(e) => tracing::warn!(node, peer, error = %e, "response not encodable"),
                    }
                });
            }
            Body::Hello(_) | Body::Proof(_) => {
                tracing::warn!(
                    node = inner.node_id,
                    peer,
                    "handshake frame on a live link; closing it"
                );
                break;
            }
        }
    }
    closed.cancel();
    writer_task.abort();
    inner.remove_link(peer, link.generation);
    // Dropping the waiters fails every request still in flight on this connection.
    lock(&link.pending).clear();
    tracing::info!(node = inner.node_id, peer, "cluster link down");
}

/// Writes one frame on a raw connection.
async fn write_frame(writer: &mut LinkWrite, frame: Frame) -> Result<(), TransportError> {
    let mut buf = BytesMut::new();
    codec().encode(Bytes::from(frame.encode()?), &mut buf)?;
    writer.write_all(&buf).await?;
    // TLS buffers records; TCP's flush is a no-op.
    writer.flush().await?;
    Ok(())
}

/// Sends one request on a transient connection and returns its response.
pub(crate) async fn call_once(
    mut reader: LinkRead,
    mut writer: LinkWrite,
    req: Request,
) -> Result<Response, TransportError> {
    write_frame(
        &mut writer,
        Frame {
            id: 1,
            body: Body::Request(req),
        },
    )
    .await?;
    while let Some(bytes) = reader.next().await {
        if let Body::Response(resp) = Frame::decode(&bytes?)?.body {
            return Ok(resp);
        }
    }
    Err(TransportError::Handshake(
        "transient connection closed before the answer".into(),
    ))
}

/// Answers the requests of a transient connection (join, leave) one by one until it closes;
/// it is never installed as the pair's link.
pub(crate) async fn serve_transient(
    inner: Arc<Inner>,
    peer: NodeId,
    mut reader: LinkRead,
    mut writer: LinkWrite,
) {
    loop {
        let next = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            next = reader.next() => next,
        };
        let Some(Ok(bytes)) = next else { return };
        let Ok(frame) = Frame::decode(&bytes) else {
            return;
        };
        if let Body::Request(req) = frame.body {
            if inner.unreachable(peer) {
                return;
            }
            let body = Body::Response(inner.handler.handle(peer, req).await);
            if inner.cut(inner.node_id, peer) {
                return;
            }
            if write_frame(&mut writer, Frame { id: frame.id, body })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Writes queued frames, many per syscall, until the link closes.
async fn write_loop(
    mut writer: LinkWrite,
    mut rx: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
    peer: NodeId,
) {
    let mut codec = codec();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut buf = BytesMut::new();
    loop {
        let n = tokio::select! {
            _ = closed.cancelled() => break,
            n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
        };
        if n == 0 {
            break;
        }
        buf.clear();
        for frame in batch.drain(..) {
            if let Err(e) = codec.encode(frame, &mut buf) {
                tracing::warn!(peer, error = %e, "frame not encodable; dropped");
            }
        }
        if let Err(e) = async {
            writer.write_all(&buf).await?;
            // TLS buffers records until flushed; TCP's flush is a no-op.
            writer.flush().await
        }
        .await
        {
            tracing::debug!(peer, error = %e, "cluster link write failed");
            break;
        }
    }
    closed.cancel();
}

/// Locks a std mutex, ignoring poisoning (the maps stay consistent on every path).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

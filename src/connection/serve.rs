//! Accepting a connection: TLS when amqps, the AMQP handshake, then the frame
//! loop ([`Connection::run`](super::Connection)); and the close-ok wait shared
//! by a refused handshake and a closing connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warren_codec::protocol::{AMQPClass, connection};
use warren_codec::{Frame, FrameEncoder};

use super::handshake::{self, HandshakeError};
use super::reader::{FrameReader, ReadError};
use super::{Connection, writer};
use crate::broker::Broker;
use crate::channel::ConnectionInfo;
use crate::channel::confirms::ConfirmQueue;
use crate::outbound::{Outbound, OutboundTx};
use crate::tls::TlsAcceptor;

/// How long the broker waits for connection.close-ok after sending connection.close
/// (RabbitMQ's closing timeout).
const CLOSING_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one accepted plain TCP connection until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let deadline = Instant::now() + broker.config.handshake_timeout();
    let (read, write) = stream.into_split();
    let transport = Transport {
        peer,
        local,
        tls: None,
    };
    serve_stream(read, write, transport, deadline, broker, shutdown).await;
}

/// Serves one accepted amqps connection: the TLS handshake, then AMQP as
/// [`serve`]. Both handshakes share the handshake timeout, and both run in
/// this connection's task, never in the accept loop.
pub async fn serve_tls(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let deadline = Instant::now() + broker.config.handshake_timeout();
    let accepted = tokio::select! {
        accepted = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => accepted,
        () = shutdown.cancelled() => return,
    };
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "closing connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "closing connection: TLS handshake timeout");
            return;
        }
    };
    let session = stream.get_ref().1;
    let tls = TlsSession {
        client_certificate: session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| ClientCertificate {
                common_name: crate::tls::common_name(leaf),
                distinguished_name: crate::tls::distinguished_name(leaf),
            }),
    };
    let (read, write) = tokio::io::split(stream);
    let transport = Transport {
        peer,
        local,
        tls: Some(tls),
    };
    serve_stream(read, write, transport, deadline, broker, shutdown).await;
}

/// Where a connection comes from.
#[derive(Debug, Clone)]
struct Transport {
    peer: SocketAddr,
    local: Option<SocketAddr>,
    /// `Some` on an amqps connection.
    tls: Option<TlsSession>,
}

/// What an amqps connection's TLS handshake established.
#[derive(Debug, Clone)]
pub struct TlsSession {
    /// The client's certificate, present only when it was verified against
    /// `tls_ca` (`tls_verify_peer`).
    pub client_certificate: Option<ClientCertificate>,
}

/// A verified client certificate.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// Its subject's common name (CN), if it has one.
    pub common_name: Option<String>,
    /// Its subject as RabbitMQ formats it (`CN=alice,O=Warren,C=SE`).
    pub distinguished_name: Option<String>,
}

/// The handshake and the frame loop over any byte stream's halves.
async fn serve_stream<R, W>(
    read: R,
    mut write: W,
    transport: Transport,
    deadline: Instant,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Transport { peer, local, tls } = transport;
    let client_certificate = tls.as_ref().and_then(|t| t.client_certificate.as_ref());
    let handshake = tokio::select! {
        result = tokio::time::timeout_at(
            deadline,
            handshake::run(&broker, peer, client_certificate, read, &mut write),
        ) => result,
        () = shutdown.cancelled() => return,
    };
    let Ok((result, reader)) = handshake else {
        tracing::info!(%peer, "closing connection: handshake timeout");
        return;
    };
    match (result, reader) {
        (Ok(mut tuned), Some(reader)) => {
            tracing::info!(%peer, user = %tuned.user, vhost = %tuned.vhost.name, "connection opened");
            let (out, writer) = writer::spawn(write, tuned.frame_max, tuned.heartbeat);
            let confirms = ConfirmQueue::spawn(out.clone(), tuned.vhost.storage.clone());
            let info = ConnectionInfo {
                confirms,
                id: broker.next_connection_id(),
                vhost: tuned.vhost.clone(),
                user: tuned.user.clone(),
                max_message_size: broker.config.max_message_size,
                consumer_timeout: broker.config.consumer_timeout_ms(),
                access: broker.auth.access(&tuned.user, &tuned.vhost.name),
                global: broker.global.clone(),
            };
            let alarm = broker.alarms.subscribe();
            let close = shutdown.child_token();
            let tune = (tuned.channel_max, tuned.frame_max, tuned.heartbeat);
            let live = crate::broker::connections::LiveConnection::new(
                info.id,
                peer,
                local,
                &tuned.user,
                &tuned.vhost.name,
                tuned.client_properties.clone(),
                tune,
                close.clone(),
                tls.is_some(),
            );
            match tuned.admission.take() {
                Some(admission) => broker.register(live.clone(), admission),
                None => {
                    broker.connections.insert(info.id, live.clone());
                }
            }
            broker.global.connections_opened.incr_concurrent();
            let id = info.id;
            let conn = Connection {
                live,
                broker: broker.clone(),
                peer,
                tuned,
                info,
                out,
                channels: HashMap::default(),
                confirming: Vec::new(),
                alarm,
                published: false,
                channel_errors: mpsc::channel(8),
            };
            conn.run(reader, close).await;
            if let Some((_, live)) = broker.connections.remove(&id) {
                broker.retired.absorb(&live.totals());
            }
            let _ = writer.await;
        }
        (Err(HandshakeError::Silent(reason)), _) => {
            tracing::info!(%peer, %reason, "closing connection during handshake");
            tokio::select! {
                () = tokio::time::sleep(broker.config.silent_close_delay()) => {}
                () = shutdown.cancelled() => {}
            }
        }
        (Err(HandshakeError::Close(error)), reader) => {
            tracing::info!(%peer, %error, "refusing connection");
            let mut buf = bytes::BytesMut::new();
            if FrameEncoder::new()
                .method(0, &handshake::close_method(&error), &mut buf)
                .is_ok()
                && writer::send_all(&mut write, &buf).await.is_ok()
                && let Some(mut reader) = reader
            {
                let sink = CloseOkSink::Socket(&mut write);
                let _ =
                    tokio::time::timeout(CLOSING_TIMEOUT, await_close_ok(&mut reader, sink)).await;
            }
        }
        _ => {}
    }
}

/// Where a closing connection's close-ok replies go: the socket itself during the
/// handshake, the writer task afterwards.
pub(super) enum CloseOkSink<'a, W> {
    Socket(&'a mut W),
    Writer(&'a OutboundTx),
}

impl<W: AsyncWrite + Unpin> CloseOkSink<'_, W> {
    async fn close_ok(&mut self) {
        match self {
            CloseOkSink::Socket(write) => {
                let mut buf = bytes::BytesMut::new();
                if FrameEncoder::new()
                    .method(0, &connection_close_ok(), &mut buf)
                    .is_ok()
                {
                    let _ = writer::send_all(*write, &buf).await;
                }
            }
            CloseOkSink::Writer(out) => {
                let _ = out.send(Outbound::Method(0, connection_close_ok())).await;
            }
        }
    }
}

/// After the broker sent connection.close: everything is ignored until close-ok,
/// a crossing connection.close is answered with close-ok (as RabbitMQ does), and
/// frames that do not decode are skipped as long as framing holds.
pub(super) async fn await_close_ok<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut FrameReader<R>,
    mut sink: CloseOkSink<'_, W>,
) {
    loop {
        match reader.next().await {
            Ok(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))) => {
                return;
            }
            Ok(Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(_)))) => {
                sink.close_ok().await;
            }
            Ok(_) => {}
            Err(ReadError::Codec(e)) if !e.breaks_framing() => {}
            Err(_) => return,
        }
    }
}

pub(super) fn connection_close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

/// How long to wait for the peer once a close is under way: RabbitMQ waits one
/// heartbeat interval when that is shorter than 30 s, else 30 s.
pub(super) fn closing_timeout(heartbeat: Option<Duration>) -> Duration {
    heartbeat.map_or(CLOSING_TIMEOUT, |hb| hb.min(CLOSING_TIMEOUT))
}

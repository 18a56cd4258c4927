//! One AMQP connection: the handshake, then the frame loop with its channels.
//!
//! The task running [`serve`] is the connection's reader: it decodes frames, keeps
//! the channels' state and decides what to answer. Everything it sends goes through
//! the writer task ([`writer`]), which batches and sends heartbeats.

mod channel_ids;
pub mod handshake;
pub mod reader;
pub mod wire_text;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use warren_codec::protocol::{AMQPClass, basic, channel, connection};
use warren_codec::types::ShortString;
use warren_codec::{ContentHeader, Frame, FrameEncoder};

use crate::alarms::Alarm;
use crate::broker::Broker;
use crate::channel::confirms::ConfirmQueue;
use crate::channel::shared::ChannelLinks;
use crate::channel::{
    Channel, ChannelShared, ChannelState, ConnectionInfo, Publication, Step, content,
};
use crate::error::AmqpError;
use crate::outbound::{Outbound, OutboundTx};
use crate::queue::notify_cancelled;
use crate::tls::TlsAcceptor;
use handshake::{HandshakeError, Tuned};
use reader::{FrameReader, ReadError};
use tokio::sync::mpsc;

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
enum CloseOkSink<'a, W> {
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
async fn await_close_ok<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
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

/// What ended the frame loop.
enum Ending {
    /// The socket is gone (EOF, error, missed heartbeats): nothing more to say.
    Gone,
    /// The client closed; close-ok is queued.
    ClientClosed,
    /// The broker closes with this error.
    Error(AmqpError),
}

/// What to do after a frame.
enum Flow {
    Continue,
    ClientClosed,
}

/// A channel number and the exception to close it with.
type ChannelError = (u16, AmqpError);

/// A connection past its handshake.
struct Connection {
    live: Arc<crate::broker::connections::LiveConnection>,
    broker: Arc<Broker>,
    peer: SocketAddr,
    tuned: Tuned,
    info: ConnectionInfo,
    out: OutboundTx,
    channels: HashMap<u16, Channel, channel_ids::ChannelIds>,
    /// Channels holding confirms to send after the current batch of frames.
    confirming: Vec<u16>,
    /// The broker's resource alarms.
    alarm: tokio::sync::watch::Receiver<Alarm>,
    /// The client has published: an alarm stops reading from it.
    published: bool,
    /// Channel errors found outside the reader (a consumer timeout): the
    /// sending side goes to each channel, the reader closes the channel.
    channel_errors: (mpsc::Sender<ChannelError>, mpsc::Receiver<ChannelError>),
}

impl Connection {
    async fn run<R: AsyncRead + Unpin>(
        mut self,
        mut reader: FrameReader<R>,
        shutdown: CancellationToken,
    ) {
        // Far in the future when heartbeats are off, so the timer never fires.
        let timeout = self
            .tuned
            .heartbeat
            .map_or(Duration::from_secs(86_400 * 365), |hb| hb * 2);
        let mut last_read = Instant::now();
        let mut framing_broken = false;
        let ending = 'frames: loop {
            loop {
                match reader.buffered() {
                    Ok(Some(frame)) => match self.on_frame(frame).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::ClientClosed) => break 'frames Ending::ClientClosed,
                        Err(error) => break 'frames Ending::Error(error),
                    },
                    Ok(None) => {
                        self.flush_confirms().await;
                        break;
                    }
                    Err(ReadError::Codec(e)) => {
                        framing_broken = e.breaks_framing();
                        break 'frames Ending::Error(wire_text::codec_error(e));
                    }
                    Err(ReadError::Closed) => break 'frames Ending::Gone,
                }
            }
            if self.published && self.alarm.borrow().any() {
                tokio::select! {
                    () = self.blocked() => {}
                    () = shutdown.cancelled() => break Ending::Error(handshake::shutdown_error()),
                }
                // No heartbeats were read while blocked, as in RabbitMQ.
                last_read = Instant::now();
            }
            tokio::select! {
                filled = reader.fill() => match filled {
                    Ok(()) => last_read = Instant::now(),
                    Err(_) => break Ending::Gone,
                },
                () = sleep_until(last_read + timeout), if self.tuned.heartbeat.is_some() => {
                    tracing::warn!(peer = %self.peer, timeout = ?timeout / 2, "missed heartbeats from client, closing");
                    break Ending::Gone;
                }
                () = shutdown.cancelled() => break Ending::Error(self.live.closing_error()),
                Some((id, error)) = self.channel_errors.1.recv() => {
                    let open = self
                        .channels
                        .get(&id)
                        .is_some_and(|c| c.state == ChannelState::Open);
                    if open && let Err(error) = self.channel_exception(id, error).await {
                        break Ending::Error(error);
                    }
                }
            }
        };
        self.flush_confirms().await;
        // Confirms go out before the connection's close.
        self.info.confirms.barrier().await;
        let linger = closing_timeout(self.tuned.heartbeat);
        match ending {
            Ending::Gone => {
                tracing::info!(peer = %self.peer, "connection closed by client or network");
            }
            Ending::ClientClosed => {
                // As RabbitMQ: after close-ok the client is the one to drop TCP.
                tracing::info!(peer = %self.peer, "connection closed by client");
                let _ = tokio::time::timeout(linger, self.drain_closed(&mut reader)).await;
            }
            Ending::Error(error) => {
                tracing::warn!(peer = %self.peer, %error, "closing connection");
                self.send(0, handshake::close_method(&error)).await;
                if framing_broken {
                    // The byte stream cannot be trusted: no close-ok can be read.
                    tokio::time::sleep(self.broker.config.silent_close_delay()).await;
                } else {
                    let sink = CloseOkSink::<tokio::io::Sink>::Writer(&self.out);
                    let _ = tokio::time::timeout(linger, await_close_ok(&mut reader, sink)).await;
                }
            }
        }
        self.release().await;
        let _ = self.out.send(Outbound::Shutdown).await;
    }

    /// What a closed connection leaves behind: its channels' consumers and
    /// unacked deliveries, and its exclusive queues.
    async fn release(&mut self) {
        for (_, mut channel) in self.channels.drain() {
            channel.release();
            self.live.retire(&channel.shared);
        }
        let vhost = &self.info.vhost;
        for queue in vhost.exclusive_queues_of(self.info.id) {
            match vhost.retire_queue_now(&queue).await {
                Ok(deleted) => notify_cancelled(&deleted.consumers).await,
                Err(error) => {
                    tracing::warn!(queue = %queue.name, %error, "exclusive queue not removed");
                }
            }
        }
    }

    /// After the client's connection.close: ignore frames until it hangs up,
    /// answering a repeated close with another close-ok.
    async fn drain_closed<R: AsyncRead + Unpin>(&self, reader: &mut FrameReader<R>) {
        while let Ok(frame) = reader.next().await {
            match frame {
                Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                    return;
                }
                Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    self.send(0, connection_close_ok()).await;
                }
                _ => {}
            }
        }
    }

    /// A resource alarm is on and this client publishes: its socket is not read
    /// (TCP pushes back) until the alarm clears. A client that advertised the
    /// `connection.blocked` capability is told both ways.
    async fn blocked(&mut self) {
        let notify = handshake::has_capability(&self.tuned.capabilities, "connection.blocked");
        let reason = self.alarm.borrow().reason();
        tracing::info!(peer = %self.peer, reason, "blocking a publishing connection");
        if notify {
            let blocked = connection::Blocked {
                reason: reason.into(),
            };
            self.send(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)),
            )
            .await;
        }
        let _ = self.alarm.wait_for(|a| !a.any()).await;
        tracing::info!(peer = %self.peer, "unblocking a publishing connection");
        if notify {
            let unblocked = connection::Unblocked {};
            self.send(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(unblocked)),
            )
            .await;
        }
    }

    /// Hands what the channels confirmed while the last batch of frames was
    /// read to the confirm task (which waits for the group commit, not the
    /// reader).
    async fn flush_confirms(&mut self) {
        for id in std::mem::take(&mut self.confirming) {
            if let Some(channel) = self.channels.get_mut(&id) {
                channel.flush_confirms().await;
            }
        }
    }

    async fn send(&self, channel: u16, method: AMQPClass) {
        // A failed send means the writer is gone with the socket; the read side
        // notices on its own.
        let _ = self.out.send(Outbound::Method(channel, method)).await;
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Flow, AmqpError> {
        match frame {
            Frame::Heartbeat(0) => Ok(Flow::Continue),
            // Boxed: rare, and their futures would enlarge every frame's.
            Frame::Method(0, method) => Box::pin(self.on_connection_method(method)).await,
            Frame::Method(id, AMQPClass::Basic(basic::AMQPMethod::Publish(publish))) => {
                self.published = true;
                let publish = match self.channels.get_mut(&id) {
                    Some(channel) => match channel.begin_publish(publish) {
                        Ok(()) => return Ok(Flow::Continue),
                        Err(publish) => publish,
                    },
                    None => publish,
                };
                let method = AMQPClass::Basic(basic::AMQPMethod::Publish(publish));
                Box::pin(self.on_channel_method(id, method))
                    .await
                    .map(|()| Flow::Continue)
            }
            Frame::Method(id, method) => Box::pin(self.on_channel_method(id, method))
                .await
                .map(|()| Flow::Continue),
            Frame::Header(0, ..) | Frame::Body(0, _) | Frame::Heartbeat(_) => {
                Err(wire_text::unexpected_frame(&frame))
            }
            Frame::Header(id, header, properties) => self
                .on_header(id, header, properties)
                .await
                .map(|()| Flow::Continue),
            Frame::Body(id, body) => self.on_body(id, body).await.map(|()| Flow::Continue),
        }
    }

    async fn on_connection_method(&mut self, method: AMQPClass) -> Result<Flow, AmqpError> {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                tracing::debug!(code = close.reply_code, text = %close.reply_text, "client closes");
                self.send(0, connection_close_ok()).await;
                Ok(Flow::ClientClosed)
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                )
                .await;
                Ok(Flow::Continue)
            }
            other => Err(
                AmqpError::channel_error("unexpected method in connection state running")
                    .on_method(other.get_amqp_class_id(), other.get_amqp_method_id()),
            ),
        }
    }

    async fn on_channel_method(&mut self, id: u16, method: AMQPClass) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&id) else {
            return self.open_channel(id, method).await;
        };
        if channel.state == ChannelState::Closing {
            // Everything but close and close-ok is dropped until the client confirms.
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    if let Some(channel) = self.channels.remove(&id) {
                        self.live.retire(&channel.shared);
                    }
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.send(id, close_ok()).await;
                }
                _ => {}
            }
            return Ok(());
        }
        channel.assembly.check_method()?;
        match channel.on_method(method).await {
            Ok(Step::Continue) => Ok(()),
            Ok(Step::Closed) => {
                if let Some(mut channel) = self.channels.remove(&id) {
                    channel.flush_confirms().await;
                    self.info.confirms.barrier().await;
                    channel.release();
                    self.live.retire(&channel.shared);
                }
                self.send(id, close_ok()).await;
                Ok(())
            }
            Err(error) => self.channel_exception(id, error).await,
        }
    }

    async fn open_channel(&mut self, id: u16, method: AMQPClass) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if !matches!(method, AMQPClass::Channel(channel::AMQPMethod::Open(_))) {
            return Err(
                AmqpError::channel_error("expected 'channel.open'").on_method(class_id, method_id)
            );
        }
        let max = usize::from(self.tuned.channel_max);
        if max != 0 && self.channels.len() >= max {
            // RabbitMQ names no method here (0/0).
            return Err(AmqpError::not_allowed(format!(
                "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                self.channels.len()
            )));
        }
        let cancel_notify = matches!(
            self.tuned
                .capabilities
                .inner()
                .get("consumer_cancel_notify"),
            Some(warren_codec::types::AMQPValue::Boolean(true))
        );
        let shared = ChannelShared::new(
            id,
            ChannelLinks {
                connection: self.info.id,
                out: self.out.clone(),
                cancel_notify,
                clock: self.broker.clock.clone(),
                errors: self.channel_errors.0.clone(),
            },
        );
        self.broker
            .admit_channel(&self.tuned.user, &self.live, &shared)?;
        self.broker.global.channels_opened.incr_concurrent();
        self.channels
            .insert(id, Channel::new(id, shared, self.info.clone()));
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        )
        .await;
        Ok(())
    }

    /// A soft error closes only its channel; a hard one is passed up to close the connection.
    async fn channel_exception(&mut self, id: u16, error: AmqpError) -> Result<(), AmqpError> {
        if error.is_connection_error() {
            return Err(error);
        }
        tracing::info!(peer = %self.peer, channel = id, %error, "closing channel");
        if let Some(channel) = self.channels.get_mut(&id) {
            channel.flush_confirms().await;
            self.info.confirms.barrier().await;
            channel.state = ChannelState::Closing;
            channel.assembly = Default::default();
            channel.release();
        }
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: error.code.code(),
                reply_text: ShortString::try_new(error.reply_text()).unwrap_or_default(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        )
        .await;
        Ok(())
    }

    async fn on_header(
        &mut self,
        id: u16,
        header: ContentHeader,
        properties: warren_codec::Properties,
    ) -> Result<(), AmqpError> {
        let max = self.broker.config.max_message_size;
        let Some(channel) = self.channels.get_mut(&id) else {
            return Err(content::expecting_method());
        };
        if channel.state == ChannelState::Closing {
            return Ok(());
        }
        let size = header.body_size;
        let done = channel.assembly.header(header, properties)?;
        if size > max {
            return Box::pin(self.channel_exception(id, content::message_too_large(size, max)))
                .await;
        }
        match done {
            Some(publication) => self.publish(id, publication).await,
            None => Ok(()),
        }
    }

    async fn on_body(&mut self, id: u16, body: Bytes) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&id) else {
            return Err(content::expecting_method());
        };
        if channel.state == ChannelState::Closing {
            return Ok(());
        }
        match channel.assembly.body(body)? {
            Some(publication) => self.publish(id, publication).await,
            None => Ok(()),
        }
    }

    /// Hands a complete message to its channel; a soft error closes the channel.
    async fn publish(&mut self, id: u16, publication: Publication) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        let result = channel.publish(publication).await;
        if channel.has_unsent_confirms() && !self.confirming.contains(&id) {
            self.confirming.push(id);
        }
        match result {
            Ok(()) => Ok(()),
            Err(error) => Box::pin(self.channel_exception(id, error.on_method(60, 40))).await,
        }
    }
}

fn connection_close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

/// How long to wait for the peer once a close is under way: RabbitMQ waits one
/// heartbeat interval when that is shorter than 30 s, else 30 s.
fn closing_timeout(heartbeat: Option<Duration>) -> Duration {
    heartbeat.map_or(CLOSING_TIMEOUT, |hb| hb.min(CLOSING_TIMEOUT))
}

fn close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

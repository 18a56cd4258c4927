//! One AMQP connection: the handshake, then the frame loop with its channels.
//!
//! The task running [`serve`] is the connection's reader: it decodes frames, keeps
//! the channels' state and decides what to answer. Everything it sends goes through
//! the writer task ([`writer`]), which batches and sends heartbeats.
//!
//! Rooms: `serve.rs` accepts (TLS, handshake) and starts the loop; this file is
//! the frame loop and a publish's frames; `channels.rs` opens, feeds and closes
//! channels.

mod channel_ids;
mod channels;
pub mod handshake;
pub mod reader;
mod serve;
pub mod wire_text;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use warren_codec::protocol::{AMQPClass, basic, connection};
use warren_codec::{ContentHeader, Frame, WholeMessage};

use crate::alarms::Alarm;
use crate::broker::Broker;
use crate::channel::{Channel, ChannelState, ConnectionInfo, Publication, content};
use crate::error::AmqpError;
use crate::outbound::{Outbound, OutboundTx};
use crate::queue::notify_cancelled;
use handshake::Tuned;
use reader::{FrameReader, Next, ReadError};
pub use serve::{ClientCertificate, TlsSession, serve, serve_tls};
use serve::{CloseOkSink, await_close_ok, closing_timeout, connection_close_ok};

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
                match reader.buffered_next() {
                    Ok(Some(Next::Message(message))) => match self.on_message(message).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::ClientClosed) => break 'frames Ending::ClientClosed,
                        Err(error) => break 'frames Ending::Error(error),
                    },
                    Ok(Some(Next::Frame(frame))) => match self.on_any_frame(frame).await {
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

    /// One frame of an open connection: publish and header frames without a
    /// future when they only feed the content assembly, a body frame (the one that
    /// completes a message) without on_frame's layer of future.
    async fn on_any_frame(&mut self, frame: Frame) -> Result<Flow, AmqpError> {
        match self.take_frame(frame)? {
            None => Ok(Flow::Continue),
            Some(Frame::Body(id, body)) if id != 0 => {
                self.on_body(id, body).await.map(|()| Flow::Continue)
            }
            Some(frame) => self.on_frame(frame).await,
        }
    }

    /// A whole message (publish, header, one body frame): straight to its channel
    /// when the channel can take it without the content assembly, else its three
    /// frames in turn, as they would have come one by one.
    async fn on_message(&mut self, message: WholeMessage) -> Result<Flow, AmqpError> {
        self.published = true;
        let id = message.channel;
        let max = self.broker.config.max_message_size;
        match self.channels.get_mut(&id) {
            Some(channel) if channel.takes_whole(&message, max) => {
                let publication = Publication {
                    publish: message.publish,
                    header: message.header,
                    properties: message.properties,
                    body: message.body,
                };
                let result = channel.publish(publication).await;
                let unsent = channel.has_unsent_confirms();
                match self.published(id, unsent, result) {
                    None => Ok(Flow::Continue),
                    Some(error) => Box::pin(self.channel_exception(id, error))
                        .await
                        .map(|()| Flow::Continue),
                }
            }
            _ => Box::pin(self.on_message_frames(message)).await,
        }
    }

    /// A whole message its channel cannot take as one: its frames in turn.
    async fn on_message_frames(&mut self, message: WholeMessage) -> Result<Flow, AmqpError> {
        let WholeMessage {
            channel,
            publish,
            header,
            properties,
            body,
        } = message;
        for frame in [
            Frame::Publish(channel, publish),
            Frame::Header(channel, header, properties),
            Frame::Body(channel, body),
        ] {
            match self.on_any_frame(frame).await? {
                Flow::Continue => {}
                ended => return Ok(ended),
            }
        }
        Ok(Flow::Continue)
    }

    /// Takes the frames that need no future (building, polling and dropping
    /// `on_frame`'s cost about 110 instructions a frame): basic.publish on
    /// an open channel, and a content header that does not complete its
    /// message. Any other frame comes back for [`Connection::on_frame`].
    fn take_frame(&mut self, frame: Frame) -> Result<Option<Frame>, AmqpError> {
        match frame {
            Frame::Publish(id, publish) if id != 0 => {
                self.published = true;
                let Some(channel) = self.channels.get_mut(&id) else {
                    return Ok(Some(Frame::Publish(id, publish)));
                };
                match channel.begin_publish(publish) {
                    Ok(()) => Ok(None),
                    Err(publish) => Ok(Some(Frame::Publish(id, publish))),
                }
            }
            Frame::Header(id, header, properties) if id != 0 => {
                let max = self.broker.config.max_message_size;
                match self.channels.get_mut(&id) {
                    // An empty body completes the message, one over the
                    // limit closes the channel: both are on_header's.
                    Some(channel)
                        if channel.state != ChannelState::Closing
                            && (1..=max).contains(&header.body_size) =>
                    {
                        let done = channel.assembly.header(header, properties)?;
                        debug_assert!(done.is_none(), "a body is still to come");
                        Ok(None)
                    }
                    _ => Ok(Some(Frame::Header(id, header, properties))),
                }
            }
            other => Ok(Some(other)),
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Flow, AmqpError> {
        match frame {
            Frame::Heartbeat(0) => Ok(Flow::Continue),
            // Boxed: rare, and their futures would enlarge every frame's.
            Frame::Method(0, method) => Box::pin(self.on_connection_method(method)).await,
            // Boxed: an error on channel 0, as any other method there.
            Frame::Publish(0, publish) => {
                let method = AMQPClass::Basic(basic::AMQPMethod::Publish(publish.into_method()));
                Box::pin(self.on_connection_method(method)).await
            }
            // What take_frame handed back: the method's general way.
            Frame::Publish(id, publish) => {
                let method = AMQPClass::Basic(basic::AMQPMethod::Publish(publish.into_method()));
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
        let Some(publication) = channel.assembly.body(body)? else {
            return Ok(());
        };
        // As `publish`, written out: a future less per message.
        let result = channel.publish(publication).await;
        let unsent = channel.has_unsent_confirms();
        match self.published(id, unsent, result) {
            None => Ok(()),
            Some(error) => Box::pin(self.channel_exception(id, error)).await,
        }
    }

    /// Hands a complete message to its channel; a soft error closes the channel.
    async fn publish(&mut self, id: u16, publication: Publication) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&id) else {
            return Ok(());
        };
        let result = channel.publish(publication).await;
        let unsent = channel.has_unsent_confirms();
        match self.published(id, unsent, result) {
            None => Ok(()),
            Some(error) => Box::pin(self.channel_exception(id, error)).await,
        }
    }

    /// After channel `id` took a message: notes that it has confirms to send, and
    /// answers the soft error that closes the channel, as basic.publish's.
    fn published(
        &mut self,
        id: u16,
        unsent_confirms: bool,
        result: Result<(), AmqpError>,
    ) -> Option<AmqpError> {
        if unsent_confirms && !self.confirming.contains(&id) {
            self.confirming.push(id);
        }
        result.err().map(|error| error.on_method(60, 40))
    }
}

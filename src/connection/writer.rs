//! The writer task: the only place that writes to a connection's socket.
//!
//! Everything the broker sends on a connection goes through one bounded queue to
//! this task, which drains it in bulk, encodes the batch into one buffer and writes
//! it with one syscall. It also sends heartbeats when nothing else was written for
//! half a heartbeat interval.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use warren_codec::FrameEncoder;
use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::ShortString;

use crate::outbound::{Outbound, OutboundTx};

/// How many queued frames one batch takes at most before writing.
const BATCH: usize = 256;
/// Capacity of a connection's outbound queue: a full queue slows the producer of
/// frames (the reader task or a queue), it never grows without bound.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// Writes `buf` and flushes. A TLS stream may keep the tail of what it
/// accepted in its record buffer when the socket is full; only a flush (or a
/// later write) sends it, and a connection may have nothing more to write for
/// a long while. On plain TCP the flush does nothing.
pub(crate) async fn send_all<W: AsyncWrite + Unpin>(
    socket: &mut W,
    buf: &[u8],
) -> std::io::Result<()> {
    socket.write_all(buf).await?;
    socket.flush().await
}

/// Starts the writer task for a socket whose handshake is done.
pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(
    socket: W,
    frame_max: u32,
    heartbeat: Option<Duration>,
) -> (OutboundTx, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let handle = tokio::spawn(run(socket, rx, frame_max, heartbeat));
    (tx, handle)
}

async fn run<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut rx: mpsc::Receiver<Outbound>,
    frame_max: u32,
    heartbeat: Option<Duration>,
) {
    let mut encoder = FrameEncoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut batch = Vec::with_capacity(BATCH);
    // RabbitMQ sends a heartbeat after half an interval without other output.
    // One timer for the connection, moved only when it fires, rather than a
    // new timer registered per batch.
    let interval = heartbeat.map(|hb| hb / 2);
    let mut last_write = Instant::now();
    let beat = sleep_until(last_write + interval.unwrap_or_default());
    tokio::pin!(beat);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                let shutdown = encode(&mut encoder, batch.drain(..), frame_max, &mut buf);
                if send_all(&mut socket, &buf).await.is_err() {
                    return;
                }
                buf.clear();
                if interval.is_some() {
                    last_write = Instant::now();
                }
                if shutdown {
                    break;
                }
            }
            () = &mut beat, if interval.is_some() => {
                let interval = interval.unwrap_or_default();
                let due = last_write + interval;
                if Instant::now() < due {
                    // Something was written since the timer was set.
                    beat.as_mut().reset(due);
                    continue;
                }
                encoder.heartbeat(&mut buf);
                if send_all(&mut socket, &buf).await.is_err() {
                    return;
                }
                buf.clear();
                last_write = Instant::now();
                beat.as_mut().reset(last_write + interval);
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Encodes a batch into `buf`; true if it asked to shut the socket down.
fn encode(
    encoder: &mut FrameEncoder,
    batch: impl Iterator<Item = Outbound>,
    frame_max: u32,
    buf: &mut BytesMut,
) -> bool {
    let mut shutdown = false;
    for item in batch {
        match item {
            Outbound::Method(channel, method) => {
                if let Err(error) = encoder.method(channel, &method, buf) {
                    tracing::error!(%error, "dropping a method that cannot be encoded");
                }
            }
            Outbound::MethodWithContent(channel, content) => {
                match encoder.method(channel, &content.method, buf) {
                    Ok(()) => {
                        encoder.content(channel, &content.header, &content.body, frame_max, buf)
                    }
                    Err(error) => {
                        tracing::error!(%error, "dropping a message that cannot be encoded")
                    }
                }
            }
            Outbound::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                message,
            } => match message.frames.get().filter(|f| f.fits(frame_max)) {
                Some(shared) => encoder.deliver_shared(
                    channel,
                    &consumer_tag,
                    delivery_tag.0,
                    redelivered,
                    shared,
                    buf,
                ),
                None => {
                    encoder.deliver(
                        channel,
                        &consumer_tag,
                        delivery_tag.0,
                        redelivered,
                        &message.exchange,
                        &message.routing_key,
                        buf,
                    );
                    encoder.content(channel, &message.header, &message.body, frame_max, buf);
                }
            },
            Outbound::GetOk {
                channel,
                delivery_tag,
                redelivered,
                message_count,
                message,
            } => {
                let get_ok = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                    delivery_tag: delivery_tag.0,
                    redelivered,
                    exchange: ShortString::try_new(message.exchange.to_string())
                        .unwrap_or_default(),
                    routing_key: ShortString::try_new(message.routing_key.to_string())
                        .unwrap_or_default(),
                    message_count,
                }));
                match encoder.method(channel, &get_ok, buf) {
                    Ok(()) => {
                        encoder.content(channel, &message.header, &message.body, frame_max, buf)
                    }
                    Err(error) => {
                        tracing::error!(%error, "dropping a message that cannot be encoded")
                    }
                }
            }
            Outbound::Shutdown => shutdown = true,
        }
    }
    shutdown
}

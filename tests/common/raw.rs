//! A raw AMQP client that writes any bytes and reads frames, and the frames and
//! methods the tests send with it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use warren_codec::types::{AMQPValue, FieldTable};
use warren_codec::{ContentHeader, Frame, FrameDecoder, FrameEncoder};

use super::WAIT;

/// What a raw client saw when it waited for the server.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// A frame.
    Frame(Frame),
    /// The server closed the TCP connection.
    Closed,
    /// Nothing within the wait.
    Nothing,
}

/// A raw AMQP client: writes any bytes, reads frames.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
}

impl RawClient {
    /// Connects without sending anything.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawClient {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(0),
            encoder: FrameEncoder::new(),
        }
    }

    /// Connects and completes the handshake with guest/guest, tune-ok with the
    /// given frame_max and channel_max, heartbeats off.
    pub async fn open(addr: SocketAddr) -> Self {
        Self::open_tuned(addr, 131_072, 2047).await
    }

    /// As [`RawClient::open`] with chosen limits.
    pub async fn open_tuned(addr: SocketAddr, frame_max: u32, channel_max: u16) -> Self {
        let mut c = Self::connect(addr).await;
        c.start_ok(b"\0guest\0guest", true).await;
        c.send_method(0, tune_ok(channel_max, frame_max, 0)).await;
        c.send_method(0, open_vhost("/")).await;
        match c.next().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
            )) => {}
            other => panic!("expected open-ok, got {other:?}"),
        }
        c
    }

    /// Sends the protocol header, expects connection.start, answers start-ok with
    /// PLAIN and `response`, and (on success) reads connection.tune.
    pub async fn start_ok(
        &mut self,
        response: &[u8],
        auth_failure_close: bool,
    ) -> Option<connection::Tune> {
        self.send_raw(&PROTOCOL_HEADER).await;
        self.expect_start().await;
        self.send_start_ok("PLAIN", response, auth_failure_close)
            .await;
        match self.next().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Tune(t)),
            )) => Some(t),
            _ => None,
        }
    }

    /// Expects connection.start as the next frame.
    pub async fn expect_start(&mut self) -> connection::Start {
        match self.next().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Start(s)),
            )) => s,
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    /// Sends connection.start-ok with any mechanism and response, the
    /// authentication_failure_close capability set as asked, and
    /// consumer_cancel_notify (as every common client sends it).
    pub async fn send_start_ok(&mut self, mechanism: &str, response: &[u8], failure_close: bool) {
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            AMQPValue::Boolean(failure_close),
        );
        caps.insert("consumer_cancel_notify".into(), AMQPValue::Boolean(true));
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: mechanism.into(),
                response: response.to_vec().into(),
                locale: "en_US".into(),
            })),
        )
        .await;
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The server may already have closed; the test looks at what it reads next.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Writes one method frame.
    pub async fn send_method(&mut self, channel: u16, method: AMQPClass) {
        let mut out = BytesMut::new();
        self.encoder
            .method(channel, &method, &mut out)
            .expect("encode");
        self.send_raw(&out).await;
    }

    /// Opens a channel and expects open-ok.
    pub async fn open_channel(&mut self, id: u16) {
        self.send_method(id, channel_open()).await;
        match self.next().await {
            Seen::Frame(Frame::Method(c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))
                if c == id => {}
            other => panic!("expected channel.open-ok on {id}, got {other:?}"),
        }
    }

    /// The next frame, or Closed / Nothing within [`WAIT`].
    pub async fn next(&mut self) -> Seen {
        self.next_within(WAIT).await
    }

    /// The next frame, or Closed / Nothing within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Seen {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Seen::Frame(frame),
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Seen::Nothing,
                Ok(Ok(0)) | Ok(Err(_)) => return Seen::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn next_non_heartbeat(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Frame(Frame::Heartbeat(0)) => continue,
                other => return other,
            }
        }
    }

    /// Expects connection.close with `code`; returns (text, class, method).
    pub async fn expect_connection_close(&mut self, code: u16) -> (String, u16, u16) {
        match self.next_non_heartbeat().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(c)),
            )) => {
                assert_eq!(c.reply_code, code, "reply text: {}", c.reply_text);
                (c.reply_text.to_string(), c.class_id, c.method_id)
            }
            other => panic!("expected connection.close {code}, got {other:?}"),
        }
    }

    /// Expects channel.close with `code` on `id`; returns (text, class, method).
    pub async fn expect_channel_close(&mut self, id: u16, code: u16) -> (String, u16, u16) {
        match self.next_non_heartbeat().await {
            Seen::Frame(Frame::Method(
                c,
                AMQPClass::Channel(channel::AMQPMethod::Close(close)),
            )) if c == id => {
                assert_eq!(close.reply_code, code, "reply text: {}", close.reply_text);
                (
                    close.reply_text.to_string(),
                    close.class_id,
                    close.method_id,
                )
            }
            other => panic!("expected channel.close {code} on {id}, got {other:?}"),
        }
    }

    /// Sends connection.close-ok and expects the server to drop the connection.
    pub async fn close_ok_and_expect_eof(&mut self) {
        self.send_method(0, connection_close_ok()).await;
        self.expect_eof().await;
    }

    /// Expects the server to close TCP (frames before that are skipped).
    pub async fn expect_eof(&mut self) {
        loop {
            match self.next().await {
                Seen::Closed => return,
                Seen::Frame(_) => continue,
                Seen::Nothing => panic!("server kept the connection open"),
            }
        }
    }
}

/// Checks that a fresh, well-behaved connection works: the broker is unharmed.
pub async fn assert_broker_healthy(addr: SocketAddr) {
    let mut c = RawClient::open(addr).await;
    c.open_channel(1).await;
    c.send_method(0, connection_close()).await;
    match c.next_non_heartbeat().await {
        Seen::Frame(Frame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
        )) => {}
        other => panic!("expected close-ok, got {other:?}"),
    }
}

/// A frame with any type, channel and payload.
pub fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// A heartbeat frame on `channel` (only channel 0 is a valid one).
pub fn heartbeat(channel: u16) -> Vec<u8> {
    frame(8, channel, &[])
}

/// A method frame, encoded by the codec.
pub fn method(channel: u16, method: &AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameEncoder::new()
        .method(channel, method, &mut out)
        .expect("encode");
    out.to_vec()
}

/// basic.publish, its content header (no properties) and its body, as frames.
pub fn publish_frames(
    channel: u16,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
) -> BytesMut {
    let mut out = BytesMut::from(
        &method(
            channel,
            &publish_method(exchange, routing_key, mandatory, false),
        )[..],
    );
    let header =
        ContentHeader::from_properties(body.len() as u64, &Default::default()).expect("header");
    FrameEncoder::new().content(channel, &header, body, 131_072, &mut out);
    out
}

/// connection.tune-ok with these limits.
pub fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

/// connection.open for a vhost.
pub fn open_vhost(vhost: &str) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
        virtual_host: vhost.into(),
    }))
}

/// connection.close 200 "bye".
pub fn connection_close() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// connection.close-ok.
pub fn connection_close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

/// channel.open.
pub fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

/// channel.close-ok.
pub fn channel_close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

/// confirm.select, waiting for select-ok.
pub fn confirm_select() -> AMQPClass {
    AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
        nowait: false,
    }))
}

/// queue.declare of a plain queue (not passive, durable, exclusive or auto-delete).
pub fn queue_declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// basic.publish.
pub fn publish_method(
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    immediate: bool,
) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory,
        immediate,
    }))
}

//! Shared helpers for the black-box tests: a broker started in-process on an
//! ephemeral port, and a raw AMQP socket for sending exactly the bytes a test wants.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;
use warren::{Broker, Config};
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, channel, connection};
use warren_codec::types::{AMQPValue, FieldTable};
use warren_codec::{Frame, FrameDecoder, FrameEncoder};

/// Generous bound for anything a test waits on; tests poll, they never assert times.
pub const WAIT: Duration = Duration::from_secs(10);

/// A broker running in this process.
pub struct TestBroker {
    /// Where it listens.
    pub addr: SocketAddr,
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

/// Starts a broker with the default configuration (a short silent-close delay keeps
/// failure tests fast; the delay itself is RabbitMQ's and is configurable).
pub async fn start() -> TestBroker {
    start_with(|_| {}).await
}

/// Starts a broker after `tweak` has adjusted its configuration.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = Config {
        port: 0,
        silent_close_delay_ms: 100,
        ..Config::default()
    };
    tweak(&mut config);
    config.validate().expect("valid test config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let broker = Broker::new(config);
    let task = tokio::spawn(warren::run(listener, broker, async move {
        let _ = stopped.await;
    }));
    TestBroker {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

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
        c.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            })),
        )
        .await;
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
        match self.next().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Start(_)),
            )) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            AMQPValue::Boolean(auth_failure_close),
        );
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: response.to_vec().into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        match self.next().await {
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Tune(t)),
            )) => Some(t),
            _ => None,
        }
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
        self.send_method(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
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
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        )
        .await;
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

/// connection.open for a vhost.
pub fn open_vhost(vhost: &str) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
        virtual_host: vhost.into(),
    }))
}

/// Checks that a fresh, well-behaved connection works: the broker is unharmed.
pub async fn assert_broker_healthy(addr: SocketAddr) {
    let mut c = RawClient::open(addr).await;
    c.open_channel(1).await;
    c.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    match c.next_non_heartbeat().await {
        Seen::Frame(Frame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
        )) => {}
        other => panic!("expected close-ok, got {other:?}"),
    }
}

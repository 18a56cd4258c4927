//! Connection setup over a blocking `TcpStream`, with warren-codec's encoder
//! and decoder: the handshake (PLAIN, heartbeat 0), channel 1, and the
//! synchronous methods a scenario needs before its hot loop starts. Once set
//! up, a connection is split into its socket and the bytes already read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use tokio_util::codec::Decoder;
use warren_codec::frame::PROTOCOL_HEADER;
use warren_codec::protocol::{AMQPClass, basic, channel, confirm, connection, exchange, queue};
use warren_codec::types::{AMQPValue, FieldTable, LongString};
use warren_codec::{Frame, FrameDecoder, FrameEncoder};

/// How long any setup step may wait for its answer.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);
/// The frame_max we ask for (RabbitMQ's default).
const FRAME_MAX: u32 = 131_072;

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct Target {
    /// host:port
    pub addr: String,
    /// PLAIN user name.
    pub user: String,
    /// PLAIN password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
}

/// A connection being set up, with channel 1 open.
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    dec: FrameDecoder,
    enc: FrameEncoder,
    wbuf: BytesMut,
    /// The negotiated frame_max.
    pub frame_max: u32,
}

impl Conn {
    /// Connects, runs the handshake and opens channel 1.
    pub fn open(t: &Target, name: &str) -> anyhow::Result<Conn> {
        let stream =
            TcpStream::connect(&t.addr).with_context(|| format!("connect to {}", t.addr))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(RPC_TIMEOUT))?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(64 << 10),
            dec: FrameDecoder::new(0),
            enc: FrameEncoder::new(),
            wbuf: BytesMut::new(),
            frame_max: FRAME_MAX,
        };
        c.stream.write_all(&PROTOCOL_HEADER)?;
        c.wait(0, "connection.start", |m| {
            matches!(m, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
        })?;
        let mut props = FieldTable::default();
        props.insert(
            "connection_name".into(),
            AMQPValue::LongString(LongString::from(name.as_bytes().to_vec())),
        );
        props.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from(b"warren-load".to_vec())),
        );
        let response = format!("\0{}\0{}", t.user, t.password);
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(response.into_bytes()),
                locale: "en_US".into(),
            })),
        )?;
        let tune = c.wait(0, "connection.tune", |m| {
            matches!(m, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
        })?;
        let (channel_max, server_max) = match tune {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => (t.channel_max, t.frame_max),
            _ => (0, 0),
        };
        c.frame_max = match server_max {
            0 => FRAME_MAX,
            m => m.min(FRAME_MAX),
        };
        // heartbeat 0: none either way, so the hot loops need not send any.
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        )?;
        c.dec.set_frame_max(c.frame_max);
        c.rpc(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: t.vhost.as_str().into(),
            })),
            "connection.open",
        )?;
        c.rpc(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            "channel.open",
        )?;
        Ok(c)
    }

    /// Declares a queue on channel 1 (`queue_type`: its `x-queue-type`, if any; a
    /// quorum queue or stream is durable).
    pub fn declare_queue(
        &mut self,
        name: &str,
        durable: bool,
        queue_type: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut arguments = FieldTable::default();
        if let Some(kind) = queue_type {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from(kind)),
            );
        }
        let m = queue::Declare {
            queue: name.into(),
            durable: durable || queue_type.is_some_and(|k| k != "classic"),
            arguments,
            ..Default::default()
        };
        self.rpc(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(m)),
            "queue.declare",
        )
    }

    /// Declares an exchange of `kind` on channel 1.
    pub fn declare_exchange(&mut self, name: &str, kind: &str) -> anyhow::Result<()> {
        let m = exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            ..Default::default()
        };
        self.rpc(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(m)),
            "exchange.declare",
        )
    }

    /// Binds `queue` to `exchange` with `key`.
    pub fn bind(&mut self, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
        let m = queue::Bind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            ..Default::default()
        };
        self.rpc(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Bind(m)),
            "queue.bind",
        )
    }

    /// Deletes a queue; returns how many messages it still held.
    pub fn delete_queue(&mut self, name: &str) -> anyhow::Result<u32> {
        let m = queue::Delete {
            queue: name.into(),
            ..Default::default()
        };
        self.send(1, AMQPClass::Queue(queue::AMQPMethod::Delete(m)))?;
        match self.wait(1, "queue.delete", |m| {
            matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)))
        })? {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)) => Ok(ok.message_count),
            _ => Ok(0),
        }
    }

    /// Deletes an exchange.
    pub fn delete_exchange(&mut self, name: &str) -> anyhow::Result<()> {
        let m = exchange::Delete {
            exchange: name.into(),
            ..Default::default()
        };
        self.rpc(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Delete(m)),
            "exchange.delete",
        )
    }

    /// Turns on publisher confirms on channel 1.
    pub fn confirm_select(&mut self) -> anyhow::Result<()> {
        let m = confirm::Select { nowait: false };
        self.rpc(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(m)),
            "confirm.select",
        )
    }

    /// basic.qos (if `prefetch` > 0) and basic.consume on channel 1.
    pub fn consume(&mut self, queue: &str, no_ack: bool, prefetch: u16) -> anyhow::Result<()> {
        if prefetch > 0 {
            let m = basic::Qos {
                prefetch_count: prefetch,
                global: false,
            };
            self.rpc(1, AMQPClass::Basic(basic::AMQPMethod::Qos(m)), "basic.qos")?;
        }
        let m = basic::Consume {
            queue: queue.into(),
            consumer_tag: "c".into(),
            no_ack,
            ..Default::default()
        };
        self.rpc(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(m)),
            "basic.consume",
        )
    }

    /// Closes the connection politely (used for the setup connection).
    pub fn close(mut self) -> anyhow::Result<()> {
        let m = connection::Close {
            reply_code: 200,
            reply_text: "warren-load done".into(),
            ..Default::default()
        };
        self.rpc(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(m)),
            "connection.close",
        )
    }

    /// The socket (blocking, read timeout cleared) and the bytes read past
    /// the last setup answer (deliveries may follow consume-ok at once).
    pub fn into_parts(self) -> anyhow::Result<(TcpStream, Vec<u8>)> {
        self.stream.set_read_timeout(None)?;
        Ok((self.stream, self.rbuf.to_vec()))
    }

    fn send(&mut self, ch: u16, m: AMQPClass) -> anyhow::Result<()> {
        self.wbuf.clear();
        self.enc.method(ch, &m, &mut self.wbuf)?;
        self.stream.write_all(&self.wbuf)?;
        Ok(())
    }

    /// Sends `m` and waits for the answer on `ch` (any method of the same
    /// class with the next method id, as every synchronous reply is).
    fn rpc(&mut self, ch: u16, m: AMQPClass, what: &str) -> anyhow::Result<()> {
        let (class, method) = ids(&m);
        self.send(ch, m)?;
        self.wait(ch, what, |r| ids(r) == (class, method + 1))?;
        Ok(())
    }

    /// Reads frames until a method on `ch` that `want` accepts.
    fn wait(
        &mut self,
        ch: u16,
        what: &str,
        want: impl Fn(&AMQPClass) -> bool,
    ) -> anyhow::Result<AMQPClass> {
        loop {
            while let Some(frame) = self
                .dec
                .decode(&mut self.rbuf)
                .map_err(|e| anyhow!("{what}: bad frame from the broker: {e}"))?
            {
                let Frame::Method(c, m) = frame else { continue };
                if let Some(err) = refusal(&m) {
                    bail!("{what}: {err}");
                }
                if c == ch && want(&m) {
                    return Ok(m);
                }
            }
            let mut chunk = [0u8; 16 << 10];
            let n = self
                .stream
                .read(&mut chunk)
                .with_context(|| format!("{what}: no answer"))?;
            if n == 0 {
                bail!("{what}: the broker closed the connection");
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A close from the broker, as text.
fn refusal(m: &AMQPClass) -> Option<String> {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => Some(format!(
            "connection closed by the broker: {} {}",
            c.reply_code, c.reply_text
        )),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => Some(format!(
            "channel closed by the broker: {} {}",
            c.reply_code, c.reply_text
        )),
        _ => None,
    }
}

/// The class and method ids of a method.
fn ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

//! The opening handshake: protocol header, start/start-ok (SASL), tune/tune-ok,
//! open/open-ok.
//!
//! RabbitMQ's rules for failures here: a wrong protocol header gets the supported
//! header back and a close; a negotiation failure, an unknown vhost, or a refused
//! login from a client that advertises `authentication_failure_close` gets a
//! connection.close; anything else ends with a silent TCP close after a delay, so a
//! misbehaving client cannot retry in a tight loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use warren_codec::frame::{FRAME_MIN_SIZE, PROTOCOL_HEADER};
use warren_codec::protocol::{AMQPClass, connection};
use warren_codec::types::{AMQPValue, FieldTable, ShortString};
use warren_codec::{Frame, FrameEncoder};

use super::ClientCertificate;
use super::reader::{FrameReader, ReadError};
use super::wire_text;
use crate::auth::{EXTERNAL, LoginError, MECHANISMS};
use crate::broker::Broker;
use crate::error::AmqpError;

/// The AMQP 0-9 protocol header. RabbitMQ treats it as 0-9-1 (the two are close
/// enough that clients are happy with either), so Warren does too.
const PROTOCOL_HEADER_0_9: [u8; 8] = *b"AMQP\x01\x01\x00\x09";

/// The RabbitMQ release whose 0-9-1 behaviour Warren follows (DESIGN.md), reported
/// as `version` in connection.start.
pub const RABBITMQ_COMPATIBLE_VERSION: &str = "3.13.7";

/// What the handshake agreed on.
#[derive(Debug)]
pub struct Tuned {
    /// The authenticated user.
    pub user: String,
    /// The vhost opened.
    pub vhost: Arc<crate::vhost::VHost>,
    /// Negotiated channel_max (0 = no limit).
    pub channel_max: u16,
    /// Negotiated frame_max (0 = no limit).
    pub frame_max: u32,
    /// Negotiated heartbeat interval; `None` when disabled.
    pub heartbeat: Option<Duration>,
    /// The client's `capabilities` table from client-properties.
    pub capabilities: FieldTable,
    /// The client's client-properties (shown by the management API).
    pub client_properties: FieldTable,
    /// Its place under `max-connections`, until it is registered.
    pub admission: Option<crate::broker::admission::Admission>,
}

/// How a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The peer went away or the bytes made no sense; close without a word.
    Closed,
    /// Close silently after the configured delay.
    Silent(String),
    /// Send connection.close with this error, wait for close-ok, close.
    Close(AmqpError),
}

impl From<ReadError> for HandshakeError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Closed => HandshakeError::Closed,
            ReadError::Codec(e) => HandshakeError::Silent(e.to_string()),
        }
    }
}

/// Runs the handshake on a fresh socket.
pub async fn run<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    client_certificate: Option<&ClientCertificate>,
    mut read: R,
    write: &mut W,
) -> (Result<Tuned, HandshakeError>, Option<FrameReader<R>>) {
    let mut buf = BytesMut::with_capacity(4096);
    while buf.len() < PROTOCOL_HEADER.len() {
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return (Err(HandshakeError::Closed), None),
            Ok(_) => {}
        }
    }
    let header = &buf[..PROTOCOL_HEADER.len()];
    if header != PROTOCOL_HEADER && header != PROTOCOL_HEADER_0_9 {
        tracing::info!(%peer, header = ?&buf[..PROTOCOL_HEADER.len()], "refusing bad protocol header");
        let _ = super::writer::send_all(write, &PROTOCOL_HEADER).await;
        return (Err(HandshakeError::Closed), None);
    }
    let _ = buf.split_to(PROTOCOL_HEADER.len());
    // Until tune-ok, frames are limited to the protocol minimum, as in RabbitMQ.
    let mut reader = FrameReader::new(read, buf, FRAME_MIN_SIZE);
    let result = negotiate(broker, peer, client_certificate, &mut reader, write).await;
    (result, Some(reader))
}

async fn negotiate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    client_certificate: Option<&ClientCertificate>,
    reader: &mut FrameReader<R>,
    write: &mut W,
) -> Result<Tuned, HandshakeError> {
    let config = &broker.config;
    let mut encoder = FrameEncoder::new();
    let start = start_method(broker, client_certificate.is_some());
    send(&mut encoder, write, &start).await?;

    let start_ok = match expect_method(reader).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(m)) => m,
        other => return Err(unexpected(&other, "starting")),
    };
    let capabilities = match start_ok.client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.clone(),
        _ => FieldTable::default(),
    };
    // EXTERNAL is offered only with a verified client certificate; without
    // one it is a mechanism like any other that is not offered.
    let login = match (start_ok.mechanism.as_str(), client_certificate) {
        (EXTERNAL, Some(certificate)) => {
            let name = if broker.config.ssl_cert_login_from == "distinguished_name" {
                &certificate.distinguished_name
            } else {
                &certificate.common_name
            };
            broker.auth.login_external(name.as_deref(), peer.ip())
        }
        (mechanism, _) => broker
            .auth
            .login(mechanism, start_ok.response.as_bytes(), peer.ip()),
    };
    let user = match login {
        Ok(user) => user,
        Err(error) => {
            tracing::warn!(%peer, %error, "login failed");
            return Err(login_failure(
                &error,
                start_ok.mechanism.as_str(),
                &capabilities,
            ));
        }
    };

    let tune = connection::Tune {
        channel_max: config.channel_max,
        frame_max: config.frame_max,
        heartbeat: config.heartbeat,
    };
    send(
        &mut encoder,
        write,
        &AMQPClass::Connection(connection::AMQPMethod::Tune(tune)),
    )
    .await?;
    let tune_ok = match expect_method(reader).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(m)) => m,
        other => return Err(unexpected(&other, "tuning")),
    };
    // A refused negotiation ends silently: RabbitMQ sends nothing before tune-ok.
    negotiated(
        "frame_max",
        u64::from(FRAME_MIN_SIZE),
        u64::from(tune_ok.frame_max),
        u64::from(config.frame_max),
    )
    .and_then(|()| {
        negotiated(
            "channel_max",
            1,
            u64::from(tune_ok.channel_max),
            u64::from(config.channel_max),
        )
    })
    .map_err(|e| HandshakeError::Silent(e.reply_text()))?;
    reader.set_frame_max(tune_ok.frame_max);

    let open = expect_open(reader).await?;
    let Some(vhost) = broker.vhost(open.virtual_host.as_str()) else {
        return Err(HandshakeError::Close(
            AmqpError::not_allowed(format!("vhost {} not found", open.virtual_host))
                .on_method(10, 40),
        ));
    };
    let admission = broker
        .admit(&user, &vhost.name)
        .map_err(|refused| HandshakeError::Close(refused.on_method(10, 40)))?;
    if !broker.auth.has_vhost_access(&user, &vhost.name) {
        return Err(HandshakeError::Close(
            AmqpError::not_allowed(format!(
                "access to vhost '{}' refused for user '{user}'",
                vhost.name
            ))
            .on_method(10, 40),
        ));
    }
    send(
        &mut encoder,
        write,
        &AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await?;
    Ok(Tuned {
        user,
        vhost,
        channel_max: tune_ok.channel_max,
        frame_max: tune_ok.frame_max,
        heartbeat: (tune_ok.heartbeat > 0).then(|| Duration::from_secs(tune_ok.heartbeat.into())),
        capabilities,
        client_properties: start_ok.client_properties,
        admission: Some(admission),
    })
}

/// How a failed login ends. A refused login (wrong credentials, or a loopback-only
/// user from elsewhere) gets connection.close 403 if the client advertises
/// `authentication_failure_close`, with the text RabbitMQ sends for every refusal
/// (the reason itself goes to the log only); without the capability, and for
/// malformed responses or unknown mechanisms, the connection is closed silently.
fn login_failure(error: &LoginError, mechanism: &str, capabilities: &FieldTable) -> HandshakeError {
    match error {
        LoginError::Refused { .. } | LoginError::LoopbackOnly { .. }
            if has_capability(capabilities, "authentication_failure_close") =>
        {
            HandshakeError::Close(AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            )))
        }
        _ => HandshakeError::Silent(error.to_string()),
    }
}

/// RabbitMQ's negotiation rule: the client may lower a limit, not raise it, and 0
/// means "no limit", which is higher than any limit the server sets.
fn negotiated(field: &str, min: u64, client: u64, server: u64) -> Result<(), AmqpError> {
    if client != 0 && client < min {
        return Err(AmqpError::not_allowed(format!(
            "negotiated {field} = {client} is lower than the minimum allowed value ({min})"
        ))
        .on_method(10, 31));
    }
    if server != 0 && (client == 0 || client > server) {
        let detail = if client == 0 && field == "channel_max" {
            " (no limit)"
        } else {
            ""
        };
        return Err(AmqpError::not_allowed(format!(
            "negotiated {field} = {client}{detail} is higher than the maximum allowed value ({server})"
        ))
        .on_method(10, 31));
    }
    Ok(())
}

/// The next method on channel 0, skipping heartbeats; anything else fails the handshake.
async fn expect_method<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<AMQPClass, HandshakeError> {
    loop {
        match reader.next().await? {
            Frame::Heartbeat(0) => continue,
            Frame::Method(0, method) => return Ok(method),
            other => {
                return Err(HandshakeError::Silent(format!(
                    "unexpected frame before connection.open on channel {}",
                    other.channel()
                )));
            }
        }
    }
}

/// After tune-ok the client must send connection.open. From here on RabbitMQ
/// answers mistakes with connection.close instead of a silent close.
async fn expect_open<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<connection::Open, HandshakeError> {
    loop {
        let frame = match reader.next().await {
            Ok(frame) => frame,
            Err(ReadError::Closed) => return Err(HandshakeError::Closed),
            Err(ReadError::Codec(e)) => {
                return Err(HandshakeError::Close(wire_text::codec_error_before_open(e)));
            }
        };
        return Err(HandshakeError::Close(match frame {
            Frame::Heartbeat(0) => continue,
            Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))) => {
                return Ok(open);
            }
            Frame::Method(0, other) => {
                AmqpError::channel_error("unexpected method in connection state opening")
                    .on_method(other.get_amqp_class_id(), other.get_amqp_method_id())
            }
            other => wire_text::unexpected_frame(&other),
        }));
    }
}

fn unexpected(method: &AMQPClass, state: &str) -> HandshakeError {
    HandshakeError::Silent(format!(
        "unexpected method {}.{} in connection state {state}",
        method.get_amqp_class_id(),
        method.get_amqp_method_id()
    ))
}

async fn send<W: AsyncWrite + Unpin>(
    encoder: &mut FrameEncoder,
    write: &mut W,
    method: &AMQPClass,
) -> Result<(), HandshakeError> {
    let mut buf = BytesMut::new();
    encoder
        .method(0, method, &mut buf)
        .map_err(|e| HandshakeError::Silent(e.to_string()))?;
    super::writer::send_all(write, &buf)
        .await
        .map_err(|_| HandshakeError::Closed)
}

/// Whether the client's capabilities table says yes to `name`.
pub(crate) fn has_capability(capabilities: &FieldTable, name: &str) -> bool {
    matches!(
        capabilities.inner().get(name),
        Some(AMQPValue::Boolean(true))
    )
}

/// connection.start; `external` offers EXTERNAL too (a verified client
/// certificate came with the TLS handshake).
fn start_method(broker: &Broker, external: bool) -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        capabilities.insert(ShortString::from(name), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    let text = |s: &str| AMQPValue::LongString(s.into());
    props.insert("cluster_name".into(), text(&broker.cluster_name));
    props.insert(
        "copyright".into(),
        text("Copyright (c) the Warren developers"),
    );
    props.insert(
        "information".into(),
        text(concat!(
            "Warren ",
            env!("CARGO_PKG_VERSION"),
            ", an AMQP 0-9-1 broker compatible with RabbitMQ. Licensed under the Apache License 2.0"
        )),
    );
    props.insert(
        "platform".into(),
        text(concat!("Warren ", env!("CARGO_PKG_VERSION"), " (Rust)")),
    );
    // Clients and their tests look for product "RabbitMQ" and read the version to
    // pick features; Warren answers as the RabbitMQ release whose 0-9-1 behaviour
    // it follows, and names itself in platform and information.
    props.insert("product".into(), text("RabbitMQ"));
    props.insert("version".into(), text(RABBITMQ_COMPATIBLE_VERSION));
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: if external {
            format!("{MECHANISMS} {EXTERNAL}").into()
        } else {
            MECHANISMS.into()
        },
        locales: "en_US".into(),
    }))
}

/// The connection.close frame for an error.
pub fn close_method(error: &AmqpError) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: error.code.code(),
        reply_text: ShortString::try_new(error.reply_text()).unwrap_or_default(),
        class_id: error.class_id,
        method_id: error.method_id,
    }))
}

/// The connection.close a broker sends when it shuts down.
pub fn shutdown_error() -> AmqpError {
    AmqpError::shutdown()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_logins_are_reported_without_the_reason() {
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            AMQPValue::Boolean(true),
        );
        let loopback = LoginError::LoopbackOnly {
            user: "guest".into(),
        };
        let HandshakeError::Close(error) = login_failure(&loopback, "PLAIN", &caps) else {
            panic!("a refused login is answered when the client asks for it");
        };
        assert_eq!(
            error.reply_text(),
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
        );
        assert!(matches!(
            login_failure(&loopback, "PLAIN", &FieldTable::default()),
            HandshakeError::Silent(_)
        ));
        let unknown = LoginError::UnknownMechanism("FOO".into());
        assert!(matches!(
            login_failure(&unknown, "FOO", &caps),
            HandshakeError::Silent(_)
        ));
    }

    #[test]
    fn negotiation_follows_rabbitmq() {
        assert!(negotiated("frame_max", 4096, 131_072, 131_072).is_ok());
        assert!(negotiated("frame_max", 4096, 8192, 131_072).is_ok());
        let low = negotiated("frame_max", 4096, 1000, 131_072).expect_err("low");
        assert_eq!(
            low.reply_text(),
            "NOT_ALLOWED - negotiated frame_max = 1000 is lower than the minimum allowed value (4096)"
        );
        let unlimited = negotiated("channel_max", 1, 0, 2047).expect_err("0");
        assert_eq!(
            unlimited.reply_text(),
            "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)"
        );
        assert!(
            negotiated("channel_max", 1, 0, 0).is_ok(),
            "no server limit"
        );
    }
}

//! amqps: the TLS listener beside the plain one, with certificates made at test
//! time (`certs.rs`), and lapin (rustls) as the client. Here: handshakes,
//! client certificates as RabbitMQ's `verify_peer` / `fail_if_no_peer_cert`,
//! the configuration's refusal of missing or bad PEM files, and the helpers
//! the other files share; `external.rs`: the EXTERNAL mechanism; `https.rs`:
//! the management API and warrenctl over https.

#[path = "../common/mod.rs"]
mod common;

mod certs;
mod external;
mod https;

use std::time::Duration;

use certs::{ClientIdentity, Pki};
use common::lapin::{consume, declare_queue, next_delivery, publish_acked};
use common::{TestBroker, WAIT};
use lapin::options::BasicAckOptions;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::Config;

/// Sets the server's certificate and key from `pki`.
fn server_files(pki: &Pki, config: &mut Config) {
    config.tls_cert = Some(pki.server_cert.clone());
    config.tls_key = Some(pki.server_key.clone());
}

/// Also asks clients for certificates signed by `pki`'s CA.
fn verify_peer(pki: &Pki, config: &mut Config, fail_if_no_peer_cert: bool) {
    server_files(pki, config);
    config.tls_ca = Some(pki.ca.clone());
    config.tls_verify_peer = true;
    config.tls_fail_if_no_peer_cert = fail_if_no_peer_cert;
}

/// The amqps URI of `broker` as `user`:`pass` (no credentials when `None`),
/// with an optional query.
fn amqps_uri(broker: &TestBroker, credentials: Option<(&str, &str)>, query: &str) -> String {
    let addr = broker.tls_addr.expect("an amqps listener");
    let who = credentials.map_or_else(String::new, |(u, p)| format!("{u}:{p}@"));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("amqps://{who}{addr}/%2f{query}")
}

/// What lapin trusts (`ca_pem`) and presents (`identity`).
fn client_tls(ca_pem: &str, identity: Option<&ClientIdentity>) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: identity.map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert_pem.clone().into_bytes(),
            key: id.key_pem.clone().into_bytes(),
        }),
        cert_chain: Some(ca_pem.to_owned()),
    }
}

/// Connects with lapin over TLS, within [`WAIT`].
async fn try_connect(uri: &str, tls: OwnedTLSConfig) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime().expect("runtime");
    tokio::time::timeout(
        WAIT,
        Connection::connect_with_config(uri, ConnectionProperties::default(), tls, runtime),
    )
    .await
    .expect("connect or fail in time")
}

/// Why a connection failed, as lapin words it (the TLS alert or error).
fn refusal(result: lapin::Result<Connection>) -> String {
    match result {
        Ok(_) => panic!("the connection was expected to fail"),
        Err(error) => format!("{error:?}"),
    }
}

async fn connect(uri: &str, tls: OwnedTLSConfig) -> Connection {
    try_connect(uri, tls).await.expect("amqps connection")
}

/// Declares a queue, publishes one confirmed message to it and consumes it.
async fn round_trip(conn: &Connection, queue: &str) {
    let ch = common::lapin::confirming(conn).await;
    declare_queue(&ch, queue).await;
    publish_acked(&ch, "", queue, b"over tls", BasicProperties::default()).await;
    let mut consumer = consume(&ch, queue).await;
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.data, b"over tls");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
}

/// A rustls client that trusts `pki`'s CA, presents `identity` and asks for
/// the ALPN protocols `alpn`.
fn tls_connector(
    pki: &Pki,
    identity: Option<&ClientIdentity>,
    alpn: Vec<Vec<u8>>,
) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn publish_and_consume_over_amqps() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| server_files(&pki, c)).await;
    let conn = connect(
        &amqps_uri(&broker, Some(("guest", "guest")), ""),
        client_tls(&pki.ca_pem, None),
    )
    .await;
    round_trip(&conn, "tls-q").await;
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn the_plain_port_works_beside_amqps() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| server_files(&pki, c)).await;
    let tls = connect(
        &amqps_uri(&broker, Some(("guest", "guest")), ""),
        client_tls(&pki.ca_pem, None),
    )
    .await;
    let plain = common::lapin::connect(&broker.uri("")).await;
    // A message published over TLS is consumed over plain TCP and back.
    let tls_ch = common::lapin::confirming(&tls).await;
    let plain_ch = common::lapin::confirming(&plain).await;
    declare_queue(&tls_ch, "both").await;
    publish_acked(&tls_ch, "", "both", b"from tls", BasicProperties::default()).await;
    let mut consumer = consume(&plain_ch, "both").await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"from tls");
    round_trip(&plain, "plain-q").await;
    round_trip(&tls, "tls-q").await;
    assert_eq!(broker.broker.connections.len(), 2);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let pki = Pki::new("Warren test CA");
    let stranger = Pki::new("Some other CA");
    let broker = common::start_tls(|c| server_files(&pki, c)).await;
    let uri = amqps_uri(&broker, Some(("guest", "guest")), "");
    let refused = try_connect(&uri, client_tls(&stranger.ca_pem, None)).await;
    assert!(refusal(refused).contains("UnknownIssuer"));
    // The broker goes on serving.
    connect(&uri, client_tls(&pki.ca_pem, None)).await;
    common::raw::assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn verify_peer_and_fail_if_no_peer_cert_refuse_a_client_without_a_certificate() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| verify_peer(&pki, c, true)).await;
    let uri = amqps_uri(&broker, Some(("guest", "guest")), "");
    let refused = try_connect(&uri, client_tls(&pki.ca_pem, None)).await;
    assert!(refusal(refused).contains("CertificateRequired"));
    // A certificate from another CA is refused too.
    let stranger = Pki::new("Some other CA");
    let foreign = stranger.client(Some("guest"));
    let refused = try_connect(&uri, client_tls(&pki.ca_pem, Some(&foreign))).await;
    assert!(refusal(refused).contains("UnknownCA"));
    // One signed by the CA gets in (with PLAIN: the certificate alone is not a login).
    let identity = pki.client(Some("someone"));
    let conn = connect(&uri, client_tls(&pki.ca_pem, Some(&identity))).await;
    round_trip(&conn, "verified").await;
}

#[tokio::test]
async fn verify_peer_alone_accepts_a_client_without_a_certificate() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| verify_peer(&pki, c, false)).await;
    let uri = amqps_uri(&broker, Some(("guest", "guest")), "");
    connect(&uri, client_tls(&pki.ca_pem, None)).await;
    let identity = pki.client(Some("someone"));
    connect(&uri, client_tls(&pki.ca_pem, Some(&identity))).await;
    // A certificate that does not verify is still refused.
    let stranger = Pki::new("Some other CA").client(Some("guest"));
    let refused = try_connect(&uri, client_tls(&pki.ca_pem, Some(&stranger))).await;
    assert!(refusal(refused).contains("UnknownCA"));
}

#[tokio::test]
async fn a_silent_tls_client_does_not_block_others_and_times_out() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| {
        server_files(&pki, c);
        c.handshake_timeout_secs = 1;
    })
    .await;
    let addr = broker.tls_addr.expect("amqps listener");
    // Connects and never says a word of TLS.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    // Another client gets through meanwhile.
    let conn = connect(
        &amqps_uri(&broker, Some(("guest", "guest")), ""),
        client_tls(&pki.ca_pem, None),
    )
    .await;
    round_trip(&conn, "meanwhile").await;
    // And the silent one is dropped at the handshake timeout.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, silent.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn plain_amqp_on_the_tls_port_is_dropped() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| server_files(&pki, c)).await;
    let addr = broker.tls_addr.expect("amqps listener");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tcp.write_all(b"AMQP\x00\x00\x09\x01").await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    let _ = read;
    assert!(!buf.starts_with(b"AMQP"), "no AMQP spoken before TLS");
    tokio::time::sleep(Duration::from_millis(50)).await;
    common::raw::assert_broker_healthy(broker.addr).await;
}

#[test]
fn a_missing_or_bad_certificate_file_is_a_clean_config_error() {
    let pki = Pki::new("Warren test CA");
    let base = Config {
        tls_port: 5671,
        tls_cert: Some(pki.server_cert.clone()),
        tls_key: Some(pki.server_key.clone()),
        ..Config::default()
    };
    base.validate().expect("the good files");

    let missing = pki.path("nope.pem");
    let error = Config {
        tls_cert: Some(missing.clone()),
        ..base.clone()
    }
    .validate()
    .expect_err("missing certificate file")
    .to_string();
    assert!(error.contains("tls_cert"), "{error}");
    assert!(error.contains(&missing.display().to_string()), "{error}");

    let error = Config {
        tls_key: Some(missing.clone()),
        ..base.clone()
    }
    .validate()
    .expect_err("missing key file")
    .to_string();
    assert!(error.contains("tls_key"), "{error}");
    assert!(error.contains(&missing.display().to_string()), "{error}");

    // A key file with a certificate in it, a certificate file with no PEM.
    let error = Config {
        tls_key: Some(pki.server_cert.clone()),
        ..base.clone()
    }
    .validate()
    .expect_err("no key in the key file")
    .to_string();
    assert!(error.contains("no private key"), "{error}");
    let garbage = pki.write("garbage.pem", "hello");
    let error = Config {
        tls_cert: Some(garbage.clone()),
        ..base.clone()
    }
    .validate()
    .expect_err("no certificate")
    .to_string();
    assert!(error.contains(&garbage.display().to_string()), "{error}");

    // tls_port without a certificate; verify_peer without a CA.
    let error = Config {
        tls_cert: None,
        ..base.clone()
    }
    .validate()
    .expect_err("no tls_cert")
    .to_string();
    assert!(error.contains("tls_cert"), "{error}");
    let error = Config {
        tls_verify_peer: true,
        ..base.clone()
    }
    .validate()
    .expect_err("no tls_ca")
    .to_string();
    assert!(error.contains("tls_ca"), "{error}");

    // A key that is not the certificate's: refused when the acceptor is built.
    let other = Pki::new("Another CA");
    let mismatched = Config {
        tls_key: Some(other.server_key.clone()),
        ..base.clone()
    };
    let error = match warren::tls::acceptor(&mismatched) {
        Ok(_) => panic!("a key that does not match the certificate"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("tls_key"), "{error}");
    assert!(
        error.contains("the key is not the certificate's"),
        "{error}"
    );

    // TLS off: the files are not looked at.
    Config {
        tls_port: 0,
        tls_cert: Some(missing),
        ..base
    }
    .validate()
    .expect("TLS off");
}

#[tokio::test]
async fn large_messages_arrive_whole_over_amqps() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| server_files(&pki, c)).await;
    // Heartbeats off: nothing but the deliveries themselves pushes bytes out.
    let conn = connect(
        &amqps_uri(&broker, Some(("guest", "guest")), "heartbeat=0"),
        client_tls(&pki.ca_pem, None),
    )
    .await;
    let ch = common::lapin::confirming(&conn).await;
    declare_queue(&ch, "big").await;
    let bodies: Vec<Vec<u8>> = (0..8u8)
        .map(|i| vec![i; 3 * 1024 * 1024 + usize::from(i) * 4099])
        .collect();
    for body in &bodies {
        publish_acked(&ch, "", "big", body, BasicProperties::default()).await;
    }
    let reader = conn.create_channel().await.expect("channel");
    let mut consumer = consume(&reader, "big").await;
    for body in &bodies {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data.len(), body.len());
        assert!(delivery.data == *body);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

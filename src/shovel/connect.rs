//! Opening a shovel's AMQP 0-9-1 client connections (lapin): to a remote
//! broker over TCP or TLS (rustls with ring, the URI's `cacertfile`,
//! `certfile`, `keyfile`, `verify`, `server_name_indication`), or to this
//! node itself for a host-less URI.
//!
//! This node (RabbitMQ's "direct connection"): Warren has no in-process
//! client, so the shovel connects over loopback to the broker's own AMQP
//! listener as the user the URI names, else the user who declared the
//! shovel, logging in with the registry's internal secret (accepted from
//! loopback only, see `auth::Registry::internal_secret`): the shovel has
//! exactly that user's permissions, and no password is ever stored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::types::LongString;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::uri::{ShovelUri, TlsOptions, Verify};

/// How long one connection attempt may take (TCP, TLS and the AMQP handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a shovel needs to reach this node for a host-less URI.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// The node's plain AMQP listener.
    pub addr: SocketAddr,
    /// The internal secret (see the module comment).
    pub secret: String,
}

/// Connects to `uri` for the shovel `shovel`; `user` is who declared it
/// (the login for a host-less URI without a user of its own).
pub async fn connect(
    uri: &ShovelUri,
    local: &LocalNode,
    user: &str,
    shovel: &str,
) -> Result<Connection, String> {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("Shovel {shovel}")));
    let attempt = async {
        match (&uri.host, &uri.tls) {
            (None, _) => {
                let mut addr = local.addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
                let amqp = AMQPUri {
                    scheme: AMQPScheme::AMQP,
                    authority: AMQPAuthority {
                        userinfo: AMQPUserInfo {
                            username: uri.user.clone().unwrap_or_else(|| user.to_owned()),
                            password: uri.password.clone().unwrap_or_else(|| local.secret.clone()),
                        },
                        host: addr.ip().to_string(),
                        port: addr.port(),
                    },
                    vhost: uri.vhost.clone(),
                    query: query(uri),
                };
                Connection::connect_uri(amqp, properties).await
            }
            (Some(host), None) => {
                Connection::connect_uri(remote(uri, host, AMQPScheme::AMQP), properties).await
            }
            (Some(host), Some(tls)) => {
                let config = client_config(tls)?;
                let sni = tls.server_name.clone().unwrap_or_else(|| host.clone());
                let connector = RustlsConnector::from(Arc::new(config));
                let runtime = lapin::runtime::default_runtime()?;
                let (h, port) = (host.clone(), uri.port);
                Connection::connector(
                    remote(uri, host, AMQPScheme::AMQPS),
                    runtime,
                    async move |_uri, runtime| {
                        let addrs: Vec<SocketAddr> =
                            tokio::net::lookup_host((h.as_str(), port)).await?.collect();
                        let tcp = AsyncTcpStream::connect(&runtime, addrs).await?;
                        Ok(tcp.into_rustls(&connector, &sni).await?)
                    },
                    properties,
                )
                .await
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(format!("{}: {error}", uri.redacted())),
        Err(_) => Err(format!("{}: connection timed out", uri.redacted())),
    }
}

/// The lapin URI of a remote endpoint (guest/guest when the URI has no
/// credentials, as the AMQP URI spec says).
fn remote(uri: &ShovelUri, host: &str, scheme: AMQPScheme) -> AMQPUri {
    let default = AMQPUserInfo::default();
    AMQPUri {
        scheme,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: uri.user.clone().unwrap_or(default.username),
                password: uri.password.clone().unwrap_or(default.password),
            },
            host: host.to_owned(),
            port: uri.port,
        },
        vhost: uri.vhost.clone(),
        query: query(uri),
    }
}

fn query(uri: &ShovelUri) -> AMQPQueryString {
    AMQPQueryString {
        heartbeat: uri.heartbeat,
        connection_timeout: Some(CONNECT_TIMEOUT.as_millis() as u64),
        ..AMQPQueryString::default()
    }
}

/// The rustls client configuration of an `amqps` URI's options.
fn client_config(tls: &TlsOptions) -> Result<ClientConfig, lapin::Error> {
    let invalid = |what: String| lapin::Error::from(std::io::Error::other(what));
    // ring, as the server side (`crate::tls`): no C build beyond a compiler.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(format!("TLS versions: {e}")))?;
    let builder = match tls.verify {
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        Verify::Peer => {
            let mut roots = rustls::RootCertStore::empty();
            match &tls.cacertfile {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| invalid(format!("cacertfile {}: {e}", path.display())))?;
                    for cert in certs {
                        roots
                            .add(cert)
                            .map_err(|e| invalid(format!("cacertfile {}: {e}", path.display())))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                }
            }
            builder.with_root_certificates(roots)
        }
    };
    match (&tls.certfile, &tls.keyfile) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(format!("certfile {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| invalid(format!("keyfile {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("certfile with keyfile: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `verify=verify_none`: accepts any server certificate, still checking
/// that the handshake's signatures are made with its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

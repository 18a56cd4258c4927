//! Optional TLS on cluster links, with mutual authentication against the cluster's CA.
//!
//! Both ends present a certificate and check that the peer's chains to the configured CA
//! (rustls with ring, TLS 1.2 and 1.3). The dialer does not check the peer's host name:
//! nodes are dialed by whatever address they advertise (often an IP, behind NAT another one
//! than their certificate would name), so the CA, dedicated to the cluster, is the
//! credential, as it is for the acceptor, which checks client certificates by chain alone.
//! The dialer sends the fixed server name [`SERVER_NAME`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The server name a dialer sends (SNI); it is not checked against the certificate.
pub const SERVER_NAME: &str = "warren-cluster";

/// Why a TLS setup was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A CA certificate rustls cannot use.
    #[error("unusable CA certificate: {0}")]
    Ca(String),
    /// No CA certificate was given: nothing to check peers against.
    #[error("no CA certificate to check peers against")]
    NoCa,
    /// The certificate, the key, or the two together were refused.
    #[error("certificate and key: {0}")]
    Identity(String),
}

/// The TLS side of a node's cluster links: how it dials and how it accepts.
#[derive(Clone)]
pub struct LinkTls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTls")
    }
}

impl LinkTls {
    /// Mutual TLS from this node's certificate chain (leaf first), its key, and the CA
    /// certificates that every node's certificate chains to.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TlsSetupError> {
        if ca.is_empty() {
            return Err(TlsSetupError::NoCa);
        }
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert)
                .map_err(|e| TlsSetupError::Ca(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        // ring, as the broker's amqps (see src/tls.rs for why not aws-lc-rs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsSetupError::Ca(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsSetupError::Identity(e.to_string()))?
            .with_client_cert_verifier(clients)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| TlsSetupError::Identity(e.to_string()))?;
        let verifier = Arc::new(ClusterCa {
            roots,
            algorithms: provider.signature_verification_algorithms,
        });
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsSetupError::Identity(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsSetupError::Identity(e.to_string()))?;
        Ok(Self::from_configs(Arc::new(client), Arc::new(server)))
    }

    /// TLS from ready rustls configurations (the client's must accept the certificates of
    /// peers named [`SERVER_NAME`]).
    pub fn from_configs(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Self {
        Self {
            connector: TlsConnector::from(client),
            acceptor: TlsAcceptor::from(server),
        }
    }

    /// The TLS handshake as the dialer.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(SERVER_NAME)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, stream).await
    }

    /// The TLS handshake as the acceptor.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }
}

/// Checks a peer's certificate chain against the cluster's CA, not its name (see the
/// module's comment).
#[derive(Debug)]
struct ClusterCa {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ClusterCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

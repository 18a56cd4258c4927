//! TLS: the rustls server configuration for amqps and the management API over
//! https, built from the configuration's PEM files (read and checked by
//! `Config::tls_files`), and what a verified client certificate says.
//!
//! rustls with the `ring` provider, TLS 1.2 and 1.3 only. Client certificates
//! follow RabbitMQ's `verify_peer` / `fail_if_no_peer_cert`: without
//! `tls_verify_peer` none is asked for; with it a certificate that does not
//! chain to `tls_ca` is refused, and a missing one too with
//! `tls_fail_if_no_peer_cert`.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use crate::config::{Config, ConfigError};

pub use tokio_rustls::TlsAcceptor;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or not PEM.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// rustls refused what the files hold.
    #[error("{0}")]
    Rejected(String),
}

/// The acceptor for amqps connections, or `None` when `tls_port` is 0.
pub fn amqps_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    if config.tls_port == 0 {
        return Ok(None);
    }
    acceptor(config).map(Some)
}

/// An amqps acceptor from `tls_cert`, `tls_key` and the client certificate
/// settings, whatever `tls_port` says (tests bind their own listener).
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(
        config,
        Vec::new(),
        config.tls_verify_peer,
    )?)))
}

/// The acceptor for the management API over https (ALPN `http/1.1`), or `None`
/// when `management_tls` is off.
pub fn https_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    if !config.management || !config.management_tls {
        return Ok(None);
    }
    https(config).map(Some)
}

/// An https acceptor (ALPN `http/1.1`) from `tls_cert` and `tls_key`,
/// whatever `management_tls` says. It asks for no client certificate: the API
/// authenticates with HTTP basic auth.
pub fn https(config: &Config) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(
        config,
        vec![b"http/1.1".to_vec()],
        false,
    )?)))
}

/// A rustls server configuration from the configuration's files; `verify_peer`
/// asks for client certificates as the configuration says.
fn server_config(
    config: &Config,
    alpn: Vec<Vec<u8>>,
    verify_peer: bool,
) -> Result<ServerConfig, TlsError> {
    let files = config.read_tls_files()?;
    // ring builds with nothing but a C compiler (aws-lc-rs would bring a
    // large C build); rustls 0.23.48 deprecates it for lacking post-quantum
    // key exchange, which RabbitMQ's clients do not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rejected(format!("TLS protocol versions: {e}")))?;
    let builder = if verify_peer {
        let mut roots = RootCertStore::empty();
        let ca = path_of(config.tls_ca.as_ref());
        for cert in files.ca {
            roots.add(cert).map_err(|e| {
                TlsError::Rejected(format!("tls_ca file {ca}: unusable CA certificate: {e}"))
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if config.tls_fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::Rejected(format!("tls_ca file {ca}: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut server = builder
        .with_single_cert(files.certs, files.key)
        .map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => "the key is not the certificate's".to_owned(),
                other => other.to_string(),
            };
            TlsError::Rejected(format!(
                "tls_cert file {} with tls_key file {}: {why}",
                path_of(config.tls_cert.as_ref()),
                path_of(config.tls_key.as_ref())
            ))
        })?;
    server.alpn_protocols = alpn;
    Ok(server)
}

fn path_of(path: Option<&std::path::PathBuf>) -> String {
    path.map_or_else(String::new, |p| p.display().to_string())
}

/// The subject common name (CN) of a DER certificate: the user name the
/// EXTERNAL mechanism logs in as (RabbitMQ's `ssl_cert_login_from =
/// common_name`). `None` when the certificate has no CN or does not parse.
pub fn common_name(cert: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    let (cert, _) = der(cert, SEQUENCE)?;
    let (mut tbs, _) = der(cert, SEQUENCE)?;
    // tbsCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
    //   signature, issuer, validity, subject, ... }
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs, 0xa0)?.1;
    }
    for tag in [0x02, SEQUENCE, SEQUENCE, SEQUENCE] {
        tbs = der(tbs, tag)?.1;
    }
    let (mut names, _) = der(tbs, SEQUENCE)?;
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
    let mut found = None;
    while !names.is_empty() {
        let (mut set, rest) = der(names, SET)?;
        names = rest;
        while !set.is_empty() {
            let (attribute, rest) = der(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = der(attribute, OID)?;
            if oid == CN_OID {
                let (&tag, _) = value.split_first()?;
                let (text, _) = der(value, tag)?;
                found = Some(match tag {
                    // BMPString: UTF-16BE.
                    0x1e => {
                        let units: Vec<u16> = text
                            .chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .collect();
                        String::from_utf16(&units).ok()?
                    }
                    // UTF8String, PrintableString, IA5String, TeletexString and
                    // the like: taken as UTF-8.
                    _ => String::from_utf8(text.to_vec()).ok()?,
                });
            }
        }
    }
    found
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3, id-at-commonName.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element with tag `tag` at the start of `input`: its contents and
/// what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, mut rest) = rest.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(
            der(&[0x30, 0x01, 0xff, 0x00], 0x30),
            Some((&[0xff][..], &[0x00][..]))
        );
        assert_eq!(
            der(&[0x30, 0x81, 0x01, 0xff], 0x30),
            Some((&[0xff][..], &[][..]))
        );
        assert_eq!(der(&[0x30, 0x02, 0xff], 0x30), None);
        assert_eq!(der(&[0x31, 0x00], 0x30), None);
        assert_eq!(der(&[], 0x30), None);
        assert_eq!(common_name(b"not a certificate"), None);
    }

    fn certificate(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn common_name_of_a_certificate() {
        use rcgen::DnType::{CommonName, CountryName, OrganizationName};
        let cert = certificate(&[
            (CountryName, "SE"),
            (OrganizationName, "Warren"),
            (CommonName, "alice"),
        ]);
        assert_eq!(common_name(&cert).as_deref(), Some("alice"));
        let cert = certificate(&[(CommonName, "bjørn o'brien")]);
        assert_eq!(common_name(&cert).as_deref(), Some("bjørn o'brien"));
        assert_eq!(common_name(&certificate(&[(OrganizationName, "x")])), None);
    }
}

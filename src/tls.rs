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
/// EXTERNAL mechanism logs in as with `ssl_cert_login_from = common_name`.
/// `None` when the certificate has no CN or does not parse.
pub fn common_name(cert: &[u8]) -> Option<String> {
    subject(cert)?
        .into_iter()
        .flatten()
        .filter(|(oid, _)| oid.as_slice() == CN_OID)
        .filter_map(|(_, value)| value.text())
        .next_back()
}

/// The subject of a DER certificate as RabbitMQ formats it for
/// `ssl_cert_login_from = distinguished_name` (`rabbit_cert_info`): RFC 4514,
/// the RDNs in reverse order joined by `,`, attributes of one RDN by `+`,
/// RabbitMQ's short names (`CN`, `O`, `OU`, `C`, `L`, `ST`, `DC`, `UID`, ...)
/// and the dotted OID for others, e.g. `CN=alice,O=Warren,C=SE`.
pub fn distinguished_name(cert: &[u8]) -> Option<String> {
    let rdns: Vec<String> = subject(cert)?
        .into_iter()
        .rev()
        .map(|rdn| {
            rdn.into_iter()
                .map(|(oid, value)| {
                    let value = match value.text() {
                        Some(text) => escape_rdn_value(&text),
                        None => value.hex(),
                    };
                    format!("{}={value}", attribute_name(&oid))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.join(","))
}

/// An attribute value: its DER tag and contents.
struct AttributeValue {
    tag: u8,
    bytes: Vec<u8>,
}

impl AttributeValue {
    /// The value as text, for the string types.
    fn text(&self) -> Option<String> {
        match self.tag {
            // BMPString: UTF-16BE.
            0x1e => {
                let units: Vec<u16> = self
                    .bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&units).ok()
            }
            // UTF8String, PrintableString, TeletexString, IA5String,
            // VisibleString: taken as UTF-8.
            0x0c | 0x13 | 0x14 | 0x16 | 0x1a => String::from_utf8(self.bytes.clone()).ok(),
            _ => None,
        }
    }

    /// RFC 4514's `#` and the hex of the whole DER element, for other types.
    fn hex(&self) -> String {
        let mut out = format!("#{:02x}", self.tag);
        let len = self.bytes.len();
        if len < 0x80 {
            out.push_str(&format!("{len:02x}"));
        } else {
            let be = len.to_be_bytes();
            let skip = be.iter().take_while(|b| **b == 0).count();
            out.push_str(&format!("{:02x}", 0x80 | (be.len() - skip)));
            be[skip..]
                .iter()
                .for_each(|b| out.push_str(&format!("{b:02x}")));
        }
        self.bytes
            .iter()
            .for_each(|b| out.push_str(&format!("{b:02x}")));
        out
    }
}

/// One relative distinguished name: its attributes (OID, value).
type Rdn = Vec<(Vec<u8>, AttributeValue)>;

/// The subject name of a DER certificate, RDN by RDN, in certificate order.
fn subject(cert: &[u8]) -> Option<Vec<Rdn>> {
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
    let mut rdns = Vec::new();
    while !names.is_empty() {
        let (mut set, rest) = der(names, SET)?;
        names = rest;
        let mut rdn = Vec::new();
        while !set.is_empty() {
            let (attribute, rest) = der(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = der(attribute, OID)?;
            let (&tag, _) = value.split_first()?;
            let (bytes, _) = der(value, tag)?;
            rdn.push((
                oid.to_vec(),
                AttributeValue {
                    tag,
                    bytes: bytes.to_vec(),
                },
            ));
        }
        rdns.push(rdn);
    }
    Some(rdns)
}

/// RabbitMQ's name for an attribute type, else its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    const PILOT: [u8; 9] = [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01];
    const EMAIL: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    let known = match oid {
        [0x55, 0x04, n] => match n {
            0x03 => Some("CN"),
            0x04 => Some("SN"),
            0x05 => Some("SERIALNUMBER"),
            0x06 => Some("C"),
            0x07 => Some("L"),
            0x08 => Some("ST"),
            0x09 => Some("STREET"),
            0x0a => Some("O"),
            0x0b => Some("OU"),
            0x0c => Some("TITLE"),
            0x2a => Some("GIVENNAME"),
            0x2b => Some("INITIALS"),
            0x2c => Some("GENERATIONQUALIFIER"),
            0x41 => Some("PSEUDONYM"),
            _ => None,
        },
        [p @ .., 0x19] if p == PILOT => Some("DC"),
        [p @ .., 0x01] if p == PILOT => Some("UID"),
        o if o == EMAIL => Some("EMAILADDRESS"),
        _ => None,
    };
    known.map_or_else(|| dotted(oid), str::to_owned)
}

/// An OID's dotted form (`1.2.840.113549`).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut n: u64 = 0;
    for &b in oid {
        n = (n << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (n / 40).min(2);
                arcs.push(first);
                arcs.push(n - first * 40);
            } else {
                arcs.push(n);
            }
            n = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// RFC 4514 escaping of an attribute value: `,+"\<>;` anywhere, `#` or a
/// space first, a space last.
fn escape_rdn_value(value: &str) -> String {
    let count = value.chars().count();
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i + 1 == count && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    fn distinguished_name_as_rabbitmq_formats_it() {
        use rcgen::DnType::{CommonName, CountryName, OrganizationName, OrganizationalUnitName};
        let cert = certificate(&[
            (CountryName, "SE"),
            (OrganizationName, "Warren, Inc."),
            (OrganizationalUnitName, "ops"),
            (CommonName, "alice"),
        ]);
        assert_eq!(
            distinguished_name(&cert).as_deref(),
            Some("CN=alice,OU=ops,O=Warren\\, Inc.,C=SE")
        );
        let cert = certificate(&[(rcgen::DnType::CustomDnType(vec![1, 2, 3, 4]), "x")]);
        assert_eq!(distinguished_name(&cert).as_deref(), Some("1.2.3.4=x"));
        assert_eq!(distinguished_name(b"junk"), None);
        assert_eq!(escape_rdn_value("#a b "), "\\#a b\\ ");
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
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

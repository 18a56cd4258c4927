//! A shovel's `src-uri` / `dest-uri`: RabbitMQ's AMQP URI
//! (`amqp[s]://user:pass@host:port/vhost?query`), with the TLS query
//! parameters its shovel and federation plugins read (`cacertfile`,
//! `certfile`, `keyfile`, `verify`, `server_name_indication`) and its
//! host-less form, `amqp://` (or `amqp://user@/vhost`): this node itself.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::params::ParamError;

/// How a TLS connection checks the server's certificate (RabbitMQ's `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// `verify_peer` (the default here): the chain must lead to a trusted
    /// root and name the host (or `server_name_indication`).
    Peer,
    /// `verify_none`: any certificate is accepted (encryption without
    /// authentication of the server, as RabbitMQ's option says).
    None,
}

/// The TLS options of an `amqps://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `cacertfile`: PEM roots to trust instead of the system's.
    pub cacertfile: Option<PathBuf>,
    /// `certfile`: the client certificate chain (PEM).
    pub certfile: Option<PathBuf>,
    /// `keyfile`: the client key (PEM).
    pub keyfile: Option<PathBuf>,
    /// `verify`.
    pub verify: Verify,
    /// `server_name_indication`: the name sent and checked instead of the host.
    pub server_name: Option<String>,
}

/// One parsed AMQP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShovelUri {
    /// The URI as given (with its credentials: used to connect, never shown).
    pub raw: String,
    /// `None`: host-less, this node (RabbitMQ's direct connection).
    pub host: Option<String>,
    /// The port (5672 / 5671 unless given).
    pub port: u16,
    /// User name, if the URI has one.
    pub user: Option<String>,
    /// Password, if the URI has one.
    pub password: Option<String>,
    /// The vhost (`/` when the URI has no path, as RabbitMQ's URI spec).
    pub vhost: String,
    /// `heartbeat` query parameter, seconds.
    pub heartbeat: Option<u16>,
    /// TLS options when the scheme is `amqps`.
    pub tls: Option<TlsOptions>,
}

impl ShovelUri {
    /// Parses `raw`; the error names what is wrong, as RabbitMQ's
    /// `"..." not a valid URI` validation does.
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        let bad = |why: &str| ParamError(format!("\"{raw}\" not a valid URI: {why}"));
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let tls = match scheme {
            "amqp" => false,
            "amqps" => true,
            _ => return Err(bad("the scheme must be amqp or amqps")),
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| -> Result<String, ParamError> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("not UTF-8 once decoded"))
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(decode(n)?), Some(decode(p)?)),
                None => (Some(decode(u)?), None),
            },
        };
        let default_port = if tls { 5671 } else { 5672 };
        let (host, port) =
            split_host_port(hostport, default_port).ok_or_else(|| bad("bad port"))?;
        let vhost = match path {
            None => "/".to_owned(),
            Some(p) if p.contains('/') => return Err(bad("the vhost must be one path segment")),
            Some(p) => decode(p)?,
        };
        let mut heartbeat = None;
        let mut options = TlsOptions {
            cacertfile: None,
            certfile: None,
            keyfile: None,
            verify: Verify::Peer,
            server_name: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            match key {
                "heartbeat" => {
                    heartbeat = Some(value.parse().map_err(|_| bad("heartbeat"))?);
                }
                "cacertfile" => options.cacertfile = Some(value.into()),
                "certfile" => options.certfile = Some(value.into()),
                "keyfile" => options.keyfile = Some(value.into()),
                "verify" => {
                    options.verify = match value.as_str() {
                        "verify_peer" => Verify::Peer,
                        "verify_none" => Verify::None,
                        _ => return Err(bad("verify must be verify_peer or verify_none")),
                    }
                }
                // RabbitMQ's `disable` turns SNI off; rustls always sends
                // one, so the host is used then.
                "server_name_indication" if value == "disable" => {}
                "server_name_indication" => options.server_name = Some(value),
                // Other keys of RabbitMQ's list (connection_timeout,
                // channel_max, frame_max, auth_mechanism, depth, ...) are
                // accepted and left to their defaults.
                _ => {}
            }
        }
        if options.certfile.is_some() != options.keyfile.is_some() {
            return Err(bad("certfile and keyfile go together"));
        }
        Ok(ShovelUri {
            raw: raw.to_owned(),
            host,
            port,
            user,
            password,
            vhost,
            heartbeat,
            tls: tls.then_some(options),
        })
    }

    /// The URI without its password, as RabbitMQ shows URIs in the shovel
    /// status and the `x-shovelled` header.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }
}

/// `host[:port]` (an IPv6 host in brackets); `None` host when empty.
fn split_host_port(hostport: &str, default_port: u16) -> Option<(Option<String>, u16)> {
    if hostport.is_empty() {
        return Some((None, default_port));
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some(((!host.is_empty()).then(|| host.to_owned()), port))
}

/// `raw` without the password of its userinfo (`amqp://user@host/...`).
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostless_is_this_node_on_the_default_vhost() {
        let u = ShovelUri::parse("amqp://").expect("valid");
        assert_eq!(u.host, None);
        assert_eq!(u.vhost, "/");
        assert_eq!(u.port, 5672);
        let u = ShovelUri::parse("amqp://bob@/other").expect("valid");
        assert_eq!(
            (u.host, u.user.as_deref(), u.vhost.as_str()),
            (None, Some("bob"), "other")
        );
    }

    #[test]
    fn remote_with_credentials_port_and_vhost() {
        let u = ShovelUri::parse("amqp://a%40b:p%3Aw@rabbit.example:5673/%2f?heartbeat=5")
            .expect("valid");
        assert_eq!(u.host.as_deref(), Some("rabbit.example"));
        assert_eq!(u.port, 5673);
        assert_eq!(u.user.as_deref(), Some("a@b"));
        assert_eq!(u.password.as_deref(), Some("p:w"));
        assert_eq!(u.vhost, "/");
        assert_eq!(u.heartbeat, Some(5));
        assert_eq!(u.tls, None);
        assert_eq!(
            u.redacted(),
            "amqp://a%40b@rabbit.example:5673/%2f?heartbeat=5"
        );
    }

    #[test]
    fn amqps_options() {
        let u = ShovelUri::parse(
            "amqps://h/v?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&verify=verify_none&server_name_indication=rabbit",
        )
        .expect("valid");
        let tls = u.tls.expect("tls");
        assert_eq!(u.port, 5671);
        assert_eq!(tls.verify, Verify::None);
        assert_eq!(tls.cacertfile, Some(PathBuf::from("/ca.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("rabbit"));
    }

    #[test]
    fn refused() {
        for bad in [
            "http://h",
            "amqp:/h",
            "amqp://h:x",
            "amqps://h?verify=maybe",
            "amqps://h?certfile=/c",
            "amqp://h/a/b",
        ] {
            assert!(ShovelUri::parse(bad).is_err(), "{bad}");
        }
    }
}

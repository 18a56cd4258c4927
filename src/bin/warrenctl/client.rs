//! The HTTP side: one blocking client for the management API and the mapping
//! of its failures to one-line messages.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use ureq::Agent;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

/// Characters left as they are in a path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// rustls with ring (the provider the broker uses too), trusting `cacert`'s
/// certificates or, without it, Mozilla's roots.
fn tls_config(cacert: Option<&Path>) -> Result<TlsConfig> {
    // ring builds with a C compiler alone; rustls deprecates it only for its
    // lack of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match cacert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow!("--cacert {}: cannot read it: {e}", path.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("--cacert {}: not valid PEM: {e}", path.display()))?;
            if certs.is_empty() {
                bail!("--cacert {}: no certificate in it", path.display());
            }
            RootCerts::Specific(Arc::new(certs))
        }
        None => RootCerts::WebPki,
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(roots)
        .build())
}

/// Largest response body read (definitions of a big broker can be large).
const BODY_LIMIT: u64 = 1 << 30;

/// Percent-encodes one path segment: `/` becomes `%2F`, a lone `.` or `..` is
/// encoded too so that no URL normalisation can eat it.
pub fn seg(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// HTTP methods warrenctl uses. Only GET sends `accept: application/json`:
/// RabbitMQ answers 406 to a purge (DELETE .../contents) that sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// PUT with a JSON body
    Put,
    /// POST with a JSON body
    Post,
    /// DELETE
    Delete,
}

/// What a 404 means for one request, so the user reads "queue 'q' not found
/// in vhost '/'" instead of "Not Found".
#[derive(Debug, Default, Clone)]
pub struct NotFound {
    /// The message for a 404, whatever the API's reason.
    pub message: Option<String>,
    /// The message for a 404 whose reason says nothing more than "Not Found".
    pub fallback: Option<String>,
    /// The vhost the request is scoped to: on a bare 404 warrenctl checks
    /// whether the vhost itself is missing.
    pub vhost: Option<String>,
}

impl NotFound {
    /// A 404 on this request means `message`, unless the vhost is missing.
    pub fn new(message: impl Into<String>, vhost: &str) -> Self {
        NotFound {
            message: Some(message.into()),
            fallback: None,
            vhost: Some(vhost.to_owned()),
        }
    }

    /// A 404 on this request means `message` (no vhost involved).
    pub fn plain(message: impl Into<String>) -> Self {
        NotFound {
            message: Some(message.into()),
            fallback: None,
            vhost: None,
        }
    }
}

/// A logged-in client of one management API.
pub struct Client {
    agent: Agent,
    base: String,
    user: String,
    authorization: String,
}

impl Client {
    /// A client for the API at `url` (scheme, host, port and an optional path
    /// prefix); an https `url` is checked against `cacert` (PEM) if given, else
    /// against Mozilla's root certificates.
    pub fn new(url: &str, user: &str, password: &str, cacert: Option<&Path>) -> Result<Client> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--url must start with http:// or https:// (got '{url}')");
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("warrenctl/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(cacert)?)
            .build()
            .into();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Client {
            agent,
            base,
            user: user.to_owned(),
            authorization: format!("Basic {token}"),
        })
    }

    /// The API's base URL, as shown in messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (starting with `/api/`) and return its JSON.
    pub fn get(&self, path: &str, not_found: &NotFound) -> Result<Value> {
        self.request(Method::Get, path, None, not_found)
    }

    /// Sends one request; returns the response's JSON (Null for an empty body).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        not_found: &NotFound,
    ) -> Result<Value> {
        let (status, text) = self.raw(method, path, body)?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|_| {
                anyhow!(
                    "{} answered {method:?} {path} with something that is not JSON: is this the management API?",
                    self.base
                )
            });
        }
        Err(self.failure(status, &text, not_found))
    }

    /// One HTTP exchange: status and body text, or a transport error message.
    fn raw(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let auth = self.authorization.as_str();
        let result = match method {
            Method::Get => self
                .agent
                .get(&url)
                .header("authorization", auth)
                .header("accept", "application/json")
                .call(),
            Method::Delete => match body {
                // RabbitMQ's delete_member takes its node in a DELETE's body.
                Some(value) => self
                    .agent
                    .delete(&url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .force_send_body()
                    .send(&serde_json::to_vec(value)?[..]),
                None => self.agent.delete(&url).header("authorization", auth).call(),
            },
            Method::Put | Method::Post => {
                let bytes = match body {
                    Some(value) => serde_json::to_vec(value)?,
                    None => b"{}".to_vec(),
                };
                let builder = if method == Method::Put {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                builder
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .send(&bytes[..])
            }
        };
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        Ok((status, text))
    }

    /// A transport failure as one line.
    fn transport_error(&self, error: ureq::Error) -> anyhow::Error {
        let base = &self.base;
        match error {
            ureq::Error::Io(e) if is_unreachable(&e) => {
                anyhow!("cannot reach the management API at {base}: is the broker running?")
            }
            ureq::Error::ConnectionFailed => {
                anyhow!("cannot reach the management API at {base}: is the broker running?")
            }
            ureq::Error::HostNotFound => {
                anyhow!("cannot reach the management API at {base}: host not found")
            }
            ureq::Error::Timeout(_) => {
                anyhow!("the management API at {base} did not answer in time")
            }
            ureq::Error::Protocol(_) if base.starts_with("http://") => anyhow!(
                "{base} does not speak HTTP: is this the management port (15672) rather than AMQP (5672), and not https?"
            ),
            ureq::Error::Protocol(_) => anyhow!(
                "{base} does not speak HTTP: is this the management port (15672) rather than AMQP (5672)?"
            ),
            ureq::Error::BadUri(e) => anyhow!("bad --url '{base}': {e}"),
            ureq::Error::Io(e) => anyhow!("talking to the management API at {base}: {e}"),
            other => anyhow!("talking to the management API at {base}: {other}"),
        }
    }

    /// An HTTP error status as one line.
    fn failure(&self, status: u16, text: &str, not_found: &NotFound) -> anyhow::Error {
        let reason = api_reason(text);
        match status {
            401 => match reason.as_deref() {
                None | Some("Login failed") => anyhow!("login refused for user '{}'", self.user),
                Some(r) if r.starts_with("Not management user") => anyhow!(
                    "login refused for user '{}': it lacks a management tag",
                    self.user
                ),
                Some(r) => match &not_found.vhost {
                    Some(vhost) if self.vhost_missing(vhost) => {
                        anyhow!("vhost '{vhost}' not found")
                    }
                    Some(vhost) => {
                        anyhow!(
                            "user '{}' may not do this in vhost '{vhost}': {r}",
                            self.user
                        )
                    }
                    None => anyhow!("user '{}' may not do this: {r}", self.user),
                },
            },
            403 => anyhow!(
                "user '{}' may not do this: {}",
                self.user,
                reason.as_deref().unwrap_or("access refused")
            ),
            404 => self.not_found(reason, not_found),
            400 => anyhow!(
                "{}",
                reason.unwrap_or_else(|| "the management API refused the request (400)".into())
            ),
            _ => match reason {
                Some(r) => anyhow!("the management API answered {status}: {r}"),
                None => anyhow!("the management API answered {status}"),
            },
        }
    }

    /// The message for a 404: a missing vhost first, then the request's own.
    fn not_found(&self, reason: Option<String>, not_found: &NotFound) -> anyhow::Error {
        if let (Some("vhost_not_found"), Some(vhost)) = (reason.as_deref(), &not_found.vhost) {
            return anyhow!("vhost '{vhost}' not found");
        }
        let generic = matches!(reason.as_deref(), None | Some("Not Found"));
        if let (true, Some(vhost)) = (generic, &not_found.vhost)
            && self.vhost_missing(vhost)
        {
            return anyhow!("vhost '{vhost}' not found");
        }
        if let Some(message) = &not_found.message {
            return anyhow!("{message}");
        }
        match (&not_found.fallback, reason) {
            (Some(fallback), _) if generic => anyhow!("{fallback}"),
            (_, Some(r)) => anyhow!("{r}"),
            _ => anyhow!("not found"),
        }
    }

    /// Whether the API says this vhost does not exist (a probe after a
    /// bare 404 or 401, which RabbitMQ gives for objects in a missing vhost).
    fn vhost_missing(&self, vhost: &str) -> bool {
        let probe = format!("/api/vhosts/{}", seg(vhost));
        matches!(self.raw(Method::Get, &probe, None), Ok((404, _)))
    }
}

/// Connection-level errors that mean "nobody is listening there".
fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::TimedOut
    )
}

/// The `reason` of a management API error body (`{"error":..,"reason":..}`).
fn api_reason(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    match value.get("reason")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("amq.direct"), "amq.direct");
        assert_eq!(seg("a b/c#?"), "a%20b%2Fc%23%3F");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("ü"), "%C3%BC");
    }

    #[test]
    fn reasons_are_read_from_error_bodies() {
        assert_eq!(
            api_reason(r#"{"error":"bad_request","reason":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(api_reason("<html>"), None);
    }
}

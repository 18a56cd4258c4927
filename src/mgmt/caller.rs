//! HTTP basic auth against the broker's users, and the tags RabbitMQ requires:
//! `management` (or any tag that implies it) for the API at all, `monitoring`
//! to see every vhost's objects and every connection, `administrator` for
//! users, permissions, vhost changes and definitions.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::api::ApiError;
use crate::auth::{Kind, Permission, UserDef};
use crate::broker::Broker;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who they are.
    pub user: UserDef,
    broker: Arc<Broker>,
}

/// Why a request was not let in.
#[derive(Debug)]
pub enum Refusal {
    /// No credentials: 401 with an empty body and the challenge.
    Challenge,
    /// Wrong credentials.
    LoginFailed,
    /// Logged in, but without the management tag.
    NotManagement,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let challenge = [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"RabbitMQ Management\"",
        )];
        match self {
            Refusal::Challenge => (StatusCode::UNAUTHORIZED, challenge).into_response(),
            Refusal::LoginFailed => (
                StatusCode::UNAUTHORIZED,
                challenge,
                axum::Json(json!({"error": "not_authorized", "reason": "Login failed"})),
            )
                .into_response(),
            Refusal::NotManagement => {
                ApiError::not_authorised("Not management user").into_response()
            }
        }
    }
}

impl FromRequestParts<Arc<Broker>> for Caller {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        broker: &Arc<Broker>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(Refusal::Challenge)?;
        let (user, password) = basic_credentials(header.as_bytes()).ok_or(Refusal::LoginFailed)?;
        let user = broker
            .auth
            .check_password(&user, &password)
            .ok_or(Refusal::LoginFailed)?;
        let caller = Caller {
            user,
            broker: broker.clone(),
        };
        if !caller.has_any(&["management", "monitoring", "policymaker", "administrator"]) {
            return Err(Refusal::NotManagement);
        }
        Ok(caller)
    }
}

/// `Basic base64(user:password)`.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Caller {
    fn has_any(&self, tags: &[&str]) -> bool {
        self.user.tags.iter().any(|t| tags.contains(&t.as_str()))
    }

    /// Whether the caller sees everything (tags monitoring or administrator).
    pub fn is_monitor(&self) -> bool {
        self.has_any(&["monitoring", "administrator"])
    }

    /// 401 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.has_any(&["administrator"]) {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    /// 401 unless the caller may manage policies and parameters (tags
    /// policymaker or administrator).
    pub fn require_policymaker(&self) -> Result<(), ApiError> {
        if self.has_any(&["policymaker", "administrator"]) {
            Ok(())
        } else {
            Err(ApiError::not_authorised(
                "User not authorised to access object",
            ))
        }
    }

    /// 401 unless the caller may see everything.
    pub fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    /// Whether the caller may see objects of `vhost`: monitors see all, others
    /// the vhosts they have permissions in.
    pub fn sees_vhost(&self, vhost: &str) -> bool {
        self.is_monitor() || self.broker.auth.has_vhost_access(&self.user.name, vhost)
    }

    /// 401 unless the caller has permissions in `vhost` (RabbitMQ asks this of
    /// administrators too before they touch a vhost's objects).
    pub fn require_vhost_access(&self, vhost: &str) -> Result<(), ApiError> {
        if self.broker.auth.has_vhost_access(&self.user.name, vhost) {
            Ok(())
        } else {
            Err(ApiError::not_authorised(format!(
                "access to vhost '{vhost}' refused for user '{}'",
                self.user.name
            )))
        }
    }

    /// 401 unless the caller has `permission` on a resource, as an AMQP
    /// client with their credentials would need.
    pub fn require(
        &self,
        vhost: &str,
        permission: Permission,
        kind: Kind,
        name: &str,
    ) -> Result<(), ApiError> {
        self.require_vhost_access(vhost)?;
        self.broker
            .auth
            .access(&self.user.name, vhost)
            .check(permission, kind, name)
            // ACCESS_REFUSED with the AMQP text, which names the resource.
            .map_err(|e| ApiError::not_authorised(e.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(
            basic_credentials(b"Basic Z3Vlc3Q6Z3Vlc3Q="),
            Some(("guest".into(), "guest".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
    }
}

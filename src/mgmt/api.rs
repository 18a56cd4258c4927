//! What every handler shares: the error answer (RabbitMQ's
//! `{"error": ..., "reason": ...}` with its status) and the one mapping of
//! AMQP and registry refusals to it, reading a request body, and the bodiless
//! answers to writes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warren_codec::ReplyCode;

use crate::auth::RegistryError;
use crate::auth::registry::parse_tags;
use crate::error::AmqpError;
use crate::names::ConnectionId;

/// An error answer: a status and RabbitMQ's `{"error": ..., "reason": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) reason: String,
}

impl ApiError {
    /// 404 as RabbitMQ words it for any missing object or path.
    pub fn not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// 400 with a reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
        }
    }

    /// 400 with RabbitMQ's own error word (e.g. `page_out_of_range`).
    pub fn with_error(error: &'static str, reason: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error,
            reason,
        }
    }

    /// 401 for a user who lacks a tag or a permission.
    pub fn not_authorised(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.into(),
        }
    }

    /// 404 with RabbitMQ's `not_found` word and a reason naming what is missing.
    pub fn not_found_because(reason: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: reason.into(),
        }
    }
}

/// An AMQP refusal surfacing through the API: 401 "Access refused." for
/// access refused (a system name: `amq.*`, the default exchange), 404 with
/// the AMQP text for not found, 400 with it for anything else.
impl From<AmqpError> for ApiError {
    fn from(error: AmqpError) -> Self {
        match error.code {
            ReplyCode::AccessRefused => Self::not_authorised("Access refused."),
            ReplyCode::NotFound => Self::not_found_because(error.text),
            _ => Self::bad_request(error.text),
        }
    }
}

/// A registry refusal (bad hash or algorithm, bad regex, unknown user or
/// vhost): 400 with its text.
impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "reason": self.reason});
        (self.status, axum::Json(body)).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T = Response> = Result<T, ApiError>;

/// A JSON request body, parsed whatever its content type (RabbitMQ does not
/// insist on one); not JSON is RabbitMQ's 400 `not_json`.
pub fn parse_body(body: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// RabbitMQ's 400 for missing keys: `[{key_missing,write},{key_missing,read}]`.
pub fn require_keys(body: &serde_json::Map<String, Value>, keys: &[&str]) -> ApiResult<()> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("[{}]", missing.join(","))))
    }
}

/// 201 Created for a new object, 204 No Content for an updated one.
pub fn created_or_updated(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// 204 No Content when the object was there to delete, else 404.
pub fn deleted(found: bool) -> ApiResult {
    if found {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

/// A string field of a request body.
pub fn str_field<'a>(body: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// A boolean field (RabbitMQ also takes "true"/"false" strings).
pub fn bool_field(body: &serde_json::Map<String, Value>, key: &str, default: bool) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// The `tags` field: a comma-separated string or an array of strings; `None`
/// when absent or neither.
pub fn tags_field(body: &serde_json::Map<String, Value>) -> Option<Vec<String>> {
    match body.get("tags") {
        Some(Value::String(s)) => Some(parse_tags(s)),
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// The connection id the API declares and binds as: no AMQP connection has
/// it, so the API cannot create exclusive queues and is refused by others'.
pub const API_CONNECTION: ConnectionId = ConnectionId(0);

/// `if-unused` / `if-empty` on DELETE.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
}

impl DeleteQuery {
    /// `if-unused=true`: delete only what nothing uses.
    pub fn if_unused(&self) -> bool {
        self.if_unused.as_deref() == Some("true")
    }

    /// `if-empty=true`: delete only a queue without messages ready.
    pub fn if_empty(&self) -> bool {
        self.if_empty.as_deref() == Some("true")
    }
}

//! `/metrics`.
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
/// stub
pub async fn metrics() -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}

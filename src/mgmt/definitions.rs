//! `/api/definitions`.
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
/// stub
pub async fn export() -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
/// stub
pub async fn import() -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
/// stub
pub async fn export_vhost() -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
/// stub
pub async fn import_vhost() -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}

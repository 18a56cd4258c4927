//! The management web page: one HTML page, its script, style sheet and icon,
//! written by hand and embedded in the binary (`include_str!`), so nothing is
//! fetched from the internet and there is no build step. The page is a client
//! of the management API on the same origin (HTTP basic auth, the same users
//! and tags); it lives at `/`, its files under `/ui/`.
//!
//! Every answer carries a Content-Security-Policy that allows only this
//! origin's scripts and styles (no inline script, no `eval`, no inline event
//! handlers) and API calls to this origin only.

use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Only same-origin scripts, styles, images and API calls.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// `GET /`: the page.
pub async fn index() -> Response {
    respond(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /ui/{file}`: the page's script, style sheet and icon.
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => respond(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => respond(STYLE_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => respond(FAVICON_SVG, "image/svg+xml"),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn respond(body: &'static str, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // The page changes with the binary: revalidate, never serve stale.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_page_and_its_files_with_a_csp() {
        let page = index().await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("an ASCII header")
                .contains("script-src 'self'")
        );
        for (file, kind) in [
            ("app.js", "text/javascript"),
            ("style.css", "text/css"),
            ("favicon.svg", "image/svg+xml"),
        ] {
            let answer = asset(Path(file.to_owned())).await;
            assert_eq!(answer.status(), StatusCode::OK, "{file}");
            assert!(
                answer.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .expect("an ASCII header")
                    .starts_with(kind)
            );
        }
        let missing = asset(Path("../Cargo.toml".to_owned())).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_has_no_inline_script_or_handlers() {
        // The CSP would block them; keep the page honest about it.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.to_lowercase().contains(" onclick="));
        assert!(!APP_JS.contains("innerHTML"));
        assert!(!APP_JS.contains("eval("));
    }
}

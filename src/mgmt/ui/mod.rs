//! The management web page: one HTML page, its scripts, style sheet and icon,
//! written by hand and embedded in the binary (`include_str!`), so nothing is
//! fetched from the internet and there is no build step. The page is a client
//! of the management API on the same origin (HTTP basic auth, the same users
//! and tags); it lives at `/`, its files under `/ui/`. The script is native ES
//! modules: `main.js` (the page shell) imports the others, one file a job.
//!
//! Every answer carries a Content-Security-Policy that allows only this
//! origin's scripts and styles (no inline script, no `eval`, no inline event
//! handlers) and API calls to this origin only.

use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const MAIN_JS: &str = include_str!("assets/main.js");
const DOM_JS: &str = include_str!("assets/dom.js");
const FORMAT_JS: &str = include_str!("assets/format.js");
const API_JS: &str = include_str!("assets/api.js");
const WIDGETS_JS: &str = include_str!("assets/widgets.js");
const CHARTS_JS: &str = include_str!("assets/charts.js");
const OVERVIEW_JS: &str = include_str!("assets/overview.js");
const QUEUES_JS: &str = include_str!("assets/queues.js");
const EXCHANGES_JS: &str = include_str!("assets/exchanges.js");
const CONNECTIONS_JS: &str = include_str!("assets/connections.js");
const ADMIN_JS: &str = include_str!("assets/admin.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Every script, by its name under `/ui/`.
#[cfg(test)]
const SCRIPTS: [(&str, &str); 11] = [
    ("main.js", MAIN_JS),
    ("dom.js", DOM_JS),
    ("format.js", FORMAT_JS),
    ("api.js", API_JS),
    ("widgets.js", WIDGETS_JS),
    ("charts.js", CHARTS_JS),
    ("overview.js", OVERVIEW_JS),
    ("queues.js", QUEUES_JS),
    ("exchanges.js", EXCHANGES_JS),
    ("connections.js", CONNECTIONS_JS),
    ("admin.js", ADMIN_JS),
];

/// Only same-origin scripts, styles, images and API calls.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// `GET /`: the page.
pub async fn index() -> Response {
    respond(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /ui/{file}`: the page's scripts, style sheet and icon.
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "main.js" => respond(MAIN_JS, JS),
        "dom.js" => respond(DOM_JS, JS),
        "format.js" => respond(FORMAT_JS, JS),
        "api.js" => respond(API_JS, JS),
        "widgets.js" => respond(WIDGETS_JS, JS),
        "charts.js" => respond(CHARTS_JS, JS),
        "overview.js" => respond(OVERVIEW_JS, JS),
        "queues.js" => respond(QUEUES_JS, JS),
        "exchanges.js" => respond(EXCHANGES_JS, JS),
        "connections.js" => respond(CONNECTIONS_JS, JS),
        "admin.js" => respond(ADMIN_JS, JS),
        "style.css" => respond(STYLE_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => respond(FAVICON_SVG, "image/svg+xml"),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

const JS: &str = "text/javascript; charset=utf-8";

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
        let scripts = SCRIPTS.iter().map(|(file, _)| (*file, "text/javascript"));
        for (file, kind) in
            scripts.chain([("style.css", "text/css"), ("favicon.svg", "image/svg+xml")])
        {
            let answer = asset(Path(file.to_owned())).await;
            assert_eq!(answer.status(), StatusCode::OK, "{file}");
            assert!(
                answer.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .expect("an ASCII header")
                    .starts_with(kind),
                "{file}"
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
        assert!(INDEX_HTML.contains(r#"<script type="module" src="/ui/main.js"></script>"#));
        for (file, script) in SCRIPTS {
            assert!(!script.contains("innerHTML"), "{file}");
            assert!(!script.contains("eval("), "{file}");
        }
    }

    #[test]
    fn every_script_is_served_and_every_import_names_one() {
        let served: Vec<&str> = SCRIPTS.iter().map(|(file, _)| *file).collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/mgmt/ui/assets");
        for entry in std::fs::read_dir(dir).expect("the assets folder") {
            let name = entry.expect("a folder entry").file_name();
            let name = name.to_str().expect("a UTF-8 name");
            if name.ends_with(".js") {
                assert!(served.contains(&name), "{name} is not served");
            }
        }
        for (file, script) in SCRIPTS {
            for import in script.split("from './").skip(1) {
                let target = import.split('\'').next().unwrap_or_default();
                assert!(served.contains(&target), "{file} imports {target}");
            }
        }
    }
}

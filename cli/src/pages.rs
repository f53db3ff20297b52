//! The reference web pages: `GET /` (ask for a link), `GET /reset` (choose a password) and
//! `GET /change` (change a known one), and the API's OpenAPI document at `GET /openapi.json`.
//! Plain HTML, CSS and JavaScript embedded in the binary: no build step, no inline script
//! or style, no remote resources. `tests/browser/flow.mjs` walks them in Chromium.

use axum::Router;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, get};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use pwreset_core::http::Problem;

const INDEX: &str = include_str!("../assets/index.html");
const RESET: &str = include_str!("../assets/reset.html");
const CHANGE: &str = include_str!("../assets/change.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/favicon.svg");
/// The repository's `openapi.yaml` as JSON (converted by `build.rs`).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Scripts and styles only from this origin, no inline code, no framing, no referrer: a
/// reset page holds a live token.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`, `GET /reset`, `GET /change`, their assets and `GET /openapi.json`.
pub fn router() -> Router {
    const HTML: &str = "text/html; charset=utf-8";
    Router::new()
        .route("/", page(HTML, INDEX))
        .route("/index.html", page(HTML, INDEX))
        .route("/reset", page(HTML, RESET))
        .route("/change", page(HTML, CHANGE))
        .route(
            "/assets/app.js",
            page("text/javascript; charset=utf-8", SCRIPT),
        )
        .route("/assets/app.css", page("text/css; charset=utf-8", STYLE))
        .route("/assets/favicon.svg", page("image/svg+xml", ICON))
        .route("/favicon.ico", page("image/svg+xml", ICON))
        .route("/openapi.json", page("application/json", OPENAPI_JSON))
}

/// One static page: `GET` and `HEAD`, any other method a 405 problem.
fn page(content_type: &'static str, body: &'static str) -> MethodRouter {
    get(move || async move { asset(content_type, body) })
        .fallback(|| async { Problem::method_not_allowed("GET, HEAD") })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

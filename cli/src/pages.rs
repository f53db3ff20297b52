//! The reference web pages: `GET /` (ask for a link) and `GET /reset` (choose a password),
//! and the API's OpenAPI document at `GET /openapi.json`.
//! Plain HTML, CSS and JavaScript embedded in the binary: no build step, no inline script
//! or style, no remote resources. `tests/browser/flow.mjs` walks them in Chromium.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use pwreset_core::http::{Body, Problem, Response};

const INDEX: &str = include_str!("../assets/index.html");
const RESET: &str = include_str!("../assets/reset.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/favicon.svg");
/// The repository's `openapi.yaml` as JSON (converted by `build.rs`).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Scripts and styles only from this origin, no inline code, no framing, no referrer: a
/// reset page holds a live token.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_owned()));
    *response.status_mut() = StatusCode::OK;
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

/// Answers the page routes; `None` for everything else.
pub fn handle(method: &Method, path: &str) -> Option<Response<Body>> {
    let page = match path {
        "/" | "/index.html" => asset("text/html; charset=utf-8", INDEX),
        "/reset" => asset("text/html; charset=utf-8", RESET),
        "/assets/app.js" => asset("text/javascript; charset=utf-8", SCRIPT),
        "/assets/app.css" => asset("text/css; charset=utf-8", STYLE),
        "/assets/favicon.svg" | "/favicon.ico" => asset("image/svg+xml", ICON),
        "/openapi.json" => asset("application/json", OPENAPI_JSON),
        _ => return None,
    };
    if method == Method::GET || method == Method::HEAD {
        Some(page)
    } else {
        Some(Problem::method_not_allowed("GET, HEAD").into_response())
    }
}

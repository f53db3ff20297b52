//! The HTTP API as axum `Router`s, one per use case ([`request_routes`],
//! [`confirm_routes`]): each Lambda function runs its own under `lambda_http::run` (API
//! Gateway, a function URL, `cargo lambda watch`), so another function's route is a 404 by
//! construction, and `pwreset serve` merges them with its pages under `axum::serve`. Every
//! error any route answers is a [`Problem`] document.

mod extract;
mod problem;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower::util::MapRequest;

pub use extract::{ApiJson, ClientIp, JwtSubject, PeerIp, RequestLocale, client_ip};
pub use problem::{Problem, ProblemCode};

use crate::service::{ChangeAttempt, ChangePassword, ConfirmReset, RequestReset, ResetAsk};

/// Bodies above this are refused before parsing; exactly this much is accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `POST /password-reset`: the `request-reset` function's one route.
pub fn request_routes(service: Arc<RequestReset>) -> Router {
    Router::new()
        .route("/password-reset", post(request_reset).fallback(post_only))
        .with_state(service)
}

/// `POST /password-reset/verify` and `POST /password-reset/confirm`: `confirm-reset`'s.
pub fn confirm_routes(service: Arc<ConfirmReset>) -> Router {
    Router::new()
        .route("/password-reset/verify", post(verify).fallback(post_only))
        .route("/password-reset/confirm", post(confirm).fallback(post_only))
        .with_state(service)
}

/// `POST /password-change`: the `change-password` function's one route.
pub fn change_routes(service: Arc<ChangePassword>) -> Router {
    Router::new()
        .route(
            "/password-change",
            post(change_password).fallback(post_only),
        )
        .with_state(service)
}

/// The whole API: every use case's routes, as `pwreset serve` serves them.
pub fn api_routes(
    request: Arc<RequestReset>,
    confirm: Arc<ConfirmReset>,
    change: Arc<ChangePassword>,
) -> Router {
    request_routes(request)
        .merge(confirm_routes(confirm))
        .merge(change_routes(change))
}

/// What every deployment wraps around its routes: a problem document for any other path,
/// the headers every response carries, one log line per request (route, method, status,
/// latency; never the body, the query string, a token or a password).
pub fn app(routes: Router) -> Served<Router> {
    Served {
        inner: routes.fallback(unrouted),
    }
}

/// [`app`]'s wrapper: once around the whole router, so a request pays for it once (a
/// router layer wraps, and clones per request, every route's boxed service).
#[derive(Clone, Debug)]
pub struct Served<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Served<S>
where
    S: tower::Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ServedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The routed path (the query string, which may hold a token, is not part of it);
        // an API path is a constant, so the usual request copies nothing.
        let path = match API_PATHS.iter().find(|p| **p == request.uri().path()) {
            Some(api_path) => Cow::Borrowed(*api_path),
            None => Cow::Owned(request.uri().path().to_owned()),
        };
        ServedFuture {
            started: Instant::now(),
            method: request.method().clone(),
            path,
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Served`]'s response on its way out.
    pub struct ServedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: http::Method,
        path: Cow<'static, str>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ServedFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        shared_headers(&mut response);
        // Any path that matched nothing is logged as "unmatched", not as whatever the
        // client sent.
        let unmatched = response.status() == StatusCode::NOT_FOUND
            && response.headers().get(CONTENT_TYPE)
                == Some(&HeaderValue::from_static(PROBLEM_JSON));
        tracing::info!(
            event = "request",
            route = if unmatched { "unmatched" } else { &**this.path },
            method = %this.method,
            status = response.status().as_u16(),
            latency_ms = this.started.elapsed().as_secs_f64() * 1000.0,
        );
        Poll::Ready(Ok(response))
    }
}

/// No response is cached or MIME-sniffed; a response that set either itself keeps its own.
/// (Written here rather than tower-http's header layer: the confirm-reset zip has no room
/// for another crate.)
fn shared_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
}

/// A service that rewrites each request's path before the router sees it.
pub type PathRewrite<B> = MapRequest<Served<Router>, fn(http::Request<B>) -> http::Request<B>>;
/// What a Lambda function hands to `lambda_http::run`.
pub type LambdaApp = PathRewrite<lambda_http::Body>;
/// What `pwreset serve` hands to `axum::serve`.
pub type DevServerApp = PathRewrite<axum::body::Body>;

/// The app as a Lambda function serves it: routed on the path from the API's own first
/// segment on ([`deployment_path`]).
pub fn for_lambda(routes: Router) -> LambdaApp {
    MapRequest::new(app(routes), deployment_path)
}

/// The app as `pwreset serve` serves it: the paths exactly as in the contract, a trailing
/// slash ignored.
pub fn for_dev_server(routes: Router) -> DevServerApp {
    MapRequest::new(app(routes), without_trailing_slash)
}

/// Behind an HTTP API stage the path starts with the stage (`/prod/password-reset`), through
/// `cargo lambda watch` with the function URL prefix (`/lambda-url/request-reset/…`): the
/// router sees the path from its last `/password-reset` (or `/password-change`) segment on,
/// so the same binary
/// answers everywhere. A path without one is left as it is (and answers 404).
pub fn deployment_path<B>(request: http::Request<B>) -> http::Request<B> {
    const BASES: [&str; 2] = ["/password-reset", "/password-change"];
    let path = trimmed(request.uri().path());
    let start = BASES
        .iter()
        .flat_map(|base| {
            path.rmatch_indices(base)
                .map(|(at, _)| at)
                .find(|at| matches!(path.as_bytes().get(at + base.len()), None | Some(b'/')))
        })
        .max();
    match start {
        Some(at) => {
            let api_path = path[at..].to_owned();
            with_path(request, &api_path)
        }
        None => without_trailing_slash(request),
    }
}

/// `/password-reset/` routes as `/password-reset`; `/` stays `/`.
pub fn without_trailing_slash<B>(request: http::Request<B>) -> http::Request<B> {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let path = trimmed(path).to_owned();
        with_path(request, &path)
    } else {
        request
    }
}

fn trimmed(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

fn with_path<B>(mut request: http::Request<B>, path: &str) -> http::Request<B> {
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = target.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Every route of the API, whichever function serves it.
pub const API_PATHS: [&str; 4] = [
    "/password-reset",
    "/password-reset/verify",
    "/password-reset/confirm",
    "/password-change",
];

/// A request no route of this router took. Another method on one of the API's paths is a
/// 405 wherever it lands: behind API Gateway, every request no route key matches (`GET
/// /password-reset/verify`, say) goes to the `$default` route, which `request-reset`
/// serves. A `POST` to another function's path is a 404 here (it is not served here), and
/// anything else a 404.
async fn unrouted(method: http::Method, uri: Uri) -> Problem {
    if method != http::Method::POST && API_PATHS.contains(&uri.path()) {
        Problem::method_not_allowed("POST")
    } else {
        Problem::not_found()
    }
}

async fn post_only() -> Problem {
    Problem::method_not_allowed("POST")
}

/// A JSON response; [`app`] adds the headers every response carries.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    // Serialising our own plain structs cannot fail; fall back to an empty object anyway.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(axum::body::Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

#[derive(Deserialize)]
struct ResetRequestBody {
    email: String,
    /// One of `RESET_RETURN_URLS`: the link carries it back to the page. Absent is none;
    /// present it must be a string (`null` is `invalid_request`, like any other field).
    #[serde(default, deserialize_with = "present_string")]
    return_to: Option<String>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct VerifyBody {
    uid: String,
    token: String,
}

#[derive(Deserialize)]
struct ConfirmBody {
    uid: String,
    token: String,
    new_password: String,
}

#[derive(Deserialize)]
struct ChangeBody {
    email: String,
    old_password: String,
    new_password: String,
}

#[derive(Serialize)]
struct StatusBody {
    status: &'static str,
}

#[derive(Serialize)]
struct VerifiedBody<'a> {
    valid: bool,
    expires_at: String,
    /// The account's stored address: the page's hidden `autocomplete="username"` field, so a
    /// password manager saves the new password under the right entry. Only the holder of a
    /// live link (the mailbox's owner) sees it.
    email: &'a str,
}

async fn request_reset(
    State(service): State<Arc<RequestReset>>,
    ClientIp(ip): ClientIp,
    RequestLocale(locale): RequestLocale,
    ApiJson(body): ApiJson<ResetRequestBody>,
) -> Result<Response, Problem> {
    service
        .ask(ResetAsk {
            email: &body.email,
            client_ip: ip,
            locale,
            return_to: body.return_to.as_deref(),
        })
        .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &StatusBody { status: "accepted" },
    ))
}

async fn verify(
    State(service): State<Arc<ConfirmReset>>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, Problem> {
    let verified = service.verify(&body.uid, &body.token).await?;
    Ok(json_response(
        StatusCode::OK,
        &VerifiedBody {
            valid: true,
            expires_at: rfc3339(verified.expires_at),
            email: verified.user.email.as_str(),
        },
    ))
}

async fn confirm(
    State(service): State<Arc<ConfirmReset>>,
    RequestLocale(locale): RequestLocale,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, Problem> {
    service
        .confirm_in(&body.uid, &body.token, &body.new_password, locale)
        .await
        .map_err(|err| Problem::from(err).in_locale(locale))?;
    Ok(json_response(
        StatusCode::OK,
        &StatusBody {
            status: "password_reset",
        },
    ))
}

async fn change_password(
    State(service): State<Arc<ChangePassword>>,
    ClientIp(ip): ClientIp,
    JwtSubject(subject): JwtSubject,
    RequestLocale(locale): RequestLocale,
    ApiJson(body): ApiJson<ChangeBody>,
) -> Result<Response, Problem> {
    service
        .change(ChangeAttempt {
            email: &body.email,
            old_password: &body.old_password,
            new_password: &body.new_password,
            client_ip: ip,
            subject: subject.as_deref(),
            locale,
        })
        .await
        .map_err(|err| Problem::from(err).in_locale(locale))?;
    Ok(json_response(
        StatusCode::OK,
        &StatusBody {
            status: "password_changed",
        },
    ))
}

/// `2026-12-06T05:00:00Z`: UTC, whole seconds, as `time`'s RFC 3339 formatter writes it
/// (a property test holds the two equal), written digit by digit rather than through that
/// formatter's generic machinery on every verify. Outside years 0–9999, which RFC 3339
/// cannot write, the epoch.
pub fn rfc3339(unix: i64) -> String {
    const EPOCH: &str = "1970-01-01T00:00:00Z";
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return EPOCH.to_owned();
    };
    let Ok(year) = u16::try_from(t.year()) else {
        return EPOCH.to_owned();
    };
    if year > 9999 {
        return EPOCH.to_owned();
    }
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: u16, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, u8::from(t.month()).into(), 2);
    put(8, t.day().into(), 2);
    put(11, t.hour().into(), 2);
    put(14, t.minute().into(), 2);
    put(17, t.second().into(), 2);
    // Digits and ASCII punctuation only: always UTF-8.
    String::from_utf8(text.to_vec()).unwrap_or_else(|_| EPOCH.to_owned())
}

#[cfg(test)]
mod tests;

//! The HTTP API, written once over `lambda_http`'s `Request`/`Response` (the `http` crate's
//! types) so API Gateway, a function URL, `cargo lambda watch` and `pwreset serve` all run
//! this very code. Every error becomes an RFC 9457 problem document here, in one place.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, StatusCode};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use lambda_http::{Body, Request, Response};

use crate::ports::StoreError;
use crate::service::{ConfirmError, Confirms, RequestError, Requests, VerifyError};
use crate::token::TokenRejection;

/// Bodies above this are refused before parsing; exactly this much is accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    RequestReset,
    Verify,
    Confirm,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Self::RequestReset => "POST /password-reset",
            Self::Verify => "POST /password-reset/verify",
            Self::Confirm => "POST /password-reset/confirm",
        }
    }
}

/// How paths map to routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// The dev server: the paths exactly as in the contract.
    Exact,
    /// A Lambda function: the path's last segment(s), so the same binary answers behind an
    /// HTTP API stage, a function URL and `cargo lambda watch` (`/lambda-url/<fn>/…`).
    LastSegments,
}

/// The dev server puts the TCP peer's address here; in Lambda the source IP comes from API
/// Gateway's request context. A client-supplied `X-Forwarded-For` is never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIp(pub IpAddr);

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Option<String>,
    pub reasons: Option<Vec<String>>,
    pub retry_after_secs: Option<u64>,
    pub allow: Option<&'static str>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [String]>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self {
            status,
            code,
            title,
            detail: None,
            reasons: None,
            retry_after_secs: None,
            allow: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is not valid",
        )
        .with_detail(detail)
    }

    pub fn invalid_email() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "The e-mail address is not valid",
        )
        .with_detail("Check the address for typos: it needs one @ and no spaces or line breaks.")
    }

    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "This reset link is not valid",
        )
        .with_detail(
            "The link may have been used already, or the password was changed since it was sent. Ask for a new link.",
        )
    }

    pub fn expired_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "expired_token",
            "This reset link has expired",
        )
        .with_detail("Ask for a new link.")
    }

    pub fn weak_password(reasons: Vec<String>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
            "The new password is not strong enough",
        )
        .with_detail("Choose another password; your reset link still works.");
        problem.reasons = Some(reasons);
        problem
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
        )
        .with_detail(format!("Send at most {MAX_BODY_BYTES} bytes."))
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The request body must be JSON",
        )
        .with_detail("Send Content-Type: application/json.")
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
        )
        .with_detail("Wait a little before asking again.");
        problem.retry_after_secs = Some(retry_after_secs.max(1));
        problem
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is nothing at this address",
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut problem = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here",
        );
        problem.allow = Some(allow);
        problem
    }

    pub fn unavailable() -> Self {
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service is temporarily unavailable",
        )
        .with_detail("Nothing was changed. Try again in a moment.");
        problem.retry_after_secs = Some(1);
        problem
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side",
        )
        .with_detail("Nothing was changed. Try again in a moment.")
    }

    pub fn into_response(self) -> Response<Body> {
        let body = ProblemBody {
            kind: format!("urn:pwreset:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: self.detail.as_deref(),
            reasons: self.reasons.as_deref(),
        };
        let mut response = json_response(self.status, &body);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(reason) => {
                tracing::warn!(event = "dependency_unavailable", %reason);
                Self::unavailable()
            }
            StoreError::Fault(reason) => {
                tracing::error!(event = "store_fault", %reason);
                Self::internal()
            }
        }
    }
}

impl From<TokenRejection> for Problem {
    fn from(rejection: TokenRejection) -> Self {
        match rejection {
            TokenRejection::Invalid => Self::invalid_token(),
            TokenRejection::Expired => Self::expired_token(),
        }
    }
}

impl From<RequestError> for Problem {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::InvalidEmail => Self::invalid_email(),
            RequestError::RateLimited { retry_after_secs } => Self::rate_limited(retry_after_secs),
            RequestError::Store(store) => store.into(),
        }
    }
}

impl From<VerifyError> for Problem {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Token(t) => t.into(),
            VerifyError::Store(s) => s.into(),
        }
    }
}

impl From<ConfirmError> for Problem {
    fn from(err: ConfirmError) -> Self {
        match err {
            ConfirmError::Token(t) => t.into(),
            ConfirmError::WeakPassword { reasons } => Self::weak_password(reasons),
            ConfirmError::Store(s) => s.into(),
            ConfirmError::Hash(h) => {
                tracing::error!(event = "hashing_failed", error = %h);
                Self::internal()
            }
            ConfirmError::PolicyTask(reason) => {
                tracing::error!(event = "password_check_failed", %reason);
                Self::internal()
            }
        }
    }
}

/// A JSON response with the headers every response carries.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serialising our own plain structs cannot fail; fall back to an empty object anyway.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Size, then media type, then JSON shape — in that order, as the contract says.
pub fn read_json<T: DeserializeOwned>(request: &Request) -> Result<T, Problem> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::payload_too_large());
    }
    if !is_json(request.headers().get(CONTENT_TYPE)) {
        return Err(Problem::unsupported_media_type());
    }
    // serde's messages can quote the input (a password); never echo them.
    serde_json::from_slice(body).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "The body is not well-formed JSON."
            }
            _ => "The body is JSON but not the expected object: check field names and that each value is a string.",
        };
        Problem::invalid_request(what)
    })
}

/// `application/json`, with parameters such as `; charset=utf-8` allowed.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(JSON))
}

/// The client's address: the dev server's TCP peer, or API Gateway's source IP.
pub fn client_ip(request: &Request) -> Option<IpAddr> {
    if let Some(PeerIp(ip)) = request.extensions().get::<PeerIp>() {
        return Some(*ip);
    }
    let source = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.clone(),
        _ => None,
    };
    // Some tools write the source as a CIDR ("192.0.2.1/32"); the address is what counts.
    source.and_then(|ip| ip.split('/').next().and_then(|ip| ip.trim().parse().ok()))
}

#[derive(Deserialize)]
struct ResetRequestBody {
    email: String,
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

#[derive(Serialize)]
struct StatusBody {
    status: &'static str,
}

#[derive(Serialize)]
struct VerifiedBody {
    valid: bool,
    expires_at: String,
}

/// The API: whichever use cases this process serves. A Lambda function serves one part;
/// its other routes answer 404.
#[derive(Debug, Clone)]
pub struct Api {
    request: Option<Arc<dyn Requests>>,
    confirm: Option<Arc<dyn Confirms>>,
    matching: PathMatch,
}

impl Api {
    pub fn new(
        request: Option<Arc<dyn Requests>>,
        confirm: Option<Arc<dyn Confirms>>,
        matching: PathMatch,
    ) -> Self {
        Self {
            request,
            confirm,
            matching,
        }
    }

    pub fn route_of(&self, path: &str) -> Option<Route> {
        let path = path.split('?').next().unwrap_or_default();
        let trimmed = path.trim_end_matches('/');
        let route = match self.matching {
            PathMatch::Exact => match trimmed {
                "/password-reset" => Some(Route::RequestReset),
                "/password-reset/verify" => Some(Route::Verify),
                "/password-reset/confirm" => Some(Route::Confirm),
                _ => None,
            },
            PathMatch::LastSegments => {
                let mut segments = trimmed.rsplit('/');
                match (segments.next(), segments.next()) {
                    (Some("password-reset"), _) => Some(Route::RequestReset),
                    (Some("verify"), Some("password-reset")) => Some(Route::Verify),
                    (Some("confirm"), Some("password-reset")) => Some(Route::Confirm),
                    _ => None,
                }
            }
        };
        route.filter(|route| match route {
            Route::RequestReset => self.request.is_some(),
            Route::Verify | Route::Confirm => self.confirm.is_some(),
        })
    }

    /// Answers one request and logs one line: route, status, latency. Never the body, the
    /// query string, a token or a password.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let route = self.route_of(request.uri().path());
        let response = match route {
            None => Problem::not_found().into_response(),
            Some(_) if method != Method::POST => {
                Problem::method_not_allowed("POST").into_response()
            }
            Some(route) => self
                .dispatch(route, &request)
                .await
                .unwrap_or_else(Problem::into_response),
        };
        tracing::info!(
            event = "request",
            route = route.map_or("unmatched", Route::label),
            method = %method,
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
        response
    }

    async fn dispatch(&self, route: Route, request: &Request) -> Result<Response<Body>, Problem> {
        match (route, &self.request, &self.confirm) {
            (Route::RequestReset, Some(service), _) => {
                let body: ResetRequestBody = read_json(request)?;
                service.request(&body.email, client_ip(request)).await?;
                Ok(json_response(
                    StatusCode::ACCEPTED,
                    &StatusBody { status: "accepted" },
                ))
            }
            (Route::Verify, _, Some(service)) => {
                let body: VerifyBody = read_json(request)?;
                let verified = service.verify(&body.uid, &body.token).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &VerifiedBody {
                        valid: true,
                        expires_at: rfc3339(verified.expires_at),
                    },
                ))
            }
            (Route::Confirm, _, Some(service)) => {
                let body: ConfirmBody = read_json(request)?;
                service
                    .confirm(&body.uid, &body.token, &body.new_password)
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    &StatusBody {
                        status: "password_reset",
                    },
                ))
            }
            _ => Err(Problem::not_found()),
        }
    }
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests;

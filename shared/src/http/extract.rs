//! The extractors every JSON route uses: the body checks in the contract's order (size →
//! media type → JSON shape), each refusal a problem document, and the client's address.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http_body_util::BodyExt as _;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;

use super::{JSON, MAX_BODY_BYTES, Problem};
use crate::i18n::Locale;

/// A JSON body, read at most [`MAX_BODY_BYTES`] deep and parsed into `T`; any failure is
/// the problem document the contract names, never serde's message (it can quote the input,
/// a password).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Problem> {
        let (parts, body) = request.into_parts();
        let bytes = read_capped(body).await?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Problem::payload_too_large());
        }
        if !is_json(parts.headers.get(CONTENT_TYPE)) {
            return Err(Problem::unsupported_media_type());
        }
        // An object, not an array: serde would read `["a@b.org", …]` into a struct by
        // position, a shape the contract does not have.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(Problem::invalid_request(NOT_THE_OBJECT));
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|err| {
            let what = match err.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "The body is not well-formed JSON."
                }
                _ => NOT_THE_OBJECT,
            };
            Problem::invalid_request(what)
        })
    }
}

const NOT_THE_OBJECT: &str = "The body is JSON but not the expected object: check field names and that each value is a string.";

/// `application/json`, with parameters such as `; charset=utf-8` allowed.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(JSON))
}

/// Reads at most `MAX_BODY_BYTES + 1` bytes: enough to tell "too large", never more.
async fn read_capped(mut body: Body) -> Result<Vec<u8>, Problem> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| Problem::invalid_request("The request body could not be read."))?;
        if let Ok(data) = frame.into_data() {
            let room = (MAX_BODY_BYTES + 1).saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
            if bytes.len() > MAX_BODY_BYTES {
                // Boxed: its timer would otherwise sit in every request's future (960 → 776 bytes).
                Box::pin(drain(body)).await;
                break;
            }
        }
    }
    Ok(bytes)
}

/// After an oversized body, read and discard a bounded amount more (at most 1 MiB, for at
/// most 2 s) so an ordinary client that is still sending sees the 413 instead of a broken
/// pipe; anything bigger or slower gets the answer and a closed connection. (In Lambda the
/// body is already in memory and this returns at once.)
async fn drain(mut body: Body) {
    const DRAIN_BYTES: usize = 1024 * 1024;
    let mut discarded = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                discarded += data.len();
                if discarded > DRAIN_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

/// The dev server puts the TCP peer's address here; in Lambda the source IP comes from API
/// Gateway's request context. A client-supplied `X-Forwarded-For` is never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIp(pub IpAddr);

/// The client's address: the dev server's TCP peer, or the HTTP API's (or function URL's)
/// source IP; `None`
/// when neither is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions)))
    }
}

/// See [`ClientIp`].
pub fn client_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    if let Some(PeerIp(ip)) = extensions.get::<PeerIp>() {
        return Some(*ip);
    }
    let source = match extensions.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        _ => None,
    };
    // Some tools write the source as a CIDR ("192.0.2.1/32"); the address is what counts.
    source.and_then(|ip| ip.split('/').next().and_then(|ip| ip.trim().parse().ok()))
}

/// The `sub` claim of a JWT the HTTP API's authorizer checked (API Gateway puts the claims
/// in the request context); `None` with no authorizer, and always on the dev server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSubject(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for JwtSubject {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let subject = match parts.extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref())
                .and_then(|jwt| jwt.claims.get("sub").cloned()),
            _ => None,
        };
        Ok(Self(subject))
    }
}

/// The language the request asks for (`Accept-Language`, [`Locale::negotiate`]): the
/// policy's `reasons` are written in it, and the mail a request leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLocale(pub Locale);

impl<S: Send + Sync> FromRequestParts<S> for RequestLocale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Ok(Self(Locale::negotiate(header)))
    }
}

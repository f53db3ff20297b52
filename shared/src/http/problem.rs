//! RFC 9457 problem documents: every error any route answers, built in one place.

use axum::response::{IntoResponse, Response};
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use super::{MAX_BODY_BYTES, PROBLEM_JSON, json_response};
use crate::i18n::Locale;
use crate::policy::Reason;
use crate::ports::StoreError;
use crate::service::{ChangeError, ConfirmError, RequestError, VerifyError};
use crate::token::TokenRejection;

/// Every problem `code` pwreset answers, with its status and title: the one list the
/// handlers, the tests and the OpenAPI contract test read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemCode {
    InvalidRequest,
    InvalidEmail,
    InvalidReturnTo,
    InvalidToken,
    ExpiredToken,
    WeakPassword,
    InvalidCredentials,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    NotFound,
    MethodNotAllowed,
    Unavailable,
    Internal,
    /// Only `pwreset serve`'s `/_dev/users`: not part of the public API.
    EmailTaken,
}

impl ProblemCode {
    pub const ALL: [Self; 15] = [
        Self::InvalidRequest,
        Self::InvalidEmail,
        Self::InvalidReturnTo,
        Self::InvalidToken,
        Self::ExpiredToken,
        Self::WeakPassword,
        Self::InvalidCredentials,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unavailable,
        Self::Internal,
        Self::EmailTaken,
    ];

    /// The stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidReturnTo => "invalid_return_to",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::WeakPassword => "weak_password",
            Self::InvalidCredentials => "invalid_credentials",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal_error",
            Self::EmailTaken => "email_taken",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest
            | Self::InvalidEmail
            | Self::InvalidReturnTo
            | Self::InvalidToken
            | Self::ExpiredToken => StatusCode::BAD_REQUEST,
            Self::WeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::EmailTaken => StatusCode::CONFLICT,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is not valid",
            Self::InvalidEmail => "The e-mail address is not valid",
            Self::InvalidReturnTo => "The return address is not allowed",
            Self::InvalidToken => "This reset link is not valid",
            Self::ExpiredToken => "This reset link has expired",
            Self::WeakPassword => "The new password is not strong enough",
            Self::InvalidCredentials => "The e-mail address or the password is wrong",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The request body must be JSON",
            Self::RateLimited => "Too many requests",
            Self::NotFound => "There is nothing at this address",
            Self::MethodNotAllowed => "This method is not allowed here",
            Self::Unavailable => "The service is temporarily unavailable",
            Self::Internal => "Something went wrong on our side",
            Self::EmailTaken => "A user with this e-mail address exists",
        }
    }

    /// Whether the public API (and so `openapi.yaml`) can answer it.
    pub fn is_public(self) -> bool {
        self != Self::EmailTaken
    }
}

/// An RFC 9457 problem document. Build it with the constructors below; the optional parts
/// (`detail`, `reasons`, `Retry-After`, `Allow`) are set only by the builder methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    code: ProblemCode,
    detail: Option<String>,
    reasons: Option<Vec<Reason>>,
    /// The language `reasons` are written in ([`Problem::in_locale`]).
    locale: Locale,
    retry_after_secs: Option<u64>,
    allow: Option<&'static str>,
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
    reasons: Option<Vec<String>>,
    /// Parallel to `reasons`: one stable code per reason ([`Reason::CODES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_codes: Option<Vec<&'static str>>,
}

impl Problem {
    pub fn new(code: ProblemCode) -> Self {
        Self {
            code,
            detail: None,
            reasons: None,
            locale: Locale::En,
            retry_after_secs: None,
            allow: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn with_reasons(mut self, reasons: Vec<Reason>) -> Self {
        self.reasons = Some(reasons);
        self
    }

    /// Writes the `reasons` in `locale` (the request's `Accept-Language`).
    pub fn in_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }

    /// The reasons, as their codes.
    pub fn reason_codes(&self) -> Option<Vec<&'static str>> {
        self.reasons
            .as_ref()
            .map(|reasons| reasons.iter().map(Reason::code).collect())
    }

    fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    fn with_allow(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }

    pub fn code(&self) -> ProblemCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::InvalidRequest).with_detail(detail)
    }

    pub fn invalid_email() -> Self {
        Self::new(ProblemCode::InvalidEmail).with_detail(
            "Check the address for typos: it needs one @ and no spaces or line breaks.",
        )
    }

    pub fn invalid_return_to() -> Self {
        Self::new(ProblemCode::InvalidReturnTo).with_detail(
            "return_to must be one of the addresses this service is configured to send users \
             back to (RESET_RETURN_URLS), exactly as listed.",
        )
    }

    pub fn invalid_token() -> Self {
        Self::new(ProblemCode::InvalidToken).with_detail(
            "The link may have been used already, or the password was changed since it was sent. \
             Ask for a new link.",
        )
    }

    pub fn expired_token() -> Self {
        Self::new(ProblemCode::ExpiredToken).with_detail("Ask for a new link.")
    }

    pub fn weak_password(reasons: Vec<Reason>) -> Self {
        Self::new(ProblemCode::WeakPassword)
            .with_detail("Choose another password; your reset link still works.")
            .with_reasons(reasons)
    }

    /// A password change's refusal: nothing was changed, there is no link to keep.
    pub fn weak_new_password(reasons: Vec<Reason>) -> Self {
        Self::new(ProblemCode::WeakPassword)
            .with_detail("Choose another password; nothing was changed.")
            .with_reasons(reasons)
    }

    /// The same for a wrong password, an unknown address and an inactive account.
    pub fn invalid_credentials() -> Self {
        Self::new(ProblemCode::InvalidCredentials)
            .with_detail("Nothing was changed. Check the address and the current password.")
    }

    pub fn payload_too_large() -> Self {
        Self::new(ProblemCode::PayloadTooLarge)
            .with_detail(format!("Send at most {MAX_BODY_BYTES} bytes."))
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(ProblemCode::UnsupportedMediaType)
            .with_detail("Send Content-Type: application/json.")
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(ProblemCode::RateLimited)
            .with_detail("Wait a little before asking again.")
            .with_retry_after(retry_after_secs)
    }

    pub fn not_found() -> Self {
        Self::new(ProblemCode::NotFound)
    }

    /// `allow` is the `Allow` header's value, e.g. `"POST"`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(ProblemCode::MethodNotAllowed).with_allow(allow)
    }

    pub fn unavailable() -> Self {
        Self::new(ProblemCode::Unavailable)
            .with_detail("Nothing was changed. Try again in a moment.")
            .with_retry_after(1)
    }

    pub fn internal() -> Self {
        Self::new(ProblemCode::Internal).with_detail("Nothing was changed. Try again in a moment.")
    }

    pub fn email_taken() -> Self {
        Self::new(ProblemCode::EmailTaken)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            kind: format!("urn:pwreset:problem:{}", self.code.as_str()),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code.as_str(),
            detail: self.detail.as_deref(),
            reasons: self
                .reasons
                .as_ref()
                .map(|reasons| reasons.iter().map(|r| r.text(self.locale)).collect()),
            reason_codes: self.reason_codes(),
        };
        let mut response = json_response(self.code.status(), &body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Transient(reason) => {
                tracing::warn!(event = "dependency_unavailable", %reason);
                Self::unavailable()
            }
            StoreError::Permanent(reason) => {
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
            RequestError::InvalidReturnTo => Self::invalid_return_to(),
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

impl From<ChangeError> for Problem {
    fn from(err: ChangeError) -> Self {
        match err {
            ChangeError::InvalidEmail => Self::invalid_email(),
            ChangeError::InvalidCredentials => Self::invalid_credentials(),
            ChangeError::WeakPassword { reasons } => Self::weak_new_password(reasons),
            ChangeError::RateLimited { retry_after_secs } => Self::rate_limited(retry_after_secs),
            ChangeError::Store(s) => s.into(),
            ChangeError::Hash(h) => {
                tracing::error!(event = "hashing_failed", error = %h);
                Self::internal()
            }
            ChangeError::PolicyTask(reason) => {
                tracing::error!(event = "password_check_failed", %reason);
                Self::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_and_an_error_status() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{code:?} repeats its code");
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{code:?}"
            );
            assert!(!code.title().is_empty(), "{code:?}");
        }
    }
}

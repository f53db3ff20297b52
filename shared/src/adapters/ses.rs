//! The SES v2 adapter: one `SendEmail` with simple content (subject, text and HTML parts,
//! UTF-8) per message.
//!
//! Errors carry the operation, SES's error code and the HTTP status only: SES's own
//! messages quote addresses ("… identities failed the check …: a@b.org").

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::dynamodb::source_chain;
use crate::ports::{MailError, Mailer, OutgoingMail};

const CHARSET: &str = "UTF-8";

/// An SES v2 client from the environment with our timeouts and retries (see
/// [`crate::adapters::aws_sdk_config`]); `AWS_ENDPOINT_URL_SESV2` points it at an emulator.
pub async fn sesv2_client() -> Client {
    Client::new(&super::aws_sdk_config().await)
}

/// Sends through SES v2 from `from`, optionally in a configuration set (for event
/// publishing: bounces, complaints).
#[derive(Debug, Clone)]
pub struct SesMailer {
    pub client: Client,
    pub from: String,
    pub configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set,
        }
    }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .map_err(|e| MailError::Rejected(format!("could not build the message: {e}")))
}

/// Error codes (with or without the `Exception` suffix) worth retrying.
const TRANSIENT_CODES: &[&str] = &[
    "TooManyRequests",
    "Throttling",
    "LimitExceeded",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    // Sending is paused for the account or the configuration set. That is a reversible
    // switch (an operator pausing mail, or SES pausing a configuration set on its
    // reputation metrics until someone resumes it), not a verdict on this message: retry
    // with the worker's backoff so queued links go out once sending resumes, rather than
    // dropping them. Account *suspension* is different: it takes a support case and days,
    // so it counts as rejected.
    "SendingPaused",
];

fn is_transient_code(code: &str) -> bool {
    let code = code.strip_suffix("Exception").unwrap_or(code);
    TRANSIENT_CODES.contains(&code)
}

/// Maps a `SendEmail` failure. Transient: throttling, quotas, 5xx, timeouts, an endpoint
/// we cannot reach, sending paused. Rejected: the message or the sender was refused
/// (`MessageRejected`, `MailFromDomainNotVerified`, `AccountSuspended`, `BadRequest`,
/// `NotFound` for a missing configuration set, any other 4xx).
fn map_send_error(err: &SdkError<SendEmailError, HttpResponse>) -> MailError {
    match err {
        SdkError::TimeoutError(_) => MailError::Transient("SES SendEmail: timed out".into()),
        SdkError::DispatchFailure(failure) => {
            let detail = failure
                .as_connector_error()
                .map(|e| source_chain(e))
                .unwrap_or_else(|| "dispatch failure".to_owned());
            MailError::Transient(format!(
                "SES SendEmail: could not reach the service: {detail}"
            ))
        }
        SdkError::ResponseError(response) => MailError::Transient(format!(
            "SES SendEmail: unreadable response (HTTP {})",
            response.raw().status().as_u16()
        )),
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            let code = service.err().code().unwrap_or("unknown");
            let message = format!("SES SendEmail: {code} (HTTP {})", status.as_u16());
            if is_transient_code(code) || status.is_server_error() || status.as_u16() == 429 {
                MailError::Transient(message)
            } else {
                MailError::Rejected(message)
            }
        }
        // A request we could not even build will not build on a retry either.
        SdkError::ConstructionFailure(_) => {
            MailError::Rejected("SES SendEmail: request could not be built".into())
        }
        _ => MailError::Transient("SES SendEmail: unexpected SDK failure".into()),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let mut body = Body::builder().text(content(&mail.text)?);
        if let Some(html) = &mail.html {
            body = body.html(content(html)?);
        }
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(body.build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(
                Destination::builder()
                    .to_addresses(mail.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| map_send_error(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_permanent_codes_are_told_apart() {
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "SendingPausedException",
            "Throttling",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "MessageRejected",
            "MailFromDomainNotVerifiedException",
            "AccountSuspendedException",
            "BadRequestException",
            "NotFoundException",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}

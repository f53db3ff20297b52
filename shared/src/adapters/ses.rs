//! The SES v2 adapter: one `SendEmail` with simple content (subject, text and HTML parts,
//! UTF-8) per message.
//!
//! Errors carry the operation, SES's error code and the HTTP status only: SES's own
//! messages quote addresses ("… identities failed the check …: a@b.org").
//!
//! SES takes 7-bit ASCII addresses only: an internationalised domain goes out in its
//! Punycode (`xn--`) form, and a local part outside ASCII, which SES cannot carry at all
//! (Punycode is not allowed there), is a permanent rejection before any call is made.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::aws::{Failure, classify_sdk_error};
use crate::ports::{MailError, Mailer, OutgoingMail};

const CHARSET: &str = "UTF-8";

/// An SES v2 client from the environment with our timeouts and retries (the CLI's way, see
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
    /// `SES_CONFIGURATION_SET`, when set and not blank.
    pub fn configuration_set_from_env() -> Option<String> {
        std::env::var("SES_CONFIGURATION_SET")
            .ok()
            .filter(|s| !s.trim().is_empty())
    }

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
        .map_err(|e| MailError::Permanent(format!("could not build the message: {e}")))
}

/// The recipient as SES accepts it: a non-ASCII domain in its ASCII form (IDNA, UTS #46;
/// an ASCII address is sent as given), the local part
/// unchanged if it is ASCII, otherwise [`MailError::Permanent`]. The error never quotes the
/// address.
fn ses_recipient(address: &str) -> Result<String, MailError> {
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| MailError::Permanent("SES SendEmail: the address has no domain".into()))?;
    if !local.is_ascii() {
        return Err(MailError::Permanent(
            "SES SendEmail: SES accepts only ASCII local parts; this address cannot be mailed"
                .into(),
        ));
    }
    if domain.is_ascii() {
        // As given: DNS ignores the case, and the recipient sees what they typed.
        return Ok(address.to_owned());
    }
    let domain = idna::domain_to_ascii(domain).map_err(|_| {
        MailError::Permanent("SES SendEmail: the domain is not a valid IDNA name".into())
    })?;
    Ok(format!("{local}@{domain}"))
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

/// Maps a `SendEmail` failure by the adapters' one classification ([`classify_sdk_error`]).
/// Transient: throttling, quotas, 5xx, timeouts, an endpoint we cannot reach, sending
/// paused. Permanent: the message or the sender was refused (`MessageRejected`,
/// `MailFromDomainNotVerified`, `AccountSuspended`, `BadRequest`, `NotFound` for a missing
/// configuration set, any other 4xx).
fn map_send_error(err: &SdkError<SendEmailError, HttpResponse>) -> MailError {
    match classify_sdk_error("SES SendEmail", err, TRANSIENT_CODES) {
        Failure::Transient(message) => MailError::Transient(message),
        Failure::Permanent(message) => MailError::Permanent(message),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let to = ses_recipient(mail.to.as_str())?;
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
            .destination(Destination::builder().to_addresses(to).build())
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
    use crate::adapters::aws::is_transient_code;

    #[test]
    fn internationalised_domains_go_out_in_punycode_and_ascii_addresses_unchanged() {
        for (given, sent) in [
            ("Mike@Example.org", "Mike@Example.org"),
            ("anna@bücher.example", "anna@xn--bcher-kva.example"),
            ("anna@BÜCHER.example", "anna@xn--bcher-kva.example"),
            (
                "user@παράδειγμα.δοκιμή",
                "user@xn--hxajbheg2az3al.xn--jxalpdlp",
            ),
            ("a+tag@xn--bcher-kva.example", "a+tag@xn--bcher-kva.example"),
        ] {
            assert_eq!(ses_recipient(given).expect(given), sent, "{given}");
        }
    }

    #[test]
    fn a_local_part_outside_ascii_is_rejected_without_quoting_it() {
        for given in ["jürgen@example.org", "用户@例子.广告", "ǅemal@example.org"] {
            match ses_recipient(given) {
                Err(MailError::Permanent(message)) => {
                    let local = given.split('@').next().expect("local part");
                    assert!(!message.contains(local), "{message}");
                }
                other => panic!("{given}: expected a rejection, got {other:?}"),
            }
        }
    }

    #[test]
    fn transient_and_permanent_codes_are_told_apart() {
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "SendingPausedException",
            "Throttling",
        ] {
            assert!(is_transient_code(code, TRANSIENT_CODES), "{code}");
        }
        for code in [
            "MessageRejected",
            "MailFromDomainNotVerifiedException",
            "AccountSuspendedException",
            "BadRequestException",
            "NotFoundException",
        ] {
            assert!(!is_transient_code(code, TRANSIENT_CODES), "{code}");
        }
    }
}

//! The SDK clients' set-up: one HTTP client (`adapters::https`), our timeouts and
//! retry policy, and the two ways to get region and credentials — straight from the Lambda
//! environment ([`LambdaEnvironment`], the functions) or aws-config's full chain
//! ([`aws_sdk_config`], the CLI).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{ConfigError, required};

/// Time to open a connection: an endpoint that is down fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of one call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// One call, retries included: an outage gives a prompt error, well inside a
/// Lambda's own timeout and an API Gateway's 30 s.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts every client of ours uses.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK's standard retry (throttling, 5xx, transport errors) with few, short
/// attempts: the caller (the outbox worker, the client) retries on a longer scale.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1))
}

/// The HTTP client of the functions' SDK clients (`adapters::https`, compiled-in roots).
/// One per process, shared by every client (one connection pool).
///
/// A pooled connection is driven by a task on the tokio runtime that opened it, so this
/// shared client is for a process with one runtime (a function, the CLI, the dev server).
/// Code that runs several runtimes in one process takes `new_http_client` per runtime.
pub fn http_client() -> SharedHttpClient {
    static CLIENT: std::sync::OnceLock<SharedHttpClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(new_http_client).clone()
}

/// A new client built as `http_client`'s, with a connection pool of its own. Each
/// `#[tokio::test]` runs on a runtime of its own and drops it at the end: a connection
/// pooled by one test and picked up by the next fails with "dispatch task is gone", so
/// tests build their clients on this.
pub fn new_http_client() -> SharedHttpClient {
    super::https::client(super::https::Roots::Compiled)
}

/// What a Lambda function needs to reach AWS, straight from the variables the Lambda
/// service sets (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`) plus the optional `AWS_ENDPOINT_URL[_<SERVICE>]` overrides.
///
/// The functions use this instead of `aws-config`'s credential chain (profiles, SSO,
/// IMDS, STS web identity): inside Lambda the chain always ends at these variables,
/// and leaving it out keeps an STS client and an XML parser out of every zip and the
/// chain's file reads out of every cold start. The CLI keeps the full chain.
#[derive(Clone)]
pub struct LambdaEnvironment {
    region: String,
    credentials: aws_sdk_dynamodb::config::Credentials,
}

impl std::fmt::Debug for LambdaEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaEnvironment")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl LambdaEnvironment {
    pub fn from_env() -> Result<Self, ConfigError> {
        let region = required("AWS_REGION").or_else(|_| required("AWS_DEFAULT_REGION"))?;
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            required("AWS_ACCESS_KEY_ID")?,
            required("AWS_SECRET_ACCESS_KEY")?,
            std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            None,
            "lambda-environment",
        );
        Ok(Self {
            region,
            credentials,
        })
    }

    /// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL` (emulators, tests).
    fn endpoint(service: &str) -> Option<String> {
        std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok()
            .filter(|url| !url.trim().is_empty())
    }

    /// What every client shares: region, credentials, the one HTTPS client, our
    /// timeouts and retry policy.
    fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                self.credentials.clone(),
            ))
            .http_client(http_client())
            .timeout_config(timeout_config())
            .retry_config(retry_config())
            .build()
    }

    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config());
        if let Some(url) = Self::endpoint("DYNAMODB") {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_dynamodb::Client::from_conf(builder.build())
    }

    pub fn eventbridge_client(&self) -> aws_sdk_eventbridge::Client {
        let mut builder = aws_sdk_eventbridge::config::Builder::from(&self.sdk_config());
        if let Some(url) = Self::endpoint("EVENTBRIDGE") {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_eventbridge::Client::from_conf(builder.build())
    }

    pub fn secretsmanager_client(&self) -> aws_sdk_secretsmanager::Client {
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(&self.sdk_config());
        if let Some(url) = Self::endpoint("SECRETS_MANAGER") {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_secretsmanager::Client::from_conf(builder.build())
    }

    pub fn sesv2_client(&self) -> aws_sdk_sesv2::Client {
        let mut builder = aws_sdk_sesv2::config::Builder::from(&self.sdk_config());
        if let Some(url) = Self::endpoint("SESV2") {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_sesv2::Client::from_conf(builder.build())
    }
}

/// The SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SESV2`, which the
/// SDK honours by itself), with our timeouts and retry policy on top.
///
/// The CLI's way (`pwreset serve --backend aws`, `table create`, `user add`): the Lambda
/// functions use [`LambdaEnvironment`] instead. Loaded once per process and shared by every
/// client built from it, so the credential chain is read once.
pub async fn aws_sdk_config() -> SdkConfig {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG.get_or_init(load_sdk_config).await.clone()
}

async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The machine's trust store: an operator's TLS-inspecting proxy may need it.
        .http_client(super::https::client(super::https::Roots::System))
        .timeout_config(timeout_config())
        .retry_config(retry_config())
        .load()
        .await
}

/// How a failed AWS call is classified, for every adapter alike: [`Failure::Transient`]
/// (throttled, a 5xx, timed out, unreachable, unreadable answer, anything unexpected) is
/// worth retrying; [`Failure::Permanent`] (a request refused for what it is, one the SDK
/// would not send or could not build) is not. Adapters turn it into their port's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Transient(String),
    Permanent(String),
}

/// Classifies the SDK error of `call` (e.g. "DynamoDB GetItem"). `transient_codes` are the
/// service's error codes (with or without the `Exception` suffix) that mean "try again";
/// any other 4xx code is permanent. Only the code, the status and transport errors go
/// into the message, never the service's free text, which can quote keys and addresses.
pub(crate) fn classify_sdk_error<E>(
    call: &str,
    err: &SdkError<E, HttpResponse>,
    transient_codes: &[&str],
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => Failure::Transient(format!("{call}: timed out")),
        SdkError::DispatchFailure(failure) => {
            let detail = failure
                .as_connector_error()
                .map(|e| source_chain(e))
                .unwrap_or_else(|| "dispatch failure".to_owned());
            if failure.is_user() {
                // The SDK refused to send it (a bad endpoint, say): the same refusal again.
                Failure::Permanent(format!("{call}: request not sent: {detail}"))
            } else {
                Failure::Transient(format!("{call}: could not reach the service: {detail}"))
            }
        }
        SdkError::ResponseError(response) => Failure::Transient(format!(
            "{call}: unreadable response (HTTP {})",
            response.raw().status().as_u16()
        )),
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            let code = service.err().code().unwrap_or("unknown");
            let message = format!("{call}: {code} (HTTP {})", status.as_u16());
            if is_transient_code(code, transient_codes)
                || status.is_server_error()
                || status.as_u16() == 429
            {
                Failure::Transient(message)
            } else {
                Failure::Permanent(message)
            }
        }
        // A request we could not even build will not build on a retry either.
        SdkError::ConstructionFailure(_) => {
            Failure::Permanent(format!("{call}: request could not be built"))
        }
        // A failure this SDK version does not name: retrying loses nothing, dropping might.
        _ => Failure::Transient(format!("{call}: unexpected SDK failure")),
    }
}

/// Whether `code` (with or without the `Exception` suffix) is one of `transient_codes`.
pub(crate) fn is_transient_code(code: &str, transient_codes: &[&str]) -> bool {
    let code = code.strip_suffix("Exception").unwrap_or(code);
    transient_codes.contains(&code)
}

/// The error's source chain as text: transport errors ("connection refused"), which hold
/// no item data.
fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(source) = next {
        let text = source.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = source.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const CODES: &[&str] = &["Throttling"];

    fn service_error(status: u16, code: &str) -> SdkError<GetItemError, HttpResponse> {
        let status = StatusCode::try_from(status).expect("status");
        SdkError::service_error(
            GetItemError::generic(ErrorMetadata::builder().code(code).build()),
            HttpResponse::new(status, SdkBody::empty()),
        )
    }

    fn is_transient(err: &SdkError<GetItemError, HttpResponse>) -> bool {
        let failure = classify_sdk_error("Test Call", err, CODES);
        let (Failure::Transient(message) | Failure::Permanent(message)) = &failure;
        assert!(message.starts_with("Test Call: "), "{message}");
        matches!(failure, Failure::Transient(_))
    }

    #[test]
    fn one_split_for_every_service() {
        // Worth a retry: the service said so, a 5xx or 429, a timeout, a network failure.
        assert!(is_transient(&service_error(400, "ThrottlingException")));
        assert!(is_transient(&service_error(400, "Throttling")));
        assert!(is_transient(&service_error(500, "InternalError")));
        assert!(is_transient(&service_error(429, "SlowDown")));
        assert!(is_transient(&SdkError::timeout_error("slow")));
        assert!(is_transient(&SdkError::dispatch_failure(
            ConnectorError::io("connection refused".into())
        )));
        // Not: the request itself was refused, or never could be sent or built.
        assert!(!is_transient(&service_error(400, "ValidationException")));
        assert!(!is_transient(&service_error(
            400,
            "ConditionalCheckFailedException"
        )));
        assert!(!is_transient(&SdkError::dispatch_failure(
            ConnectorError::user("bad endpoint".into())
        )));
        assert!(!is_transient(&SdkError::construction_failure("no key")));
    }

    #[test]
    fn messages_keep_the_code_and_status_and_drop_the_service_text() {
        let err = SdkError::service_error(
            GetItemError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("One or more parameter values were invalid: alice@example.org")
                    .build(),
            ),
            HttpResponse::new(StatusCode::try_from(400).expect("status"), SdkBody::empty()),
        );
        assert_eq!(
            classify_sdk_error("DynamoDB GetItem", &err, CODES),
            Failure::Permanent("DynamoDB GetItem: ValidationException (HTTP 400)".into())
        );
    }
}

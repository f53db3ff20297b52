//! Adapters behind the ports. `memory` serves `pwreset serve` and the core's tests;
//! `dynamodb` and `ses` (feature `aws`) serve the Lambda functions and `--backend aws`.

pub mod memory;

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod ses;

#[cfg(feature = "aws")]
pub use aws::{aws_sdk_config, http_client, retry_config, timeout_config};

#[cfg(feature = "aws")]
mod aws {
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, SdkConfig};

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

    /// The HTTPS client every SDK client of ours uses: hyper with rustls on ring.
    pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    }

    /// The SDK configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SESV2`, which the
    /// SDK honours by itself), with our timeouts and retry policy on top.
    ///
    /// Loaded once per process and shared: `send-reset-email` builds two clients from it,
    /// and reading the environment, the credential chain and the trust store twice only
    /// slows a cold start.
    pub async fn aws_sdk_config() -> SdkConfig {
        static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
        CONFIG.get_or_init(load_sdk_config).await.clone()
    }

    async fn load_sdk_config() -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(timeout_config())
            .retry_config(retry_config())
            .load()
            .await
    }
}

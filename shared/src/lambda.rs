//! What every Lambda `main` shares: JSON logs, the HTTP runner, the AWS adapters wired
//! from configuration. Each function's `main.rs` stays a few lines of wiring.

use std::convert::Infallible;
use std::sync::Arc;

use crate::adapters::dynamodb::{DynamoStore, dynamodb_client};
use crate::config::{self, Config, ConfigError, LambdaNeeds, Mode};
use crate::http::Api;

/// JSON lines (CloudWatch Logs Insights reads the fields), filtered by `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .init();
}

/// Reads the configuration a function needs and `TABLE_NAME`, failing fast.
pub fn load(needs: LambdaNeeds) -> Result<(Config, String), ConfigError> {
    let config = Config::from_env(&Mode::Lambda(needs))?;
    let table = config::required("TABLE_NAME")?;
    Ok((config, table))
}

/// The table adapter, with its SDK client built once for the life of the execution
/// environment (connections and TLS sessions survive warm invocations).
pub async fn store(table: String) -> Arc<DynamoStore> {
    Arc::new(DynamoStore::new(dynamodb_client().await, table))
}

/// Serves the API to the Lambda runtime until it stops.
pub async fn run_http(api: Api) -> Result<(), lambda_http::Error> {
    let api = Arc::new(api);
    lambda_http::run(lambda_http::service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}

//! `request-reset`: `POST /password-reset`. Validates, applies the rate limits and writes
//! one outbox item, whatever the address: it never reads a user, so it cannot leak one.
//! IAM: UpdateItem (limit counters) and PutItem (outbox) on the table; nothing else.

use std::sync::Arc;

use pwreset_core::config::LambdaNeeds;
use pwreset_core::http::{Api, PathMatch};
use pwreset_core::lambda;
use pwreset_core::ports::SystemClock;
use pwreset_core::service::RequestReset;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let (config, table, aws) = lambda::load(LambdaNeeds {
        token_keys: false,
        mail: false,
    })?;
    let store = lambda::store(&aws, table);
    let service = RequestReset::new(store.clone(), store, Arc::new(SystemClock), config.limits);
    lambda::run_http(Api::new(
        Some(Arc::new(service)),
        None,
        PathMatch::LastSegments,
    ))
    .await
}

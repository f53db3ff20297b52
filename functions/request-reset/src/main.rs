//! `request-reset`: `POST /password-reset`. Validates, applies the rate limits and writes
//! one outbox item, whatever the address: it never reads a user, so it cannot leak one.
//! IAM: UpdateItem (limit counters) and PutItem (outbox) on the table; nothing else.

use std::sync::Arc;

use pwreset_core::config::LambdaNeeds;
use pwreset_core::http;
use pwreset_core::lambda::{self, Startup};
use pwreset_core::ports::SystemClock;
use pwreset_core::service::RequestReset;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let startup = Startup::load(LambdaNeeds {
        token_keys: false,
        mail: false,
    })
    .await?;
    let store = startup.store();
    let service = RequestReset::new(
        store.clone(),
        store,
        Arc::new(SystemClock),
        startup.config.limits,
    )
    .allowing_return_to(startup.config.return_urls);
    lambda_http::run(http::for_lambda(http::request_routes(Arc::new(service)))).await
}

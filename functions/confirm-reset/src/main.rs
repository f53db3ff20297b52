//! `confirm-reset`: `POST /password-reset/verify` and `POST /password-reset/confirm`.
//! Verify reads only; confirm hashes (argon2id, CPU-bound: size this function for CPU)
//! and replaces the hash in one conditional transaction with the "changed" notice (and,
//! with `EVENT_BUS_NAME` set, the `PasswordChanged` event job).
//! IAM: GetItem on users, TransactWriteItems (UpdateItem + PutItem) on the table.

use std::sync::Arc;

use pwreset_core::config::LambdaNeeds;
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http;
use pwreset_core::lambda::{self, Startup};
use pwreset_core::ports::SystemClock;
use pwreset_core::service::ConfirmReset;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let startup = Startup::load(LambdaNeeds {
        token_keys: true,
        mail: false,
    })
    .await?;
    let store = startup.store();
    let config = startup.config;
    // send-reset-email publishes the event jobs queued here (the same EVENT_BUS_NAME).
    let service = ConfirmReset::configured(
        &config,
        store,
        Arc::new(SystemClock),
        PasswordHasher::owasp().writing(config.hash_format),
    )
    .queueing_events(config.event_bus.is_some());
    lambda_http::run(http::for_lambda(http::confirm_routes(Arc::new(service)))).await
}

//! `change-password`: `POST /password-change`. Verifies the current password (argon2id or
//! whatever the users table holds: size this function for CPU, it hashes twice at most),
//! then replaces the hash in the same conditional transaction as a reset, with the
//! "changed" notice (and, with `EVENT_BUS_NAME` set, the `PasswordChanged` event job).
//! IAM: GetItem/Query (index) on users, TransactWriteItems (UpdateItem on users + PutItem
//! of the notice) and the failure counters (UpdateItem) on pwreset's table.

use std::sync::Arc;

use pwreset_core::config::LambdaNeeds;
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http;
use pwreset_core::lambda::{self, Startup};
use pwreset_core::ports::SystemClock;
use pwreset_core::service::ChangePassword;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    // No token keys: a change signs and verifies no link.
    let startup = Startup::load(LambdaNeeds {
        token_keys: false,
        mail: false,
    })
    .await?;
    let store = startup.store();
    let config = startup.config;
    let service = ChangePassword::configured(
        &config,
        store.clone(),
        store,
        Arc::new(SystemClock),
        PasswordHasher::owasp().writing(config.hash_format),
    )
    .queueing_events(config.event_bus.is_some());
    lambda_http::run(http::for_lambda(http::change_routes(Arc::new(service)))).await
}

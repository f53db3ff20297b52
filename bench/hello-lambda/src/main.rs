//! `hello-lambda`: the smallest useful `lambda_runtime` function, the yardstick for the
//! cold-start benchmark (bench/RESULTS.md, P4). It answers every event with a fixed JSON
//! object and does no start-up work of its own, so the time to its first response is what
//! the runtime, the process and the emulator cost by themselves.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<Value, lambda_runtime::Error>(json!({ "hello": "world" }))
    }))
    .await
}

//! `hello-lambda-dynamodb`: the cold-start yardstick for the cases that call DynamoDB
//! (bench/RESULTS.md, P4). It is `hello-lambda` plus one `GetItem` on `TABLE_NAME` per
//! event, through the client the functions build (region and credentials from the Lambda
//! environment, pwreset's HTTPS client, the same timeouts and retries) and nothing else:
//! its first response is what a process, the runtime, one SDK client and one first
//! DynamoDB round trip cost by themselves.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{LambdaEvent, service_fn};
use pwreset_core::adapters::aws::LambdaEnvironment;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let table = std::env::var("TABLE_NAME")?;
    let dynamodb = LambdaEnvironment::from_env()?.dynamodb_client();
    let (dynamodb, table) = (&dynamodb, table.as_str());
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async move {
        let found = dynamodb
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S("hello".into()))
            .key("sk", AttributeValue::S("hello".into()))
            .send()
            .await?;
        Ok::<Value, lambda_runtime::Error>(
            json!({ "hello": "world", "found": found.item.is_some() }),
        )
    }))
    .await
}

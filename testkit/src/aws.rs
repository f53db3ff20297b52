//! SDK clients pointed at an emulator, and fresh tables on it.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider, SharedHttpClient,
};
use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use rand::Rng as _;

pub const REGION: &str = "us-east-1";

/// How our SDK clients reach an emulator: us-east-1, dummy credentials, the endpoint, and
/// the HTTPS client, timeouts and retries the caller passes in. pwreset-core's adapters own
/// those (`adapters::{http_client, timeout_config, retry_config}`), so a test built on them
/// sees the calls time out and retry exactly as the functions' calls do.
#[derive(Debug, Clone)]
pub struct Sdk {
    http_client: SharedHttpClient,
    timeouts: TimeoutConfig,
    retries: RetryConfig,
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "pwreset-tests")
}

impl Sdk {
    pub fn new(
        http_client: SharedHttpClient,
        timeouts: TimeoutConfig,
        retries: RetryConfig,
    ) -> Self {
        Self {
            http_client,
            timeouts,
            retries,
        }
    }

    /// The one configuration every client here is built from: `endpoint`, us-east-1 and
    /// dummy credentials set in code (never read from the environment), and the caller's
    /// HTTPS client, timeouts and retries.
    fn config(&self, endpoint: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(credentials()))
            .endpoint_url(endpoint)
            .timeout_config(self.timeouts.clone())
            .retry_config(self.retries.clone())
            .http_client(self.http_client.clone())
            .build()
    }

    /// A DynamoDB client for `endpoint`.
    pub fn dynamodb(&self, endpoint: &str) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config(endpoint))
    }

    /// A DynamoDB Streams client for `endpoint`.
    pub fn streams(&self, endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.config(endpoint))
    }

    /// An SES v2 client for `endpoint`.
    pub fn sesv2(&self, endpoint: &str) -> aws_sdk_sesv2::Client {
        aws_sdk_sesv2::Client::new(&self.config(endpoint))
    }

    pub fn eventbridge(&self, endpoint: &str) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config(endpoint))
    }

    pub fn sqs(&self, endpoint: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config(endpoint))
    }

    pub fn secretsmanager(&self, endpoint: &str) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config(endpoint))
    }
}

/// A new Secrets Manager secret named `<prefix>-<random>` holding `value`; returns its ARN.
pub async fn secret_holding(sdk: &Sdk, endpoint: &str, prefix: &str, value: &str) -> String {
    let created = sdk
        .secretsmanager(endpoint)
        .create_secret()
        .name(unique_name(prefix))
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret");
    created.arn().expect("the new secret's ARN").to_owned()
}

/// `<prefix>-<random>`: a table name, address part or subject no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::rng().random::<u64>())
}

/// A new table named `<prefix>-<random>`, made by `create` (the adapter's
/// `dynamodb::table::create_table`) on the DynamoDB behind `client` once that DynamoDB answers.
pub async fn fresh_table<E: std::fmt::Debug>(
    client: &aws_sdk_dynamodb::Client,
    prefix: &str,
    create: impl AsyncFnOnce(&aws_sdk_dynamodb::Client, &str) -> Result<(), E>,
) -> String {
    warm_up_dynamodb(client).await;
    let table = unique_name(prefix);
    create(client, &table).await.expect("table created");
    table
}

/// Waits until moto answers DynamoDB calls: its first request imports the backend, which
/// on a loaded 2-core machine can take longer than the adapters' 5 s operation timeout.
pub async fn warm_up_dynamodb(client: &aws_sdk_dynamodb::Client) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match client.list_tables().limit(1).send().await {
            Ok(_) => return,
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for moto's DynamoDB: {err:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("moto's DynamoDB never answered: {err:?}"),
        }
    }
}

/// A bus on moto with a rule for pwreset's `PasswordChanged` events whose target is a
/// fresh SQS queue; returns the bus name and the queue URL.
pub async fn event_bus_with_queue(sdk: &Sdk, moto: &str) -> (String, String) {
    let events = sdk.eventbridge(moto);
    let sqs = sdk.sqs(moto);
    let bus = unique_name("bus");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("changed"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    events
        .put_rule()
        .name("password-changed")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["pwreset"],"detail-type":["PasswordChanged"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("password-changed")
        .event_bus_name(&bus)
        .targets(
            Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    (bus, queue_url)
}

/// How many messages wait in the queue (SQS's approximate count; exact on moto, which
/// delivers inside the call that sends them).
pub async fn messages_waiting(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .cloned()
        })
        .expect("count")
        .parse()
        .expect("a number")
}

/// A team's users table as an app would have made it, unknown to pwreset: partition key
/// `key` of `key_type` and nothing else, plus a global secondary index `index` on the
/// string attribute `index_attribute` that projects keys only (so pwreset must read each
/// match's item itself). Named `<prefix>-<random>`.
pub async fn team_users_table(
    client: &aws_sdk_dynamodb::Client,
    prefix: &str,
    key: &str,
    key_type: aws_sdk_dynamodb::types::ScalarAttributeType,
    index: &str,
    index_attribute: &str,
) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    warm_up_dynamodb(client).await;
    let table = unique_name(prefix);
    let definition = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute definition")
    };
    let hash_key = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
            .expect("key schema")
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition(key, key_type))
        .attribute_definitions(definition(index_attribute, ScalarAttributeType::S))
        .key_schema(hash_key(key))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(hash_key(index_attribute))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("index"),
        )
        .send()
        .await
        .expect("team table created");
    table
}

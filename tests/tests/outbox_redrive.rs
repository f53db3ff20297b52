//! `pwreset outbox redrive` against moto (DynamoDB, its stream, SQS) and aws-ses-v2-local:
//! the jobs a failure record names, or that a window holds undelivered, go out once through
//! send-reset-email's code, however often the redrive runs.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::{self, DynamoStore, item};
use pwreset_core::domain::{EmailAddress, EmailLookup, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::ports::{Outbox as _, OutboxJob, UserRepository as _};
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::dev_server::pwreset_bin;
use pwreset_testkit::{emulators, ses_store};
use secrecy::SecretString;
use serde_json::json;

const TOKEN_KEYS: &str = "cmVkcml2ZS10ZXN0LWtleS10aGlydHktdHdvLWJ5dGVzIQ==";

fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

struct Rig {
    table: String,
    store: DynamoStore,
    dynamodb: aws_sdk_dynamodb::Client,
    moto: String,
    ses: String,
    http: reqwest::Client,
}

impl Rig {
    async fn start() -> Self {
        let moto = emulators::moto().url.clone();
        let ses = emulators::ses_local().url.clone();
        let dynamodb = sdk().dynamodb(&moto);
        let table = aws::fresh_table(&dynamodb, "redrive", dynamodb::table::create_tables).await;
        Self {
            store: DynamoStore::new(dynamodb.clone(), table.clone()),
            table,
            dynamodb,
            moto,
            ses,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// `pwreset outbox redrive <args>` as an operator runs it, with send-reset-email's
    /// configuration; `ses` is where mail goes.
    fn redrive(&self, args: &[&str], ses: &str) -> Output {
        Command::new(pwreset_bin())
            .args(["outbox", "redrive", "--table", &self.table])
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.moto)
            .env("AWS_ENDPOINT_URL_SESV2", ses)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env_remove("TABLE_NAME")
            .env("TOKEN_KEYS", TOKEN_KEYS)
            .env(
                "RESET_LINK_TEMPLATE",
                "https://app.example/reset#uid={uid}&token={token}",
            )
            .env("MAIL_FROM", "no-reply@example.com")
            .stdin(Stdio::null())
            .output()
            .expect("run pwreset outbox redrive")
    }

    async fn add_user(&self, email: &str) {
        let hash = PasswordHasher::owasp()
            .hash(SecretString::from("an old password 42"))
            .await
            .expect("hash");
        self.store
            .insert(&User {
                uid: UserId::generate(),
                email: EmailAddress::parse(email).expect("valid"),
                password_hash: Some(hash),
                active: true,
                credential_version: 0,
                locale: None,
            })
            .await
            .expect("insert");
    }

    async fn mail_to(&self, to: &str) -> usize {
        ses_store::mail_to(&self.http, &self.ses, to)
            .await
            .expect("GET /store")
            .len()
    }

    /// Every outbox item, and whether it is marked delivered.
    async fn outbox_marks(&self) -> Vec<(String, bool)> {
        pwreset_testkit::outbox::items_with_prefix(&self.dynamodb, &self.table, item::OUTBOX_PREFIX)
            .await
            .expect("scan")
            .iter()
            .map(|found| {
                (
                    item::outbox_item_key(found)
                        .expect("an outbox key")
                        .to_owned(),
                    item::is_delivered(found),
                )
            })
            .collect()
    }

    /// An outbox item for a reset request of `email`, written `age` ago; marked delivered
    /// when `delivered`.
    async fn old_job(&self, email: &str, age: Duration, delivered: bool) {
        let job =
            OutboxJob::reset_requested(EmailLookup::from_request(email).expect("valid"), 0, false);
        let mut written = item::outbox_item(&job).expect("item");
        let at = time::OffsetDateTime::now_utc().unix_timestamp()
            - i64::try_from(age.as_secs()).expect("age");
        written.insert(
            item::CREATED_AT_ATTRIBUTE.into(),
            AttributeValue::N(at.to_string()),
        );
        if delivered {
            written.insert(
                item::DELIVERED_AT_ATTRIBUTE.into(),
                AttributeValue::N(at.to_string()),
            );
        }
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(written))
            .send()
            .await
            .expect("put");
    }
}

fn stdout(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_failure_record_is_redelivered_once_however_often_the_redrive_runs() {
    let rig = Rig::start().await;
    let address = format!("{}@example.org", unique_name("redrive"));
    rig.add_user(&address).await;
    let job = OutboxJob::reset_requested(
        EmailLookup::from_request(&address).expect("valid"),
        0,
        false,
    );
    rig.store.enqueue(job).await.expect("enqueue");

    // The insert's place on the table's stream, as the mapping's failure record names it.
    let described = rig
        .dynamodb
        .describe_table()
        .table_name(&rig.table)
        .send()
        .await
        .expect("describe");
    let stream_arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .expect("a stream")
        .to_owned();
    let streams = sdk().streams(&rig.moto);
    let shard = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .expect("describe stream")
        .stream_description
        .and_then(|d| d.shards)
        .and_then(|shards| shards.into_iter().next())
        .and_then(|s| s.shard_id)
        .expect("a shard");
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&stream_arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator;
    let records = streams
        .get_records()
        .set_shard_iterator(iterator)
        .send()
        .await
        .expect("records")
        .records
        .unwrap_or_default();
    let sequence = records
        .iter()
        .filter_map(|r| r.dynamodb.as_ref())
        .find(|change| {
            change
                .keys
                .as_ref()
                .and_then(|k| k.get("pk"))
                .and_then(|pk| pk.as_s().ok())
                .is_some_and(|pk| pk.starts_with(item::OUTBOX_PREFIX))
        })
        .and_then(|change| change.sequence_number.clone())
        .expect("the outbox insert on the stream");
    let failure = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 21},
        "version": "1.0",
        "timestamp": "2026-12-06T00:13:49.717Z",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": sequence,
            "endSequenceNumber": sequence,
            "batchSize": 1,
            "streamArn": stream_arn,
        }
    })
    .to_string();
    let sqs = sdk().sqs(&rig.moto);
    let queue = sqs
        .create_queue()
        .queue_name(unique_name("failures"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    sqs.send_message()
        .queue_url(&queue)
        .message_body(&failure)
        .send()
        .await
        .expect("send");

    // A dry run sends nothing and keeps the record.
    let dry = rig.redrive(&["--queue-url", &queue, "--dry-run"], &rig.ses);
    assert!(stdout(&dry).contains("would deliver 1"), "{}", stdout(&dry));
    assert_eq!(rig.mail_to(&address).await, 0);

    // The record's job goes out once.
    let run = rig.redrive(&["--queue-url", &queue], &rig.ses);
    let text = stdout(&run);
    assert!(run.status.success(), "{text}");
    assert!(text.contains("1 outbox jobs found: delivered 1,"), "{text}");
    assert!(text.contains("failure records removed 1, left 0"), "{text}");
    assert_eq!(rig.mail_to(&address).await, 1);
    assert!(
        rig.outbox_marks()
            .await
            .iter()
            .all(|(_, delivered)| *delivered)
    );
    assert_eq!(aws::messages_waiting(&sqs, &queue).await, 0);

    // The same record again (a duplicate, or a second operator): nothing is sent twice.
    sqs.send_message()
        .queue_url(&queue)
        .message_body(&failure)
        .send()
        .await
        .expect("send");
    let again = rig.redrive(&["--queue-url", &queue], &rig.ses);
    let text = stdout(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("delivered 0, already delivered 1"), "{text}");
    assert_eq!(rig.mail_to(&address).await, 1);
    assert_eq!(aws::messages_waiting(&sqs, &queue).await, 0);
}

#[tokio::test]
async fn a_window_redelivers_the_settled_undelivered_jobs_and_a_failed_send_is_tried_again() {
    let rig = Rig::start().await;
    let address = format!("{}@example.org", unique_name("since"));
    rig.add_user(&address).await;
    rig.old_job(&address, Duration::from_secs(2 * 3600), false)
        .await;
    rig.old_job(&address, Duration::from_secs(3 * 3600), true)
        .await;
    // Still in the stream mapping's retry window: left alone.
    rig.old_job(&address, Duration::from_secs(300), false).await;
    // Older than the window asked for.
    rig.old_job(&address, Duration::from_secs(30 * 3600), false)
        .await;

    // SES unreachable: the job fails, its claim is given back, the exit says so.
    let dead = format!("http://127.0.0.1:{}", pwreset_testkit::net::free_port());
    let failed = rig.redrive(&["--since", "6h"], &dead);
    let text = stdout(&failed);
    assert!(!failed.status.success(), "{text}");
    assert!(text.contains("failed 1"), "{text}");
    assert!(text.contains("1 written in the last 60 min"), "{text}");
    let undelivered = rig
        .outbox_marks()
        .await
        .iter()
        .filter(|(_, delivered)| !delivered)
        .count();
    assert_eq!(undelivered, 3, "the failed claim was released");

    let ok = rig.redrive(&["--since", "6h"], &rig.ses);
    let text = stdout(&ok);
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("1 outbox jobs found: delivered 1"), "{text}");
    assert_eq!(rig.mail_to(&address).await, 1);

    let again = rig.redrive(&["--since", "6h"], &rig.ses);
    let text = stdout(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("0 outbox jobs found"), "{text}");
    assert_eq!(rig.mail_to(&address).await, 1);
}

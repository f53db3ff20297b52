//! `pwreset outbox redrive`: delivers again, through `send-reset-email`'s own code, the
//! outbox jobs that never went out.
//!
//! Two sources: the stream mapping's failure destination (`--queue-url`: each message names
//! a range of the table's stream, read back through the Streams API while the stream keeps
//! it, 24 hours), or every outbox item written in a past window that nobody marked delivered
//! (`--since`: a scan; items younger than [`SETTLED`] are left to the mapping's own retries).
//!
//! Idempotent: each job is claimed with one conditional write on its outbox item before it
//! is sent (the mark `send-reset-email` sets after a delivery), so a job is never sent by two
//! redrives, nor again by one that is run twice; a failed send gives its claim back. A queue
//! message is deleted once every job in its range is delivered or was already.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use pwreset_core::adapters::dynamodb::item::{self, Item};
use pwreset_core::adapters::dynamodb::outbox::Claim;
use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
use pwreset_core::config::{LambdaNeeds, Mode, UsersTable};
use pwreset_core::ports::{Clock as _, SystemClock};
use pwreset_core::service::{Delivery, DeliveryError, SendResetEmail};
use serde::Deserialize;

/// How old an undelivered item must be before `--since` takes it: the template's
/// `MaximumRecordAgeInSeconds`, past which the stream mapping stops retrying it.
pub const SETTLED: Duration = Duration::from_secs(3600);

/// Where the jobs to redeliver are found.
#[derive(Debug, Clone)]
pub enum Source {
    /// The failure destination's SQS queue.
    Queue(String),
    /// Undelivered items written in the last this-long (but at least [`SETTLED`] ago).
    Since(Duration),
}

/// `6h`, `90m`, `2d`, `3600s`.
pub fn parse_window(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.len().saturating_sub(1);
    let (number, unit) = raw.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "expected a number and s, m, h or d (e.g. 6h), got {raw:?}"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a number and s, m, h or d (e.g. 6h), got {raw:?}"))?;
    if number == 0 {
        return Err("the window must be longer than nothing".into());
    }
    Ok(Duration::from_secs(number.saturating_mul(scale)))
}

/// What became of the jobs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub found: u64,
    /// Handled now: mailed or published, or nothing to send (no such account any more,
    /// a suppressed request).
    pub delivered: u64,
    pub would_deliver: u64,
    pub already_delivered: u64,
    /// Expired from the table (past the outbox TTL) before they could be redriven.
    pub gone: u64,
    pub failed: u64,
    pub messages_removed: u64,
    pub messages_left: u64,
    /// Failure records whose stream range is no longer on the stream.
    pub messages_trimmed: u64,
    /// Items written too recently for `--since` (the mapping may still be retrying them).
    pub too_recent: u64,
}

impl Summary {
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.messages_left == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "redrive: {} outbox jobs found: delivered {}, already delivered {}, expired {}, failed {}",
            self.found, self.delivered, self.already_delivered, self.gone, self.failed
        )?;
        if self.would_deliver > 0 {
            write!(f, ", would deliver {} (dry run)", self.would_deliver)?;
        }
        if self.messages_removed + self.messages_left > 0 {
            write!(
                f,
                "; failure records removed {}, left {} (of which {} no longer on the stream: use --since)",
                self.messages_removed, self.messages_left, self.messages_trimmed
            )?;
        }
        if self.too_recent > 0 {
            write!(
                f,
                "; {} written in the last {} min left to the stream's own retries",
                self.too_recent,
                SETTLED.as_secs() / 60
            )?;
        }
        Ok(())
    }
}

/// What a failure destination record holds for a DynamoDB stream batch.
#[derive(Debug, Deserialize)]
struct FailureRecord {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: StreamBatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamBatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

/// Stream sequence numbers are decimal strings of up to 40 digits.
fn sequence_after(sequence: &str, end: &str) -> bool {
    (sequence.len(), sequence) > (end.len(), end)
}

/// The redrive's parts: the table, `send-reset-email`'s use case over SES, and what it
/// counts.
struct Redrive {
    store: Arc<DynamoStore>,
    send: SendResetEmail,
    dry_run: bool,
    summary: Summary,
}

pub async fn run(table: String, source: Source, dry_run: bool) -> anyhow::Result<Summary> {
    use pwreset_core::adapters::eventbridge::{EventBridgePublisher, eventbridge_client};
    use pwreset_core::adapters::secrets::{config_from_env, secretsmanager_client};
    use pwreset_core::adapters::ses::{SesMailer, sesv2_client};
    // What send-reset-email needs: the keys, the link, the sender.
    let secrets = secretsmanager_client().await;
    let config = config_from_env(&Mode::Lambda(LambdaNeeds::ALL), || secrets).await?;
    let users = UsersTable::from_env(&table)?;
    let store = Arc::new(DynamoStore::new(dynamodb_client().await, table).with_users(users));
    let mailer = SesMailer::new(
        sesv2_client().await,
        config.mail_from.clone(),
        SesMailer::configuration_set_from_env(),
    );
    let mut send = SendResetEmail::configured(
        &config,
        store.clone(),
        Arc::new(mailer),
        Arc::new(SystemClock),
    );
    if let Some(bus) = &config.event_bus {
        let client = eventbridge_client().await;
        send = send.with_events(Arc::new(EventBridgePublisher::new(client, bus.clone())));
    }
    let mut redrive = Redrive {
        store,
        send,
        dry_run,
        summary: Summary::default(),
    };
    match source {
        Source::Queue(url) => redrive.failure_queue(&url).await?,
        Source::Since(window) => redrive.since(window).await?,
    }
    Ok(redrive.summary)
}

/// How one job went, for the counts.
enum Outcome {
    Delivered,
    WouldDeliver,
    AlreadyDelivered,
    Gone,
    Failed,
}

impl Redrive {
    fn count(&mut self, outcome: &Outcome) {
        let s = &mut self.summary;
        s.found += 1;
        match outcome {
            Outcome::Delivered => s.delivered += 1,
            Outcome::WouldDeliver => s.would_deliver += 1,
            Outcome::AlreadyDelivered => s.already_delivered += 1,
            Outcome::Gone => s.gone += 1,
            Outcome::Failed => s.failed += 1,
        }
    }

    /// Claims, delivers and counts the job in the outbox item `key` (`item`, when the
    /// caller has read it already).
    async fn redeliver(&mut self, key: &str, item: Option<Item>) -> anyhow::Result<Outcome> {
        let item = match item {
            Some(item) => item,
            None => match self.store.outbox_item(key).await? {
                Some(item) => item,
                None => return Ok(Outcome::Gone),
            },
        };
        if item::is_delivered(&item) {
            return Ok(Outcome::AlreadyDelivered);
        }
        let job = match item::outbox_job_from_item(&item) {
            Ok(job) => job,
            Err(err) => {
                eprintln!("redrive: an outbox item cannot be read ({err}); left as it is");
                return Ok(Outcome::Failed);
            }
        };
        if self.dry_run {
            return Ok(Outcome::WouldDeliver);
        }
        let at = SystemClock.unix_now();
        match self.store.claim_outbox_item(key, at).await? {
            Claim::Taken => {}
            Claim::AlreadyDelivered => return Ok(Outcome::AlreadyDelivered),
            Claim::Gone => return Ok(Outcome::Gone),
        }
        match self.send.deliver(&job).await {
            Ok(Delivery::Sent | Delivery::Published | Delivery::Skipped) => Ok(Outcome::Delivered),
            Err(err @ (DeliveryError::Transient(_) | DeliveryError::Permanent(_))) => {
                eprintln!("redrive: a job failed again ({err}); a later redrive will retry it");
                self.store.release_outbox_claim(key, at).await?;
                Ok(Outcome::Failed)
            }
        }
    }

    async fn since(&mut self, window: Duration) -> anyhow::Result<()> {
        let now = SystemClock.unix_now();
        let settled = now.saturating_sub(i64::try_from(SETTLED.as_secs()).unwrap_or(i64::MAX));
        let from = now.saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
        let candidates = self.store.undelivered_outbox_items(from, now).await?;
        for (key, found) in candidates {
            if item::created_at(&found).is_some_and(|at| at > settled) {
                self.summary.too_recent += 1;
                continue;
            }
            let outcome = self.redeliver(&key, Some(found)).await?;
            self.count(&outcome);
        }
        Ok(())
    }

    async fn failure_queue(&mut self, queue_url: &str) -> anyhow::Result<()> {
        let config = pwreset_core::adapters::aws_sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let streams = crate::stream_reader::streams_client().await;
        // A message this run could not finish becomes visible again after the visibility
        // timeout; seen twice, it is left for the next run.
        let mut seen = HashSet::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                // A dry run only looks: the records stay visible for the real run.
                .visibility_timeout(if self.dry_run { 0 } else { 120 })
                .wait_time_seconds(1)
                .send()
                .await
                .context("reading the failure queue (sqs:ReceiveMessage)")?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut fresh = false;
            for message in messages {
                let id = message.message_id.clone().unwrap_or_default();
                if !seen.insert(id) {
                    continue;
                }
                fresh = true;
                let done = match message
                    .body
                    .as_deref()
                    .map(serde_json::from_str::<FailureRecord>)
                {
                    Some(Ok(record)) => self.range(&streams, &record.batch).await?,
                    _ => {
                        eprintln!(
                            "redrive: a queue message is not a DynamoDB stream failure record; left in the queue"
                        );
                        false
                    }
                };
                if done && !self.dry_run {
                    if let Some(handle) = &message.receipt_handle {
                        sqs.delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .context("removing a redriven record (sqs:DeleteMessage)")?;
                    }
                    self.summary.messages_removed += 1;
                } else {
                    self.summary.messages_left += 1;
                }
            }
            if !fresh {
                break;
            }
        }
        Ok(())
    }

    /// Redelivers every outbox insert in one failure record's stream range. `true` when all
    /// of them are delivered now (or were); `false` when one failed or the range is gone.
    async fn range(
        &mut self,
        streams: &aws_sdk_dynamodbstreams::Client,
        batch: &StreamBatchInfo,
    ) -> anyhow::Result<bool> {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(output) => output.shard_iterator,
            Err(err) => {
                let code = err
                    .as_service_error()
                    .and_then(aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code)
                    .unwrap_or("unknown");
                if matches!(
                    code,
                    "TrimmedDataAccessException" | "ResourceNotFoundException"
                ) {
                    self.summary.messages_trimmed += 1;
                    return Ok(false);
                }
                bail!("reading the stream (GetShardIterator): {code}");
            }
        };
        let mut all_done = true;
        let mut empty_reads = 0;
        while let Some(current) = iterator.take() {
            let output = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .context("reading the stream (GetRecords)")?;
            let records = output.records.unwrap_or_default();
            if records.is_empty() {
                empty_reads += 1;
                // An open shard answers empty pages past its end: a few in a row are the end.
                if empty_reads >= 3 {
                    break;
                }
            } else {
                empty_reads = 0;
            }
            let mut past_end = false;
            for record in records {
                let Some(change) = record.dynamodb else {
                    continue;
                };
                let sequence = change.sequence_number.clone().unwrap_or_default();
                if sequence_after(&sequence, &batch.end_sequence_number) {
                    past_end = true;
                    break;
                }
                let is_insert = record.event_name.as_ref().map(|e| e.as_str()) == Some("INSERT");
                let pk = change
                    .keys
                    .as_ref()
                    .and_then(|keys| keys.get(item::PK))
                    .and_then(|pk| pk.as_s().ok())
                    .filter(|pk| pk.starts_with(item::OUTBOX_PREFIX));
                let Some(key) = pk.filter(|_| is_insert) else {
                    continue;
                };
                let key = key.to_owned();
                let outcome = self.redeliver(&key, None).await?;
                all_done &= !matches!(outcome, Outcome::Failed | Outcome::WouldDeliver);
                self.count(&outcome);
            }
            if past_end {
                break;
            }
            iterator = output.next_shard_iterator;
        }
        Ok(all_done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_in_seconds_minutes_hours_and_days() {
        assert_eq!(parse_window("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_window("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_window("2d"), Ok(Duration::from_secs(2 * 86_400)));
        for bad in ["", "6", "h", "0h", "-1h", "1w", "6 h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("1000", "999"));
        assert!(!sequence_after("999", "1000"));
        assert!(!sequence_after("1000", "1000"));
        assert!(sequence_after(
            "800000000003126276363",
            "800000000003126276362"
        ));
    }

    #[test]
    fn a_failure_destination_record_is_read() {
        // The shape AWS documents for a DynamoDB stream batch that failed its retries.
        let body = r#"{
          "requestContext": {"requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
            "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 1},
          "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
          "version": "1.0",
          "timestamp": "2019-11-14T00:13:49.717Z",
          "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001573689847184-864758bb",
            "startSequenceNumber": "800000000003126276362",
            "endSequenceNumber": "800000000003126276362",
            "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
            "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z",
            "batchSize": 1,
            "streamArn": "arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388"
          }
        }"#;
        let record: FailureRecord = serde_json::from_str(body).expect("a failure record");
        assert_eq!(
            record.batch.shard_id,
            "shardId-00000001573689847184-864758bb"
        );
        assert_eq!(record.batch.start_sequence_number, "800000000003126276362");
        assert!(record.batch.stream_arn.ends_with("2019-11-14T00:04:06.388"));
    }
}

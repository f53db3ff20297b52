//! The `send-reset-email` function's input: DynamoDB stream batches of outbox items.
//!
//! Parsed with plain serde (the stream's JSON shape), so the core needs no SDK for it.
//! Records are handled in order; at the first one that must be retried, the rest of the
//! batch is left alone and that record's sequence number is reported as the batch item
//! failure: Lambda then retries from it, so nothing is lost and nothing already sent is
//! sent again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ports::OutboxJob;
use crate::service::{Deliverer, DeliveryError};

/// Prefix of the outbox items' partition key.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

#[derive(Debug, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    #[serde(default)]
    pub dynamodb: StreamChange,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamChange {
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: String,
    #[serde(rename = "NewImage", default)]
    pub new_image: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

fn string_attribute<'a>(
    image: &'a HashMap<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    image.get(name)?.get("S")?.as_str()
}

impl StreamRecord {
    /// The outbox job this record inserted, if it is one. Other items (users, limits) and
    /// other events (MODIFY, REMOVE by TTL) are not work.
    pub fn outbox_job(&self) -> Option<Result<OutboxJob, serde_json::Error>> {
        if self.event_name != "INSERT" {
            return None;
        }
        let image = &self.dynamodb.new_image;
        if !string_attribute(image, "pk")?.starts_with(OUTBOX_PREFIX) {
            return None;
        }
        let job = string_attribute(image, "job")?;
        Some(serde_json::from_str(job))
    }
}

/// Delivers every outbox job in the batch, stopping at the first that must be retried.
pub async fn deliver_batch(deliverer: &Deliverer, batch: &StreamBatch) -> BatchResponse {
    for record in &batch.records {
        let job = match record.outbox_job() {
            None => continue,
            Some(Ok(job)) => job,
            Some(Err(err)) => {
                // Retrying cannot fix an unreadable item: log it and move on.
                tracing::error!(event = "outbox_item_unreadable", error = %err);
                continue;
            }
        };
        match deliverer.deliver(&job).await {
            Ok(outcome) => tracing::debug!(event = "outbox_job_done", ?outcome),
            Err(DeliveryError::Permanent(reason)) => {
                tracing::error!(event = "outbox_job_failed", %reason);
            }
            Err(DeliveryError::Retry(reason)) => {
                tracing::warn!(event = "outbox_job_retry", %reason);
                return BatchResponse {
                    batch_item_failures: vec![BatchItemFailure {
                        item_identifier: record.dynamodb.sequence_number.clone(),
                    }],
                };
            }
        }
    }
    BatchResponse::default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use serde_json::json;

    use super::*;
    use crate::adapters::memory::{MemoryStore, RecordingMailer};
    use crate::domain::{EmailAddress, EmailKey, User, UserId};
    use crate::hashing::PasswordHasher;
    use crate::mail::{LinkTemplate, MailComposer};
    use crate::ports::{SystemClock, UserRepository as _};
    use crate::token::{TokenKeys, TokenSigner};

    fn record(seq: &str, pk: &str, job: &OutboxJob) -> serde_json::Value {
        json!({
            "eventID": seq,
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {"pk": {"S": pk}, "sk": {"S": "OUTBOX"}},
                "NewImage": {"pk": {"S": pk}, "sk": {"S": "OUTBOX"}, "job": {"S": serde_json::to_string(job).expect("json")}},
                "SequenceNumber": seq,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn reset_job(email: &str) -> OutboxJob {
        OutboxJob::ResetRequested {
            email_key: EmailKey::normalise(email).expect("valid"),
            requested_at: 0,
            suppressed: false,
        }
    }

    async fn setup() -> (Deliverer, Arc<RecordingMailer>) {
        let store = Arc::new(MemoryStore::new());
        let hash = PasswordHasher::owasp()
            .hash(SecretString::from("x"))
            .await
            .expect("hash");
        for email in ["a@example.org", "b@example.org"] {
            store
                .insert(&User {
                    uid: UserId::generate(),
                    email: EmailAddress::parse(email).expect("valid"),
                    password_hash: Some(hash.clone()),
                    active: true,
                })
                .await
                .expect("insert");
        }
        let mailer = Arc::new(RecordingMailer::new());
        let deliverer = Deliverer::new(
            store,
            mailer.clone(),
            Arc::new(SystemClock),
            TokenSigner::new(TokenKeys::generate(), 3600),
            MailComposer::new(
                "Acme",
                LinkTemplate::parse("https://a.example/#{uid}.{token}").expect("valid"),
                3600,
            ),
        );
        (deliverer, mailer)
    }

    #[tokio::test]
    async fn outbox_inserts_are_delivered_and_other_records_ignored() {
        let (deliverer, mailer) = setup().await;
        let mut user_record = record("1", "USER#x", &reset_job("a@example.org"));
        user_record["dynamodb"]["NewImage"]["pk"] = json!({"S": "USER#x"});
        let mut removal = record("2", "OUTBOX#r", &reset_job("a@example.org"));
        removal["eventName"] = json!("REMOVE");
        let batch: StreamBatch = serde_json::from_value(json!({"Records": [
            user_record,
            removal,
            record("3", "OUTBOX#1", &reset_job("a@example.org")),
            record("4", "OUTBOX#2", &reset_job("missing@example.org")),
        ]}))
        .expect("batch");
        assert_eq!(
            deliver_batch(&deliverer, &batch).await,
            BatchResponse::default()
        );
        assert_eq!(mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_send_reports_that_record_and_leaves_the_rest_for_the_retry() {
        let (deliverer, mailer) = setup().await;
        let batch: StreamBatch = serde_json::from_value(json!({"Records": [
            record("10", "OUTBOX#1", &reset_job("a@example.org")),
            record("11", "OUTBOX#2", &reset_job("b@example.org")),
            record("12", "OUTBOX#3", &reset_job("a@example.org")),
        ]}))
        .expect("batch");
        // The first send works, the second fails.
        let first = deliver_batch(
            &deliverer,
            &StreamBatch {
                records: serde_json::from_value(json!([record(
                    "10",
                    "OUTBOX#1",
                    &reset_job("a@example.org")
                )]))
                .expect("r"),
            },
        )
        .await;
        assert_eq!(first, BatchResponse::default());
        mailer.fail_next(1);
        let response = deliver_batch(
            &deliverer,
            &StreamBatch {
                records: batch.records.into_iter().skip(1).collect(),
            },
        )
        .await;
        assert_eq!(
            response.batch_item_failures,
            vec![BatchItemFailure {
                item_identifier: "11".into()
            }]
        );
        // Record 12 was not sent: Lambda retries from 11, which would send it again.
        assert_eq!(mailer.sent().len(), 1);
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(
            json,
            json!({"batchItemFailures": [{"itemIdentifier": "11"}]})
        );
    }

    #[tokio::test]
    async fn the_sample_stream_event_is_read_and_handled() {
        let (deliverer, mailer) = setup().await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/outbox-insert-stream.json");
        let batch: StreamBatch =
            serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("batch");
        assert_eq!(batch.records.len(), 1);
        assert!(matches!(
            batch.records[0].outbox_job(),
            Some(Ok(OutboxJob::ResetRequested { .. }))
        ));
        assert_eq!(
            deliver_batch(&deliverer, &batch).await,
            BatchResponse::default()
        );
        assert!(
            mailer.sent().is_empty(),
            "the sample is for an address with no account"
        );
    }

    #[tokio::test]
    async fn an_unreadable_item_is_logged_and_skipped_not_retried_forever() {
        let (deliverer, mailer) = setup().await;
        let mut bad = record("5", "OUTBOX#bad", &reset_job("a@example.org"));
        bad["dynamodb"]["NewImage"]["job"] = json!({"S": "{not json"});
        let batch: StreamBatch = serde_json::from_value(
            json!({"Records": [bad, record("6", "OUTBOX#ok", &reset_job("b@example.org"))]}),
        )
        .expect("batch");
        assert_eq!(
            deliver_batch(&deliverer, &batch).await,
            BatchResponse::default()
        );
        assert_eq!(mailer.sent().len(), 1);
    }
}

//! `send-reset-email`'s input: DynamoDB stream batches of table changes, of which the
//! outbox inserts are work.
//!
//! The event and response types are `aws_lambda_events`'; each record's image is read by
//! the DynamoDB adapter's own item decoding ([`item::outbox_job_from_item`]), so the item
//! layout has one owner. Records are handled in order; at the first one that must be
//! retried, the rest of the batch is left alone and that record's sequence number is
//! reported as the batch item failure: Lambda then retries from it, so nothing is lost and
//! nothing already sent is sent again.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use crate::adapters::dynamodb::item::{self, Item};
use crate::ports::{Clock as _, DeliveryLedger, OutboxJob, StoreError, SystemClock};
use crate::service::{DeliveryError, SendResetEmail};

/// The outbox job this record inserted, if it is one. Other items (users, lookups,
/// counters) and other events (MODIFY, REMOVE by TTL) are not work.
pub fn outbox_job(record: &EventRecord) -> Option<Result<OutboxJob, StoreError>> {
    if record.event_name != "INSERT" {
        return None;
    }
    let image: Item = record.change.new_image.clone().into();
    item::is_outbox_item(&image).then(|| item::outbox_job_from_item(&image))
}

/// Delivers every outbox job in the batch, stopping at the first that must be retried.
/// Each job handled is marked delivered in `ledger` (a redrive leaves it alone); a job that
/// failed for good is not, so a redrive can replay it once its cause is fixed.
pub async fn deliver_batch(
    send: &SendResetEmail,
    ledger: &dyn DeliveryLedger,
    batch: &Event,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &batch.records {
        let job = match outbox_job(record) {
            None => continue,
            Some(Ok(job)) => job,
            Some(Err(err)) => {
                // Retrying cannot fix an unreadable item: log it and move on.
                tracing::error!(event = "outbox_item_unreadable", error = %err);
                continue;
            }
        };
        match send.deliver(&job).await {
            Ok(outcome) => {
                tracing::debug!(event = "outbox_job_done", ?outcome);
                let keys: Item = record.change.keys.clone().into();
                if let Some(key) = item::outbox_item_key(&keys) {
                    // Sent already: a failed mark must not fail the batch (its retry would
                    // send again). At worst a redrive sends this job once more.
                    if let Err(err) = ledger.mark_delivered(key, SystemClock.unix_now()).await {
                        tracing::warn!(event = "outbox_mark_failed", error = %err);
                    }
                }
            }
            Err(DeliveryError::Permanent(reason)) => {
                tracing::error!(event = "outbox_job_failed", %reason);
            }
            Err(DeliveryError::Transient(reason)) => {
                tracing::warn!(event = "outbox_job_retry", %reason);
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                return response;
            }
        }
    }
    response
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
            "awsRegion": "us-east-1",
            "eventID": seq,
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {"pk": {"S": pk}, "sk": {"S": "OUTBOX"}},
                "NewImage": {"pk": {"S": pk}, "sk": {"S": "OUTBOX"}, "job": {"S": serde_json::to_string(job).expect("json")}},
                "SequenceNumber": seq,
                "SizeBytes": 200,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn reset_job(email: &str) -> OutboxJob {
        OutboxJob::ResetRequested {
            email_key: EmailKey::normalise(email).expect("valid"),
            email_lower: None,
            requested_at: 0,
            suppressed: false,
            locale: None,
            return_to: None,
        }
    }

    /// The outbox items marked delivered, in order.
    #[derive(Default)]
    struct Marks(std::sync::Mutex<Vec<String>>);

    impl Marks {
        fn keys(&self) -> Vec<String> {
            self.0.lock().expect("lock").clone()
        }
    }

    #[async_trait::async_trait]
    impl DeliveryLedger for Marks {
        async fn mark_delivered(&self, item_key: &str, _at: i64) -> Result<(), StoreError> {
            self.0.lock().expect("lock").push(item_key.to_owned());
            Ok(())
        }
    }

    async fn setup() -> (SendResetEmail, Arc<RecordingMailer>) {
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
                    credential_version: 0,
                    locale: None,
                })
                .await
                .expect("insert");
        }
        let mailer = Arc::new(RecordingMailer::new());
        let deliverer = SendResetEmail::new(
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
        let marks = Marks::default();
        let mut user_record = record("1", "USER#x", &reset_job("a@example.org"));
        user_record["dynamodb"]["NewImage"]["pk"] = json!({"S": "USER#x"});
        let mut removal = record("2", "OUTBOX#r", &reset_job("a@example.org"));
        removal["eventName"] = json!("REMOVE");
        let batch: Event = serde_json::from_value(json!({"Records": [
            user_record,
            removal,
            record("3", "OUTBOX#1", &reset_job("a@example.org")),
            record("4", "OUTBOX#2", &reset_job("missing@example.org")),
        ]}))
        .expect("batch");
        assert_eq!(
            deliver_batch(&deliverer, &marks, &batch).await,
            DynamoDbEventResponse::default()
        );
        assert_eq!(mailer.sent().len(), 1);
        // Both jobs were handled (one mailed, one for nobody); the other records are none.
        assert_eq!(marks.keys(), ["OUTBOX#1", "OUTBOX#2"]);
    }

    #[tokio::test]
    async fn a_job_that_failed_for_good_is_left_unmarked_for_a_redrive() {
        let (deliverer, _) = setup().await;
        let marks = Marks::default();
        let event = OutboxJob::PasswordChangedEvent(crate::ports::PasswordChangedEvent {
            uid: UserId::generate(),
            changed_at: 1,
            credential_version: 1,
        });
        let batch: Event = serde_json::from_value(json!({"Records": [
            record("30", "OUTBOX#e", &event),
            record("31", "OUTBOX#r", &reset_job("a@example.org")),
        ]}))
        .expect("batch");
        assert_eq!(
            deliver_batch(&deliverer, &marks, &batch).await,
            DynamoDbEventResponse::default()
        );
        assert_eq!(marks.keys(), ["OUTBOX#r"]);
    }

    /// A mail and an event are two records: a failed put is that record's batch item
    /// failure, and the retry (which Lambda starts at that record) publishes the event once
    /// without sending the mail before it again.
    #[tokio::test]
    async fn a_failed_event_put_is_retried_without_a_second_notice_mail() {
        use crate::adapters::memory::RecordingPublisher;
        use crate::ports::PasswordChangedEvent;
        let (deliverer, mailer) = setup().await;
        let marks = Marks::default();
        let publisher = Arc::new(RecordingPublisher::default());
        let deliverer = deliverer.with_events(publisher.clone());
        let event = PasswordChangedEvent {
            uid: UserId::generate(),
            changed_at: 1_700_000_000,
            credential_version: 3,
        };
        let batch: Event = serde_json::from_value(json!({"Records": [
            record("20", "OUTBOX#n", &reset_job("a@example.org")),
            record("21", "OUTBOX#e", &OutboxJob::PasswordChangedEvent(event.clone())),
        ]}))
        .expect("batch");
        publisher.fail_next(1);
        let response = deliver_batch(&deliverer, &marks, &batch).await;
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            json!({"batchItemFailures": [{"itemIdentifier": "21"}]})
        );
        assert!(publisher.published().is_empty());
        assert_eq!(mailer.sent().len(), 1);
        let mut retry = batch;
        retry.records.remove(0);
        assert_eq!(
            deliver_batch(&deliverer, &marks, &retry).await,
            DynamoDbEventResponse::default()
        );
        assert_eq!(publisher.published(), vec![event]);
        assert_eq!(mailer.sent().len(), 1, "the mail went out once");
    }

    #[tokio::test]
    async fn an_event_job_without_a_bus_is_a_permanent_failure_not_a_silent_drop() {
        let (deliverer, _) = setup().await;
        let job = OutboxJob::PasswordChangedEvent(crate::ports::PasswordChangedEvent {
            uid: UserId::generate(),
            changed_at: 1,
            credential_version: 1,
        });
        assert!(matches!(
            deliverer.deliver(&job).await,
            Err(DeliveryError::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn a_failed_send_reports_that_record_and_leaves_the_rest_for_the_retry() {
        let (deliverer, mailer) = setup().await;
        let marks = Marks::default();
        let batch: Event = serde_json::from_value(json!({"Records": [
            record("10", "OUTBOX#1", &reset_job("a@example.org")),
            record("11", "OUTBOX#2", &reset_job("b@example.org")),
            record("12", "OUTBOX#3", &reset_job("a@example.org")),
        ]}))
        .expect("batch");
        // The first send works, the second fails.
        let first = deliver_batch(
            &deliverer,
            &marks,
            &serde_json::from_value(json!({"Records": [record(
                "10",
                "OUTBOX#1",
                &reset_job("a@example.org")
            )]}))
            .expect("batch"),
        )
        .await;
        assert_eq!(first, DynamoDbEventResponse::default());
        mailer.fail_next(1);
        let mut rest = batch;
        rest.records.remove(0);
        let response = deliver_batch(&deliverer, &marks, &rest).await;
        // Record 12 was not sent: Lambda retries from 11, which would send it again.
        assert_eq!(mailer.sent().len(), 1);
        assert_eq!(
            marks.keys(),
            ["OUTBOX#1"],
            "only what was delivered is marked"
        );
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(
            json,
            json!({"batchItemFailures": [{"itemIdentifier": "11"}]})
        );
    }

    #[tokio::test]
    async fn the_sample_stream_event_is_read_and_handled() {
        let (deliverer, mailer) = setup().await;
        let marks = Marks::default();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/outbox-insert-stream.json");
        let batch: Event =
            serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("batch");
        assert_eq!(batch.records.len(), 1);
        assert!(matches!(
            outbox_job(&batch.records[0]),
            Some(Ok(OutboxJob::ResetRequested { .. }))
        ));
        assert_eq!(
            deliver_batch(&deliverer, &marks, &batch).await,
            DynamoDbEventResponse::default()
        );
        assert!(
            mailer.sent().is_empty(),
            "the sample is for an address with no account"
        );
    }

    #[tokio::test]
    async fn an_unreadable_item_is_logged_and_skipped_not_retried_forever() {
        let (deliverer, mailer) = setup().await;
        let marks = Marks::default();
        let mut bad = record("5", "OUTBOX#bad", &reset_job("a@example.org"));
        bad["dynamodb"]["NewImage"]["job"] = json!({"S": "{not json"});
        let batch: Event = serde_json::from_value(
            json!({"Records": [bad, record("6", "OUTBOX#ok", &reset_job("b@example.org"))]}),
        )
        .expect("batch");
        assert_eq!(
            deliver_batch(&deliverer, &marks, &batch).await,
            DynamoDbEventResponse::default()
        );
        assert_eq!(mailer.sent().len(), 1);
    }
}

//! Writes that must land together (a user and its e-mail lookup; a password change and its
//! notice) as one `TransactWriteItems`, and what its cancellation reasons mean.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use rand::Rng as _;

use super::error::{is_transient, map_sdk_error};
use crate::ports::StoreError;

/// How often a transaction that collided with another one (`TransactionConflict`) is
/// tried again before giving up as `Transient`: once the other transaction has landed,
/// the retry sees its result (for a password change: `Stale`).
const TRANSACTION_CONFLICT_RETRIES: u32 = 4;

/// What a cancelled transaction tells us.
#[derive(Debug, PartialEq, Eq)]
enum Cancelled {
    /// The condition on the item at these positions failed.
    Condition(Vec<usize>),
    /// It collided with another transaction: worth retrying at once.
    Conflict,
    /// Throttled or failed inside DynamoDB.
    Transient(String),
    Other(String),
}

fn cancellation(reasons: &[CancellationReason]) -> Cancelled {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    let failed: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, code)| **code == "ConditionalCheckFailed")
        .map(|(i, _)| i)
        .collect();
    if !failed.is_empty() {
        return Cancelled::Condition(failed);
    }
    if codes.contains(&"TransactionConflict") {
        return Cancelled::Conflict;
    }
    let summary = codes.join(",");
    if codes.iter().any(|c| is_transient(c)) {
        Cancelled::Transient(summary)
    } else {
        Cancelled::Other(summary)
    }
}

/// Runs a transaction, retrying at once (with a little jitter) while it collides with
/// another one. `Ok(None)` is success; `Ok(Some(positions))` names the items whose
/// condition failed.
pub(super) async fn transact(
    client: &Client,
    operation: &str,
    items: Vec<TransactWriteItem>,
) -> Result<Option<Vec<usize>>, StoreError> {
    let mut attempt = 0;
    loop {
        let result = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let outcome = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancellation(cancelled.cancellation_reasons())
            }
            _ => return Err(map_sdk_error(operation, &err)),
        };
        match outcome {
            Cancelled::Condition(positions) => return Ok(Some(positions)),
            Cancelled::Conflict if attempt < TRANSACTION_CONFLICT_RETRIES => {
                attempt += 1;
                let jitter = rand::rng().random_range(10..50u64) * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Cancelled::Conflict => {
                return Err(StoreError::Transient(format!(
                    "DynamoDB {operation}: transaction conflict persisted"
                )));
            }
            Cancelled::Transient(codes) => {
                return Err(StoreError::Transient(format!(
                    "DynamoDB {operation}: transaction cancelled ({codes})"
                )));
            }
            Cancelled::Other(codes) => {
                return Err(StoreError::Permanent(format!(
                    "DynamoDB {operation}: transaction cancelled ({codes})"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellation_reasons_are_classified() {
        assert_eq!(
            cancellation(&[reason("ConditionalCheckFailed"), reason("None")]),
            Cancelled::Condition(vec![0])
        );
        assert_eq!(
            cancellation(&[reason("None"), reason("TransactionConflict")]),
            Cancelled::Conflict
        );
        assert!(matches!(
            cancellation(&[reason("ThrottlingError"), reason("None")]),
            Cancelled::Transient(_)
        ));
        assert!(matches!(
            cancellation(&[reason("ValidationError"), reason("None")]),
            Cancelled::Other(_)
        ));
    }
}

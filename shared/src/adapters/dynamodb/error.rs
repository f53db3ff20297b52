//! DynamoDB failures as [`StoreError`]s. Errors never carry item contents (hashes, addresses,
//! tokens): only the operation, the service's error code and the HTTP status or transport
//! failure.

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::adapters::aws::{Failure, classify_sdk_error, is_transient_code};
use crate::ports::StoreError;

/// Error codes (with or without the `Exception` suffix) that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceeded",
    "Throttling",
    "ThrottlingError",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflict",
    "TransactionInProgress",
    "LimitExceeded",
];

pub(super) fn is_transient(code: &str) -> bool {
    is_transient_code(code, TRANSIENT_CODES)
}

/// Maps an SDK failure of `operation` by the adapters' one classification
/// ([`classify_sdk_error`]): transient ones are [`StoreError::Transient`].
pub(super) fn map_sdk_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match classify_sdk_error(&format!("DynamoDB {operation}"), err, TRANSIENT_CODES) {
        Failure::Transient(message) => StoreError::Transient(message),
        Failure::Permanent(message) => StoreError::Permanent(message),
    }
}

pub(super) fn build_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("could not build {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_match_with_and_without_suffix() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
            "TransactionConflictException",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "ConditionalCheckFailedException",
        ] {
            assert!(!is_transient(code), "{code}");
        }
    }
}

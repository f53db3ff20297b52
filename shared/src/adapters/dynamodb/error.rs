//! DynamoDB failures as [`StoreError`]s. Errors never carry item contents (hashes, addresses,
//! tokens): only the operation, the service's error code and the HTTP status or transport
//! failure.

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// Error codes (with or without the `Exception` suffix) that mean "try again later".
const RETRYABLE_CODES: &[&str] = &[
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

pub(super) fn is_retryable_code(code: &str) -> bool {
    let code = code.strip_suffix("Exception").unwrap_or(code);
    RETRYABLE_CODES.contains(&code)
}

/// The error's source chain as text: transport errors ("connection refused"), which hold
/// no item data.
pub(crate) fn source_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(source) = next {
        let text = source.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = source.source();
    }
    parts.join(": ")
}

/// Maps an SDK failure of `operation`: transient ones (throttling, 5xx, timeouts,
/// unreachable endpoint) are `Unavailable`, everything else is `Fault`. Only the error code
/// and status go into the message, never the service's free text (which may quote keys).
pub(super) fn map_sdk_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::TimeoutError(_) => {
            StoreError::Unavailable(format!("DynamoDB {operation}: timed out"))
        }
        SdkError::DispatchFailure(failure) => {
            let detail = failure
                .as_connector_error()
                .map(|e| source_chain(e))
                .unwrap_or_else(|| "dispatch failure".to_owned());
            if failure.is_user() {
                StoreError::Fault(format!("DynamoDB {operation}: request not sent: {detail}"))
            } else {
                StoreError::Unavailable(format!(
                    "DynamoDB {operation}: could not reach the service: {detail}"
                ))
            }
        }
        SdkError::ResponseError(response) => StoreError::Unavailable(format!(
            "DynamoDB {operation}: unreadable response (HTTP {})",
            response.raw().status().as_u16()
        )),
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            let code = service.err().code().unwrap_or("unknown");
            let message = format!("DynamoDB {operation}: {code} (HTTP {})", status.as_u16());
            if is_retryable_code(code) || status.is_server_error() || status.as_u16() == 429 {
                StoreError::Unavailable(message)
            } else {
                StoreError::Fault(message)
            }
        }
        SdkError::ConstructionFailure(_) => {
            StoreError::Fault(format!("DynamoDB {operation}: request could not be built"))
        }
        _ => StoreError::Fault(format!("DynamoDB {operation}: unexpected SDK failure")),
    }
}

pub(super) fn build_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Fault(format!("could not build {what}: {err}"))
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
            assert!(is_retryable_code(code), "{code}");
        }
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "ConditionalCheckFailedException",
        ] {
            assert!(!is_retryable_code(code), "{code}");
        }
    }
}

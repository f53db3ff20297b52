//! The EventBridge adapter: one `PutEvents` entry per `PasswordChanged` event, source
//! `pwreset`, on the configured bus.
//!
//! `PutEvents` can answer 200 and still refuse an entry (`FailedEntryCount`, a code per
//! entry): such an entry is a failure like any other, retried when its code says so.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::aws::{Failure, classify_sdk_error, is_transient_code};
use crate::ports::{EventPublisher, PasswordChangedEvent, PublishError};

/// Error codes worth retrying, for the call and for a refused entry alike, without the
/// `Exception` suffix (`is_transient_code` strips it from what AWS sends:
/// `InternalException` is `Internal`).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "LimitExceeded",
    "InternalFailure",
    "Internal",
    "ServiceUnavailable",
    "RequestTimeout",
    "ConcurrentModification",
];

/// An EventBridge client from the environment with our timeouts and retries (the CLI's
/// way, see [`crate::adapters::aws_sdk_config`]).
pub async fn eventbridge_client() -> Client {
    Client::new(&super::aws_sdk_config().await)
}

/// Puts events on `bus` (a name or an ARN).
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    pub client: Client,
    pub bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &PasswordChangedEvent) -> Result<(), PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(PasswordChangedEvent::SOURCE)
            .detail_type(PasswordChangedEvent::DETAIL_TYPE)
            .detail(event.detail_json())
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                match classify_sdk_error("EventBridge PutEvents", &e, TRANSIENT_CODES) {
                    Failure::Transient(message) => PublishError::Transient(message),
                    Failure::Permanent(message) => PublishError::Permanent(message),
                }
            })?;
        if output.failed_entry_count() == 0 {
            return Ok(());
        }
        // Only the code: an entry's message may quote the request.
        let code = output
            .entries()
            .first()
            .and_then(|entry| entry.error_code())
            .unwrap_or("unknown")
            .to_owned();
        let message = format!("EventBridge PutEvents: the entry was refused ({code})");
        if is_transient_code(&code, TRANSIENT_CODES) {
            Err(PublishError::Transient(message))
        } else {
            Err(PublishError::Permanent(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_entries_are_retried_only_for_throttling_and_internal_faults() {
        for code in [
            "ThrottlingException",
            "Throttling",
            "InternalFailure",
            "InternalException",
        ] {
            assert!(is_transient_code(code, TRANSIENT_CODES), "{code}");
        }
        for code in [
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ValidationException",
            "unknown",
        ] {
            assert!(!is_transient_code(code, TRANSIENT_CODES), "{code}");
        }
    }
}

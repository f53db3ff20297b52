//! The two drivers of [`crate::service::SendResetEmail`], which turns an outbox job into a
//! mail: [`stream`] handles the DynamoDB stream batches `send-reset-email` receives in
//! Lambda (feature `aws`); [`worker`] drains the in-memory outbox inside `pwreset serve`,
//! with the pickup delay and retries the stream gives in production.

#[cfg(feature = "aws")]
pub mod stream;
pub mod worker;

//! The DynamoDB adapter: users, the outbox and the rate-limit counters in one table.
//!
//! Items (string keys `pk` and `sk`):
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | user | `USER#<uid>` | `USER` | `uid`, `email` (as stored), `email_key`, `password_hash` (absent: none), `active` (BOOL) |
//! | e-mail lookup | `EMAIL#<email_key>` | `EMAIL` | `uid` |
//! | outbox job | `OUTBOX#<random id>` | `OUTBOX` | `job` (the [`OutboxJob`] as JSON), `created_at`, `expires_at` |
//! | rate counter | `LIMIT#<bucket>#<window index>` | `LIMIT` | `hits`, `expires_at` |
//!
//! The table streams `NEW_IMAGE`s; `send-reset-email` consumes the `INSERT`s of outbox items
//! (filter on `eventName = INSERT` and a `pk` starting with [`OUTBOX_PREFIX`]). Outbox items
//! and counters expire through TTL on `expires_at`.
//!
//! Errors never carry item contents (hashes, addresses, tokens): only the operation, the
//! service's error code and the HTTP status or transport failure.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, KeySchemaElement,
    KeyType, Put, ReturnValue, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng as _, RngCore as _};
use time::OffsetDateTime;

use crate::domain::{EmailAddress, EmailKey, PasswordHash, User, UserId};
use crate::ports::{
    ChangeOutcome, InsertOutcome, Outbox, OutboxJob, PasswordChange, RateDecision, RateLimit,
    RateLimiter, StoreError, UserRepository,
};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const USER_PREFIX: &str = "USER#";
pub const USER_SK: &str = "USER";
pub const EMAIL_PREFIX: &str = "EMAIL#";
pub const EMAIL_SK: &str = "EMAIL";
pub const OUTBOX_PREFIX: &str = "OUTBOX#";
pub const OUTBOX_SK: &str = "OUTBOX";
pub const LIMIT_PREFIX: &str = "LIMIT#";
pub const LIMIT_SK: &str = "LIMIT";
/// The TTL attribute (epoch seconds) of outbox items and rate counters.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The outbox item's attribute holding the job as JSON.
pub const JOB_ATTRIBUTE: &str = "job";

/// Outbox items outlive every retry of the worker, then expire.
const OUTBOX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Counters stay a little past the end of their window (TTL deletes lazily anyway, and a
/// counter for a past window is never read again).
const LIMIT_TTL_MARGIN_SECS: i64 = 300;
/// How often a transaction that collided with another one (`TransactionConflict`) is
/// tried again before giving up as `Unavailable`: once the other transaction has landed,
/// the retry sees its result (for a password change: `Stale`).
const TRANSACTION_CONFLICT_RETRIES: u32 = 4;
/// How long `create_table` waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A DynamoDB client from the environment with our timeouts and retries (see
/// [`crate::adapters::aws_sdk_config`]); `AWS_ENDPOINT_URL_DYNAMODB` points it at an
/// emulator.
pub async fn dynamodb_client() -> Client {
    Client::new(&super::aws_sdk_config().await)
}

/// Users, outbox and rate counters in the one table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn user_key(uid: &UserId) -> HashMap<String, AttributeValue> {
    key(format!("{USER_PREFIX}{uid}"), USER_SK)
}

fn email_lookup_key(email_key: &EmailKey) -> HashMap<String, AttributeValue> {
    key(format!("{EMAIL_PREFIX}{}", email_key.as_str()), EMAIL_SK)
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh outbox id: 128 random bits, URL-safe.
fn outbox_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn outbox_item(job: &OutboxJob) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let json = serde_json::to_string(job)
        .map_err(|e| StoreError::Fault(format!("outbox job not serialisable: {e}")))?;
    let now = unix_now();
    let mut item = key(format!("{OUTBOX_PREFIX}{}", outbox_id()), OUTBOX_SK);
    item.insert(JOB_ATTRIBUTE.to_owned(), s(json));
    item.insert("created_at".to_owned(), n(now));
    item.insert(
        TTL_ATTRIBUTE.to_owned(),
        n(now.saturating_add(OUTBOX_TTL_SECS)),
    );
    Ok(item)
}

/// Reads an outbox job back from an item (or a stream's `NEW_IMAGE` converted to SDK
/// attribute values).
pub fn outbox_job_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<OutboxJob, StoreError> {
    let json = string_attr(item, JOB_ATTRIBUTE)?;
    serde_json::from_str(json).map_err(|e| {
        // serde_json's messages can quote the offending value (an e-mail key): keep only
        // the category.
        StoreError::Fault(format!(
            "outbox item holds no valid job ({:?} error)",
            e.classify()
        ))
    })
}

fn user_item(user: &User) -> HashMap<String, AttributeValue> {
    let mut item = user_key(&user.uid);
    item.insert("uid".to_owned(), s(user.uid.as_str()));
    item.insert("email".to_owned(), s(user.email.as_str()));
    item.insert("email_key".to_owned(), s(user.email_key().as_str()));
    if let Some(hash) = &user.password_hash {
        item.insert("password_hash".to_owned(), s(hash.as_str()));
    }
    item.insert("active".to_owned(), AttributeValue::Bool(user.active));
    item
}

fn string_attr<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        Some(_) => Err(StoreError::Fault(format!(
            "attribute {name} is not a string"
        ))),
        None => Err(StoreError::Fault(format!("attribute {name} is missing"))),
    }
}

/// Parses a user item back into the domain type; anything unexpected is our fault.
pub fn user_from_item(item: &HashMap<String, AttributeValue>) -> Result<User, StoreError> {
    let uid = UserId::parse(string_attr(item, "uid")?)
        .map_err(|_| StoreError::Fault("stored uid is malformed".into()))?;
    let email = EmailAddress::parse(string_attr(item, "email")?)
        .map_err(|e| StoreError::Fault(format!("stored e-mail address is malformed: {e}")))?;
    let password_hash = match item.get("password_hash") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::S(hash)) => Some(PasswordHash::new(hash.clone())),
        Some(_) => {
            return Err(StoreError::Fault(
                "attribute password_hash is not a string".into(),
            ));
        }
    };
    let active = match item.get("active") {
        Some(AttributeValue::Bool(active)) => *active,
        Some(_) => {
            return Err(StoreError::Fault(
                "attribute active is not a boolean".into(),
            ));
        }
        None => return Err(StoreError::Fault("attribute active is missing".into())),
    };
    Ok(User {
        uid,
        email,
        password_hash,
        active,
    })
}

// ---------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------

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

fn is_retryable_code(code: &str) -> bool {
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
fn map_sdk_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> StoreError
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

fn build_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Fault(format!("could not build {what}: {err}"))
}

/// What a cancelled transaction tells us.
#[derive(Debug, PartialEq, Eq)]
enum Cancelled {
    /// The condition on the item at these positions failed.
    Condition(Vec<usize>),
    /// It collided with another transaction: worth retrying at once.
    Conflict,
    /// Throttled or failed inside DynamoDB.
    Unavailable(String),
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
    if codes.iter().any(|c| is_retryable_code(c)) {
        Cancelled::Unavailable(summary)
    } else {
        Cancelled::Other(summary)
    }
}

/// Runs a transaction, retrying at once (with a little jitter) while it collides with
/// another one. `Ok(None)` is success; `Ok(Some(positions))` names the items whose
/// condition failed.
async fn transact(
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
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB {operation}: transaction conflict persisted"
                )));
            }
            Cancelled::Unavailable(codes) => {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB {operation}: transaction cancelled ({codes})"
                )));
            }
            Cancelled::Other(codes) => {
                return Err(StoreError::Fault(format!(
                    "DynamoDB {operation}: transaction cancelled ({codes})"
                )));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------

/// Creates the table (on-demand, `pk`/`sk` strings, stream of new images) unless it exists,
/// waits until it is active, and turns on TTL on [`TTL_ATTRIBUTE`]. An emulator without TTL
/// gets a warning, not an error.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| build_error("attribute definition", e))
    };
    let key_element = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| build_error("key schema", e))
    };
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .map_err(|e| build_error("stream specification", e))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .key_schema(key_element(PK, KeyType::Hash)?)
        .key_schema(key_element(SK, KeyType::Range)?)
        .stream_specification(stream)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table, "created table"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(table, "table exists already");
        }
        Err(err) => return Err(map_sdk_error("CreateTable", &err)),
    }
    wait_until_active(client, table).await?;
    enable_ttl(client, table).await
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| map_sdk_error("DescribeTable", &e))?;
        let status = described.table().and_then(|t| t.table_status());
        if matches!(status, Some(TableStatus::Active) | None) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table did not become active within {} s",
                TABLE_ACTIVE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Codes an emulator answers for an operation it does not implement.
fn is_unsupported(code: Option<&str>, status: u16) -> bool {
    status == 501
        || matches!(
            code,
            Some(
                "UnknownOperationException"
                    | "NotImplemented"
                    | "NotImplementedException"
                    | "UnsupportedOperation"
            )
        )
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    // Already on (a second `table create`)? Then there is nothing to do: asking again is a
    // ValidationException on AWS.
    match client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
    {
        Ok(described) => {
            if let Some(ttl) = described.time_to_live_description() {
                let on = matches!(
                    ttl.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                );
                if on && ttl.attribute_name() == Some(TTL_ATTRIBUTE) {
                    return Ok(());
                }
            }
        }
        Err(SdkError::ServiceError(service))
            if is_unsupported(service.err().code(), service.raw().status().as_u16()) =>
        {
            tracing::warn!(
                table,
                "this DynamoDB does not support TTL; counters and outbox items will not expire"
            );
            return Ok(());
        }
        Err(err) => return Err(map_sdk_error("DescribeTimeToLive", &err)),
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(|e| build_error("TTL specification", e))?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(table, attribute = TTL_ATTRIBUTE, "enabled TTL");
            Ok(())
        }
        Err(SdkError::ServiceError(service))
            if is_unsupported(service.err().code(), service.raw().status().as_u16()) =>
        {
            tracing::warn!(
                table,
                "this DynamoDB does not support TTL; counters and outbox items will not expire"
            );
            Ok(())
        }
        Err(err) => Err(map_sdk_error("UpdateTimeToLive", &err)),
    }
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

impl DynamoStore {
    async fn get(
        &self,
        operation: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(operation, &e))?;
        Ok(output.item)
    }

    fn put_item(
        &self,
        item: HashMap<String, AttributeValue>,
        what: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error(what, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl UserRepository for DynamoStore {
    async fn find_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError> {
        match self.get("GetItem(user)", user_key(uid)).await? {
            Some(item) => user_from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn find_by_email_key(&self, key: &EmailKey) -> Result<Option<User>, StoreError> {
        let Some(lookup) = self.get("GetItem(email)", email_lookup_key(key)).await? else {
            return Ok(None);
        };
        let uid = UserId::parse(string_attr(&lookup, "uid")?)
            .map_err(|_| StoreError::Fault("e-mail lookup item holds a malformed uid".into()))?;
        let Some(item) = self.get("GetItem(user)", user_key(&uid)).await? else {
            // Both items are written in one transaction; a lookup without its user is a
            // broken table, not a missing account.
            return Err(StoreError::Fault(
                "e-mail lookup item points at a missing user".into(),
            ));
        };
        let user = user_from_item(&item)?;
        if &user.email_key() != key {
            return Err(StoreError::Fault(
                "e-mail lookup item points at a user with another address".into(),
            ));
        }
        Ok(Some(user))
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        let mut lookup = email_lookup_key(&user.email_key());
        lookup.insert("uid".to_owned(), s(user.uid.as_str()));
        let items = vec![
            self.put_item(user_item(user), "user put")?,
            self.put_item(lookup, "e-mail lookup put")?,
        ];
        match transact(&self.client, "TransactWriteItems(insert)", items).await? {
            None => Ok(InsertOutcome::Inserted),
            // Either the address or (astronomically unlikely) the uid exists already.
            Some(_) => Ok(InsertOutcome::EmailTaken),
        }
    }

    async fn commit_password_change(
        &self,
        change: &PasswordChange,
    ) -> Result<ChangeOutcome, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(user_key(&change.uid)))
            .update_expression("SET password_hash = :new")
            // What verify saw, all of it: the hash, the address the token was bound to and
            // an active account. Anything else changed in between makes the token stale.
            .condition_expression(
                "attribute_exists(pk) AND password_hash = :expected AND email = :email \
                 AND active = :active",
            )
            .expression_attribute_values(":new", s(change.new.as_str()))
            .expression_attribute_values(":expected", s(change.expected.as_str()))
            .expression_attribute_values(":email", s(change.expected_email.as_str()))
            .expression_attribute_values(":active", AttributeValue::Bool(true))
            .build()
            .map_err(|e| build_error("password update", e))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.put_item(outbox_item(&change.notice)?, "outbox put")?,
        ];
        match transact(&self.client, "TransactWriteItems(password change)", items).await? {
            None => Ok(ChangeOutcome::Applied),
            Some(positions) if positions.contains(&0) => Ok(ChangeOutcome::Stale),
            Some(_) => Err(StoreError::Fault("outbox id collided".into())),
        }
    }
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn enqueue(&self, job: OutboxJob) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(outbox_item(&job)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem(outbox)", &e))?;
        Ok(())
    }
}

#[async_trait]
impl RateLimiter for DynamoStore {
    async fn hit(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
    ) -> Result<RateDecision, StoreError> {
        let (index, retry_after_secs) = limit.window_at(now);
        let window_end = index.saturating_add(1).saturating_mul(limit.window_secs());
        let expires_at = window_end.saturating_add(LIMIT_TTL_MARGIN_SECS);
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("{LIMIT_PREFIX}{bucket}#{index}"),
                LIMIT_SK,
            )))
            .update_expression("ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| map_sdk_error("UpdateItem(limit)", &e))?;
        let hits: u64 = match output.attributes().and_then(|a| a.get("hits")) {
            Some(AttributeValue::N(hits)) => hits
                .parse()
                .map_err(|_| StoreError::Fault("rate counter is not an integer".into()))?,
            _ => {
                return Err(StoreError::Fault(
                    "rate counter missing from the update's answer".into(),
                ));
            }
        };
        if hits > u64::from(limit.max) {
            Ok(RateDecision::Limited { retry_after_secs })
        } else {
            Ok(RateDecision::Allowed)
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
            Cancelled::Unavailable(_)
        ));
        assert!(matches!(
            cancellation(&[reason("ValidationError"), reason("None")]),
            Cancelled::Other(_)
        ));
    }

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

    #[test]
    fn user_items_round_trip_and_bad_ones_are_faults() {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse("Mike@Example.org").expect("valid"),
            password_hash: Some(PasswordHash::new("$argon2id$v=19$x")),
            active: true,
        };
        let item = user_item(&user);
        assert_eq!(user_from_item(&item).expect("parses"), user);
        let mut no_hash = user.clone();
        no_hash.password_hash = None;
        assert_eq!(
            user_from_item(&user_item(&no_hash)).expect("parses"),
            no_hash
        );
        let mut broken = item.clone();
        broken.insert("email".into(), s("not an address"));
        assert!(matches!(user_from_item(&broken), Err(StoreError::Fault(_))));
        let mut broken = item;
        broken.remove("active");
        assert!(matches!(user_from_item(&broken), Err(StoreError::Fault(_))));
    }

    #[test]
    fn outbox_items_carry_the_job_and_a_ttl() {
        let job = OutboxJob::PasswordChanged {
            uid: UserId::generate(),
            changed_at: 5,
        };
        let item = outbox_item(&job).expect("item");
        assert_eq!(outbox_job_from_item(&item).expect("job"), job);
        assert!(
            string_attr(&item, PK)
                .expect("pk")
                .starts_with(OUTBOX_PREFIX)
        );
        assert!(matches!(
            item.get(TTL_ATTRIBUTE),
            Some(AttributeValue::N(_))
        ));
    }

    #[test]
    fn outbox_items_for_addresses_that_fold_twice_read_back() {
        // "ß" + combining acute: a key that was not closed failed to parse on the way back
        // from the stream, so that user never got mail.
        for raw in [
            "stra\u{DF}\u{301}e@example.org",
            "\u{3AA}\u{301}@example.org",
        ] {
            let job = OutboxJob::ResetRequested {
                email_key: EmailKey::normalise(raw).expect("valid"),
                requested_at: 5,
                suppressed: false,
            };
            let item = outbox_item(&job).expect("item");
            assert_eq!(outbox_job_from_item(&item).expect("job"), job, "{raw:?}");
        }
    }
}

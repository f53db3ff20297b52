//! The DynamoDB adapter: users, the outbox and the rate-limit counters in one table.
//!
//! - [`item`]: the item layout (keys, attributes, expressions) and its encoding, the one
//!   place that knows it;
//! - [`error`]: SDK failures as [`StoreError`]s;
//! - `transaction`: the writes that land together;
//! - [`table`]: creating the table (the CLI's `table create`);
//! - here: [`DynamoStore`], the ports over all of it.
//!
//! The table streams `NEW_IMAGE`s; `send-reset-email` consumes the `INSERT`s of outbox items
//! (filter on `eventName = INSERT` and a `pk` starting with [`item::OUTBOX_PREFIX`]). Outbox
//! items and counters expire through TTL on [`item::TTL_ATTRIBUTE`].

pub mod error;
pub mod item;
pub mod table;
mod transaction;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};

use self::error::{build_error, map_sdk_error};
use self::item::Item;
use self::transaction::transact;
use crate::domain::{EmailKey, User, UserId};
use crate::ports::{
    ChangeOutcome, InsertOutcome, Outbox, OutboxJob, PasswordChange, RateDecision, RateLimit,
    RateLimiter, StoreError, UserRepository,
};

/// Counters stay a little past the end of their window (TTL deletes lazily anyway, and a
/// counter for a past window is never read again).
const LIMIT_TTL_MARGIN_SECS: i64 = 300;

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

impl DynamoStore {
    async fn get(&self, operation: &str, key: Item) -> Result<Option<Item>, StoreError> {
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

    fn put_item(&self, item: Item, what: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(item::PUT_IF_ABSENT)
            .build()
            .map_err(|e| build_error(what, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl UserRepository for DynamoStore {
    async fn find_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError> {
        match self.get("GetItem(user)", item::user_key(uid)).await? {
            Some(found) => item::user_from_item(&found).map(Some),
            None => Ok(None),
        }
    }

    async fn find_by_email_key(&self, key: &EmailKey) -> Result<Option<User>, StoreError> {
        let Some(lookup) = self
            .get("GetItem(email)", item::email_lookup_key(key))
            .await?
        else {
            return Ok(None);
        };
        let uid = item::uid_from_email_lookup(&lookup)?;
        let Some(found) = self.get("GetItem(user)", item::user_key(&uid)).await? else {
            // Both items are written in one transaction; a lookup without its user is a
            // broken table, not a missing account.
            return Err(StoreError::Permanent(
                "e-mail lookup item points at a missing user".into(),
            ));
        };
        let user = item::user_from_item(&found)?;
        if &user.email_key() != key {
            return Err(StoreError::Permanent(
                "e-mail lookup item points at a user with another address".into(),
            ));
        }
        Ok(Some(user))
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        let items = vec![
            self.put_item(item::user_item(user), "user put")?,
            self.put_item(item::email_lookup_item(user), "e-mail lookup put")?,
        ];
        match transact(&self.client, "TransactWriteItems(insert)", items).await? {
            None => Ok(InsertOutcome::Inserted),
            // Either the address or the uid (e.g. an imported primary key) exists already.
            Some(_) => Ok(InsertOutcome::EmailTaken),
        }
    }

    async fn commit_password_change(
        &self,
        change: &PasswordChange,
    ) -> Result<ChangeOutcome, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::user_key(&change.uid)))
            .update_expression(item::PASSWORD_REPLACE)
            .condition_expression(item::password_replace_condition(change.expected_version))
            .set_expression_attribute_values(Some(item::password_change_values(change)))
            .build()
            .map_err(|e| build_error("password update", e))?;
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.put_item(item::outbox_item(&change.notice)?, "outbox put")?,
        ];
        if let Some(event) = &change.event {
            items.push(self.put_item(item::outbox_item(event)?, "outbox put")?);
        }
        match transact(&self.client, "TransactWriteItems(password change)", items).await? {
            None => Ok(ChangeOutcome::Applied),
            Some(positions) if positions.contains(&0) => Ok(ChangeOutcome::Stale),
            Some(_) => Err(StoreError::Permanent("outbox id collided".into())),
        }
    }
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn enqueue(&self, job: OutboxJob) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::outbox_item(&job)?))
            .condition_expression(item::PUT_IF_ABSENT)
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
            .set_key(Some(item::counter_key(bucket, index)))
            .update_expression(item::COUNTER_HIT)
            .set_expression_attribute_values(Some(item::counter_hit_values(expires_at)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| map_sdk_error("UpdateItem(limit)", &e))?;
        let hits = item::hits_from_update(output.attributes())?;
        if hits > u64::from(limit.max) {
            Ok(RateDecision::Limited { retry_after_secs })
        } else {
            Ok(RateDecision::Allowed)
        }
    }
}

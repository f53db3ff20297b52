//! The DynamoDB adapter: the outbox and the rate-limit counters in pwreset's table
//! (`TABLE_NAME`, with the stream), users in the users table (`USERS_TABLE`).
//!
//! - [`item`]: pwreset's item layouts (keys, attributes, expressions) and their encoding;
//! - [`users`]: the users table in either layout (pwreset's own or a team's);
//! - [`error`]: SDK failures as [`StoreError`]s;
//! - `transaction`: the writes that land together;
//! - [`outbox`]: delivered marks, and what a redrive reads and claims;
//! - [`table`]: creating the tables (the CLI's `table create`);
//! - here: [`DynamoStore`], the ports over all of it.
//!
//! The table streams `NEW_IMAGE`s (never a user or a hash: those live in the users table); `send-reset-email` consumes the `INSERT`s of outbox items
//! (filter on `eventName = INSERT` and a `pk` starting with [`item::OUTBOX_PREFIX`]). Outbox
//! items and counters expire through TTL on [`item::TTL_ATTRIBUTE`].

pub mod error;
pub mod item;
pub mod outbox;
pub mod table;
mod transaction;
pub mod users;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};

use self::error::{build_error, map_sdk_error};
use self::item::Item;
use self::transaction::transact;
use self::users::Users;
use crate::config::{UsersLayout, UsersTable};
use crate::domain::{EmailLookup, User, UserId};
use crate::ports::{
    ChangeOutcome, Forgive, InsertOutcome, Outbox, OutboxJob, PasswordChange, RateDecision,
    RateLimit, RateLimiter, StoreError, UserRepository,
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

/// The outbox and rate counters in `table`, users in [`Users`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub table: String,
    pub users: Users,
}

impl DynamoStore {
    /// Over `table`, with users in pwreset's own layout beside it (`<table>-users`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        let users = Users::new(UsersTable::own_beside(&table));
        Self {
            client,
            table,
            users,
        }
    }

    /// With users where `USERS_*` says.
    pub fn with_users(self, users: UsersTable) -> Self {
        Self {
            users: Users::new(users),
            ..self
        }
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
        self.users.find_by_uid(&self.client, uid).await
    }

    async fn find_by_email(&self, lookup: &EmailLookup) -> Result<Vec<User>, StoreError> {
        self.users.find_by_email(&self.client, lookup).await
    }

    fn fresh_uid(&self) -> UserId {
        self.users.fresh_uid()
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        if matches!(self.users.table.layout, UsersLayout::Mapped(_))
            && !self
                .find_by_email(&EmailLookup::from(user.email_key()))
                .await?
                .is_empty()
        {
            return Ok(InsertOutcome::EmailTaken);
        }
        let items = self.users.insert_items(user)?;
        match transact(&self.client, "TransactWriteItems(insert)", items).await {
            Ok(None) => Ok(InsertOutcome::Inserted),
            // Either the address or the uid (e.g. an imported primary key) exists already.
            Ok(Some(_)) => Ok(InsertOutcome::EmailTaken),
            Err(StoreError::Permanent(message))
                if message.contains("ValidationException") && self.users.key_type_unknown() =>
            {
                // A team table whose key type was not known yet: the number did not fit, so
                // it is a string key.
                self.users.learn_string_key();
                match transact(
                    &self.client,
                    "TransactWriteItems(insert)",
                    self.users.insert_items(user)?,
                )
                .await?
                {
                    None => Ok(InsertOutcome::Inserted),
                    Some(_) => Ok(InsertOutcome::EmailTaken),
                }
            }
            Err(err) => Err(err),
        }
    }

    async fn commit_password_change(
        &self,
        change: &PasswordChange,
    ) -> Result<ChangeOutcome, StoreError> {
        let update = self.users.password_update(change)?;
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

    async fn forgive(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
        hits: Forgive,
    ) -> Result<(), StoreError> {
        let (index, _) = limit.window_at(now);
        // Both forms are one conditional UpdateItem (a cleared counter stays until its TTL,
        // at zero): the function that forgives needs no DeleteItem, in code or in IAM.
        let (expression, condition, value) = match hits {
            Forgive::One => (item::COUNTER_FORGIVE_ONE, item::COUNTER_ABOVE_ZERO, -1),
            Forgive::All => (item::COUNTER_FORGIVE_ALL, item::COUNTER_EXISTS, 0),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::counter_key(bucket, index)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_values(":hits", item::number_value(value));
        if hits == Forgive::One {
            update = update.expression_attribute_values(":zero", item::number_value(0));
        }
        let forgiven = update.send().await;
        match forgiven {
            Ok(_) => {}
            // No counter (nothing counted in this window, or it expired), or it is at zero
            // (a success cleared it meanwhile): nothing to forgive.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(err) => return Err(map_sdk_error("UpdateItem(limit)", &err)),
        }
        Ok(())
    }
}

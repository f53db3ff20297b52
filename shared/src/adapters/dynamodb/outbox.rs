//! The outbox items' life after their insert: the stream consumer marks each handled job
//! ([`DeliveryLedger`]), and a redrive reads, claims and releases the ones that never were.
//! Every call here is on `OUTBOX#` items of pwreset's table only.

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoStore;
use super::error::map_sdk_error;
use super::item::{self, Item};
use crate::ports::{DeliveryLedger, StoreError};

/// Whether the update was refused because its condition did not hold.
fn condition_failed(err: &SdkError<UpdateItemError, HttpResponse>) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

#[async_trait]
impl DeliveryLedger for DynamoStore {
    async fn mark_delivered(&self, item_key: &str, at: i64) -> Result<(), StoreError> {
        let marked = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::outbox_key(item_key)))
            .update_expression(item::MARK_DELIVERED)
            .condition_expression(item::OUTBOX_ITEM_EXISTS)
            .expression_attribute_values(":at", item::number_value(at))
            .send()
            .await;
        match marked {
            // Gone (its TTL passed): nothing to mark, and nothing a redrive could resend.
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(map_sdk_error("UpdateItem(outbox delivered)", &err)),
            Ok(_) => Ok(()),
        }
    }
}

/// How a claim on an outbox item went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: deliver it, then keep the mark (or release it on failure).
    Taken,
    /// Handled already, by the stream consumer or another redrive.
    AlreadyDelivered,
    /// Expired and removed.
    Gone,
}

impl DynamoStore {
    /// The outbox item `item_key`, read consistently.
    pub async fn outbox_item(&self, item_key: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::outbox_key(item_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetItem(outbox)", &e))?;
        Ok(output.item)
    }

    /// Marks `item_key` delivered at `at` unless it is marked already: the one conditional
    /// write that makes a redrive idempotent (two redrives never both send a job).
    pub async fn claim_outbox_item(&self, item_key: &str, at: i64) -> Result<Claim, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::outbox_key(item_key)))
            .update_expression(item::MARK_DELIVERED)
            .condition_expression(item::OUTBOX_ITEM_UNCLAIMED)
            .expression_attribute_values(":at", item::number_value(at))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(Claim::Taken),
            Err(err) if condition_failed(&err) => Ok(match self.outbox_item(item_key).await? {
                Some(_) => Claim::AlreadyDelivered,
                None => Claim::Gone,
            }),
            Err(err) => Err(map_sdk_error("UpdateItem(outbox claim)", &err)),
        }
    }

    /// Takes back the claim made at `at` (a redelivery that failed), so a later redrive
    /// tries the job again.
    pub async fn release_outbox_claim(&self, item_key: &str, at: i64) -> Result<(), StoreError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::outbox_key(item_key)))
            .update_expression(item::RELEASE_CLAIM)
            .condition_expression(item::CLAIMED_AT)
            .expression_attribute_values(":at", item::number_value(at))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(map_sdk_error("UpdateItem(outbox release)", &err)),
        }
    }

    /// Every outbox item written from `from` to `until` (epoch seconds, both included) that
    /// no one marked delivered, oldest first, with its key. A scan of the whole table: a
    /// recovery chore, not a request path.
    pub async fn undelivered_outbox_items(
        &self,
        from: i64,
        until: i64,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(
                    "begins_with(pk, :outbox) AND created_at BETWEEN :from AND :until \
                     AND attribute_not_exists(delivered_at)",
                )
                .expression_attribute_values(
                    ":outbox",
                    AttributeValue::S(item::OUTBOX_PREFIX.to_owned()),
                )
                .expression_attribute_values(":from", item::number_value(from))
                .expression_attribute_values(":until", item::number_value(until))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| map_sdk_error("Scan(outbox)", &e))?;
            for found_item in page.items.unwrap_or_default() {
                if let Some(key) = item::outbox_item_key(&found_item).map(str::to_owned) {
                    found.push((key, found_item));
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.sort_by_key(|(_, found_item)| item::created_at(found_item));
        Ok(found)
    }
}

//! Creating the tables: what `pwreset table create` runs (the deployed tables come from
//! `template.yaml`). The Lambda functions never call this.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::error::{build_error, map_sdk_error};
use super::item::{PK, SK, TTL_ATTRIBUTE};
use crate::ports::StoreError;

/// How long `create_table` waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates the table (on-demand, `pk`/`sk` strings, stream of new images) unless it exists,
/// waits until it is active, and turns on TTL on [`TTL_ATTRIBUTE`]. An emulator without TTL
/// gets a warning, not an error.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    create(client, table, true).await?;
    enable_ttl(client, table).await
}

/// Creates `table` and pwreset's own users table beside it (`<table>-users`, where
/// [`super::DynamoStore::new`] looks for users): what a test or a bench run on pwreset's
/// own layout needs.
pub async fn create_tables(client: &Client, table: &str) -> Result<(), StoreError> {
    create_table(client, table).await?;
    create_users_table(client, &crate::config::UsersTable::own_beside(table).name).await
}

/// Creates pwreset's own users table (on-demand, `pk`/`sk` strings, no stream: no user item
/// or hash ever reaches a stream consumer) unless it exists, and waits until it is active.
pub async fn create_users_table(client: &Client, table: &str) -> Result<(), StoreError> {
    create(client, table, false).await
}

async fn create(client: &Client, table: &str, streamed: bool) -> Result<(), StoreError> {
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
        .set_stream_specification(streamed.then_some(stream))
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
    wait_until_active(client, table).await
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
            return Err(StoreError::Transient(format!(
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

//! `serve --backend aws`: delivery the way the deployed stack runs it. The table's stream
//! is read through the DynamoDB Streams API, as Lambda's event source mapping reads it, and
//! each batch goes through `send-reset-email`'s own `deliver_batch`. A batch item failure
//! is read again from that record after a growing pause, as Lambda retries it.
//!
//! Reading starts at the end of each shard open when `serve` starts (`LATEST`): a restart
//! does not mail old links again; items written while it was stopped are not delivered.
//! Shards that appear later (DynamoDB rolls them over) are read from their start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use pwreset_core::adapters::dynamodb::DynamoStore;
use pwreset_core::delivery::stream::deliver_batch;
use pwreset_core::ports::DeliveryLedger;
use pwreset_core::service::SendResetEmail;
use serde_json::json;

/// Pause between reads of a shard with nothing new.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often the shard list is read again for new shards (sooner while it cannot be read).
const SHARD_REFRESH: Duration = Duration::from_secs(30);
const SHARD_LIST_RETRY: Duration = Duration::from_secs(1);
/// First and longest pause before a failed record is read again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Where the reader is in one shard.
#[derive(Debug)]
struct Position {
    shard_id: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    retry_pause: Duration,
}

/// A Streams client from the environment. Its endpoint: `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`
/// when set, else `AWS_ENDPOINT_URL_DYNAMODB` (an emulator such as moto serves both APIs at
/// one address), else AWS's.
pub async fn streams_client() -> Client {
    let config = pwreset_core::adapters::aws_sdk_config().await;
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    let endpoint = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if endpoint("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_none() {
        if let Some(url) = endpoint("AWS_ENDPOINT_URL_DYNAMODB") {
            builder = builder.endpoint_url(url);
        }
    }
    Client::from_conf(builder.build())
}

/// The stream ARN of the store's table (it must have a stream: `pwreset table create`
/// makes one).
pub async fn stream_arn(store: &DynamoStore) -> anyhow::Result<String> {
    let described = store
        .client
        .describe_table()
        .table_name(&store.table)
        .send()
        .await
        .with_context(|| format!("DescribeTable {}", store.table))?;
    described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "table {} has no stream (create it with `pwreset table create`)",
                store.table
            )
        })
}

/// Where reading starts: the end of every open shard, now. `serve` takes these positions
/// before it answers its first request, so every request it accepts is on the stream after
/// them and is delivered.
#[derive(Debug)]
pub struct Start(HashMap<String, Position>);

pub async fn start(streams: &Client, stream_arn: &str) -> anyhow::Result<Start> {
    let mut shards = HashMap::new();
    add_new_shards(streams, stream_arn, &mut shards, true)
        .await
        .context("reading the table's stream")?;
    Ok(Start(shards))
}

/// Reads the stream from `start` until the task is aborted; each handled job is marked in
/// `ledger` (the store), as `send-reset-email` marks it.
pub async fn run(
    streams: Client,
    stream_arn: String,
    start: Start,
    send: Arc<SendResetEmail>,
    ledger: Arc<dyn DeliveryLedger>,
) {
    let Start(mut shards) = start;
    let mut listed_at = tokio::time::Instant::now();
    let mut refresh = SHARD_REFRESH;
    loop {
        let until = listed_at + refresh;
        while tokio::time::Instant::now() < until {
            let mut busy = false;
            for position in shards.values_mut() {
                busy |= read_once(&streams, &stream_arn, position, &send, ledger.as_ref()).await;
            }
            if !busy {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
        listed_at = tokio::time::Instant::now();
        refresh = match add_new_shards(&streams, &stream_arn, &mut shards, false).await {
            Ok(()) => SHARD_REFRESH,
            Err(err) => {
                tracing::warn!(event = "stream_list_failed", error = format!("{err:#}"));
                SHARD_LIST_RETRY
            }
        };
    }
}

async fn add_new_shards(
    streams: &Client,
    stream_arn: &str,
    shards: &mut HashMap<String, Position>,
    at_start: bool,
) -> anyhow::Result<()> {
    let mut start_after: Option<String> = None;
    loop {
        let described = streams
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start_after.clone())
            .send()
            .await
            .context("DescribeStream")?;
        let Some(description) = described.stream_description() else {
            return Ok(());
        };
        for shard in description.shards() {
            let Some(id) = shard.shard_id() else { continue };
            if shards.contains_key(id) {
                continue;
            }
            let open = shard
                .sequence_number_range()
                .is_none_or(|range| range.ending_sequence_number().is_none());
            // At start-up only the open shards, from their end; later, new shards whole.
            let kind = match (at_start, open) {
                (true, false) => continue,
                (true, true) => ShardIteratorType::Latest,
                (false, _) => ShardIteratorType::TrimHorizon,
            };
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(stream_arn)
                .shard_id(id)
                .shard_iterator_type(kind)
                .send()
                .await
                .context("GetShardIterator")?
                .shard_iterator;
            shards.insert(
                id.to_owned(),
                Position {
                    shard_id: id.to_owned(),
                    iterator,
                    retry_pause: RETRY_FIRST,
                },
            );
        }
        match description.last_evaluated_shard_id() {
            Some(last) => start_after = Some(last.to_owned()),
            None => return Ok(()),
        }
    }
}

/// One `GetRecords` on one shard and the delivery of what it returned; true if it read any.
async fn read_once(
    streams: &Client,
    stream_arn: &str,
    position: &mut Position,
    send: &SendResetEmail,
    ledger: &dyn DeliveryLedger,
) -> bool {
    let Some(iterator) = position.iterator.clone() else {
        return false;
    };
    let output = match streams
        .get_records()
        .shard_iterator(iterator.clone())
        .send()
        .await
    {
        Ok(output) => output,
        Err(err) => {
            tracing::warn!(event = "stream_read_failed", error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err));
            tokio::time::sleep(RETRY_FIRST).await;
            return false;
        }
    };
    let records = output.records();
    if records.is_empty() {
        position.iterator = output.next_shard_iterator;
        return false;
    }
    let batch = match serde_json::from_value(json!({
        "Records": records.iter().map(lambda_record).collect::<Vec<_>>()
    })) {
        Ok(batch) => batch,
        Err(err) => {
            // The kind and place only: serde's message can quote a value from the records.
            tracing::error!(
                event = "stream_batch_unreadable",
                kind = ?err.classify(),
                line = err.line(),
                column = err.column()
            );
            position.iterator = output.next_shard_iterator;
            return true;
        }
    };
    let response = deliver_batch(send, ledger, &batch).await;
    match response.batch_item_failures.first() {
        None => {
            position.iterator = output.next_shard_iterator;
            position.retry_pause = RETRY_FIRST;
        }
        Some(failure) => {
            // As Lambda does: read again from the failed record, after a pause.
            tokio::time::sleep(position.retry_pause).await;
            position.retry_pause = (position.retry_pause * 2).min(RETRY_MAX);
            let at_failure = match failure.item_identifier.as_deref() {
                Some(sequence_number) => streams
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(&position.shard_id)
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .sequence_number(sequence_number)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.shard_iterator),
                None => None,
            };
            // Without one, the same batch again: records before the failure may be
            // delivered twice, which is better than losing the failed one.
            position.iterator = at_failure.or(Some(iterator));
        }
    }
    true
}

/// A Streams API record in the JSON shape Lambda hands `send-reset-email`.
fn lambda_record(record: &Record) -> serde_json::Value {
    let stream = record.dynamodb();
    let image = |map: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        map.map(|m| serde_json::to_value(serde_dynamo::Item::from(m.clone())).unwrap_or_default())
    };
    json!({
        "awsRegion": record.aws_region().unwrap_or("local"),
        "eventID": record.event_id().unwrap_or_default(),
        "eventName": record.event_name().map(|n| n.as_str()).unwrap_or_default(),
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": image(stream.and_then(|s| s.keys.as_ref())).unwrap_or_else(|| json!({})),
            "NewImage": image(stream.and_then(|s| s.new_image.as_ref())),
            "SequenceNumber": stream.and_then(|s| s.sequence_number()).unwrap_or_default(),
            "SizeBytes": stream.and_then(|s| s.size_bytes()).unwrap_or(0),
            "StreamViewType": stream
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str())
                .unwrap_or("NEW_IMAGE"),
        }
    })
}

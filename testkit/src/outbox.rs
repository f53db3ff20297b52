//! Reading the table back, and DynamoDB Streams by hand. The emulators have no stream
//! trigger, so the tests that drive `send-reset-email` (and the bench driver) scan the table
//! for outbox items (`pk` prefix `dynamodb::item::OUTBOX_PREFIX`, which the core owns) and build
//! the INSERT records DynamoDB Streams would deliver for them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

pub type Item = HashMap<String, AttributeValue>;

/// Every item in `table` whose `pk` starts with `prefix`, oldest `created_at` first. Follows
/// scan pages past 1 MB (moto pages too) and gives the scan 60 s, since moto scans the
/// whole table and long runs grow it.
pub async fn items_with_prefix(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: &str,
) -> Result<Vec<Item>, aws_sdk_dynamodb::Error> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(prefix.into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default().timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(Duration::from_secs(60))
                        .operation_attempt_timeout(Duration::from_secs(60))
                        .build(),
                ),
            )
            .send()
            .await?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    items.sort_by_key(|item| {
        item.get("created_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    });
    Ok(items)
}

/// Turns outbox items into stream records, each item once, numbered from 1 in order.
#[derive(Debug, Default)]
pub struct OutboxStream {
    seen: HashSet<String>,
    sequence: u64,
}

impl OutboxStream {
    /// The records for the items not turned into records before, and those items' `pk`s.
    pub fn new_records(&mut self, items: &[Item]) -> (Vec<Value>, Vec<String>) {
        let mut records = Vec::new();
        let mut keys = Vec::new();
        for item in items {
            let pk = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .expect("an outbox item has a string pk");
            if !self.seen.insert(pk.clone()) {
                continue;
            }
            self.sequence += 1;
            records.push(insert_record(item, self.sequence));
            keys.push(pk.clone());
        }
        (records, keys)
    }
}

/// The INSERT record DynamoDB Streams (view type `NEW_IMAGE`) delivers for `item`.
pub fn insert_record(item: &Item, sequence: u64) -> Value {
    let image: serde_json::Map<String, Value> = item
        .iter()
        .filter_map(|(name, value)| match value {
            AttributeValue::S(s) => Some((name.clone(), json!({ "S": s }))),
            AttributeValue::N(n) => Some((name.clone(), json!({ "N": n }))),
            _ => None,
        })
        .collect();
    // What DynamoDB reports: the record's size; roughly its image's, which is all we carry.
    let size_bytes = Value::Object(image.clone()).to_string().len();
    json!({
        "eventID": format!("e{sequence}"),
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": image["pk"], "sk": image["sk"]},
            "NewImage": image,
            "SequenceNumber": format!("{sequence:024}"),
            "SizeBytes": size_bytes,
            "StreamViewType": "NEW_IMAGE"
        }
    })
}

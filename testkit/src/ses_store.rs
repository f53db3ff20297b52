//! The mail aws-ses-v2-local holds, read from its `GET /store`.

use serde_json::{Value, json};

/// Every message the emulator at `ses_url` holds, oldest first.
pub async fn all_mail(http: &reqwest::Client, ses_url: &str) -> Result<Vec<Value>, reqwest::Error> {
    let store: Value = http
        .get(format!("{ses_url}/store"))
        .send()
        .await?
        .json()
        .await?;
    Ok(store["emails"].as_array().cloned().unwrap_or_default())
}

/// Every message the emulator at `ses_url` holds for exactly the one recipient `to`,
/// oldest first.
pub async fn mail_to(
    http: &reqwest::Client,
    ses_url: &str,
    to: &str,
) -> Result<Vec<Value>, reqwest::Error> {
    Ok(all_mail(http, ses_url)
        .await?
        .into_iter()
        .filter(|m| m["destination"]["to"] == json!([to]))
        .collect())
}

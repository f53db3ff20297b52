//! The DynamoDB rate limiter under a burst: many parallel `POST /password-reset` through
//! the dev server's request route (`pwreset_core::http::request_routes`) with the real `DynamoStore` (counters, outbox), against moto
//! and dynalite. The counter is one atomic `ADD` per hit, so exactly the limit gets through
//! however the requests interleave. Needs `scripts/install-tools`.
//!
//! The clock is pinned for the burst: limits count in fixed windows, and a burst that
//! straddled a window boundary would rightly be split across two counters.
#![cfg(feature = "aws")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::{self, DynamoStore};
use pwreset_core::http::{DevServerApp, PeerIp, for_dev_server, request_routes};
use pwreset_core::ports::{Clock, OutboxJob, RateLimit};
use pwreset_core::service::{Limits, RequestReset};
use pwreset_testkit::aws::{self, Sdk};
use pwreset_testkit::{emulators, outbox};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

const BURST: usize = 50;

struct Outcome {
    status: u16,
    code: Option<String>,
    retry_after: Option<u64>,
}

/// A clock that stands still.
struct FixedClock(time::OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> time::OffsetDateTime {
        self.0
    }
}

/// A request-reset API over a fresh table at `endpoint`, with these limits.
async fn api_on(endpoint: &str, limits: Limits) -> (DevServerApp, DynamoStore) {
    let client = sdk().dynamodb(endpoint);
    let table = aws::fresh_table(&client, "limits", dynamodb::table::create_tables).await;
    let store = Arc::new(DynamoStore::new(client, table));
    // One instant for the whole test: a burst never straddles two rate windows.
    let clock = Arc::new(FixedClock(time::OffsetDateTime::now_utc()));
    let service = RequestReset::new(store.clone(), store.clone(), clock, limits);
    (
        for_dev_server(request_routes(Arc::new(service))),
        DynamoStore::clone(&store),
    )
}

/// `count` parallel requests from one client address, one e-mail address each (or all the
/// same one).
async fn burst(api: &DevServerApp, count: usize, email: impl Fn(usize) -> String) -> Vec<Outcome> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let api = api.clone();
            let body = json!({ "email": email(i) }).to_string();
            tokio::spawn(async move {
                let request = http::Request::builder()
                    .method("POST")
                    .uri("/password-reset")
                    .header("content-type", "application/json")
                    .extension(PeerIp(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23))))
                    .body(Body::from(body))
                    .expect("a request");
                let response = api.oneshot(request).await.expect("infallible");
                let (response, body) = response.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Outcome {
                    status: response.status.as_u16(),
                    code: body["code"].as_str().map(str::to_owned),
                    retry_after: response
                        .headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                }
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(count);
    for task in tasks {
        outcomes.push(task.await.expect("the request task finished"));
    }
    outcomes
}

/// 50 parallel requests from one IP against `20/1m`: exactly 20 accepted, 30 refused with
/// `429 rate_limited` and a `Retry-After`; exactly 20 outbox items written.
async fn per_ip_limit_holds_under_a_burst(endpoint: &str) {
    let (api, store) = api_on(
        endpoint,
        Limits {
            per_email: None,
            per_ip: RateLimit::parse("20/1m").expect("limit"),
        },
    )
    .await;
    let outcomes = burst(&api, BURST, |i| format!("burst-{i}@example.org")).await;
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let limited: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 429).collect();
    assert_eq!(accepted, 20, "{statuses:?}");
    assert_eq!(limited.len(), BURST - 20, "{statuses:?}");
    for outcome in limited {
        assert_eq!(outcome.code.as_deref(), Some("rate_limited"));
        let retry_after = outcome.retry_after.expect("a Retry-After");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(outbox_jobs(&store).await.len(), 20);
    // Every hit was counted, refused ones included.
    let counters = store
        .client
        .scan()
        .table_name(&store.table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    let hits: Vec<&str> = counters
        .items()
        .iter()
        .filter(|item| {
            matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with(dynamodb::item::LIMIT_PREFIX))
        })
        .filter_map(|item| item.get("hits").and_then(|h| h.as_n().ok()).map(String::as_str))
        .collect();
    assert_eq!(hits, vec!["50"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_requests_from_one_ip_get_exactly_twenty_through_on_moto() {
    per_ip_limit_holds_under_a_burst(&emulators::moto().url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_requests_from_one_ip_get_exactly_twenty_through_on_dynalite() {
    per_ip_limit_holds_under_a_burst(&emulators::dynalite().url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_for_one_address_queues_exactly_its_limit_and_still_answers_202() {
    let (api, store) = api_on(
        &emulators::moto().url,
        Limits {
            per_email: RateLimit::parse("3/15m").expect("limit"),
            per_ip: RateLimit::parse("1000/1m").expect("limit"),
        },
    )
    .await;
    let outcomes = burst(&api, 20, |_| "Same.Person@example.org".to_owned()).await;
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    // Every request writes one job, so a limited one costs the same write; only the first
    // three are mailable, the rest are marked suppressed and the deliverer skips them.
    let jobs = outbox_jobs(&store).await;
    assert_eq!(jobs.len(), 20, "{jobs:?}");
    let mailable = jobs
        .iter()
        .filter(|job| {
            matches!(
                job,
                OutboxJob::ResetRequested {
                    suppressed: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(mailable, 3, "{jobs:?}");
}

/// Every outbox job in the table, each read back as the worker would read it.
async fn outbox_jobs(store: &DynamoStore) -> Vec<OutboxJob> {
    outbox::items_with_prefix(&store.client, &store.table, dynamodb::item::OUTBOX_PREFIX)
        .await
        .expect("scan")
        .iter()
        .map(|item| dynamodb::item::outbox_job_from_item(item).expect("a readable job"))
        .collect()
}

/// Forgiving hits (what a failure limit does with attempts that were no failure) on the
/// real counters: one back, all back, and never a counter created or pushed below zero.
#[tokio::test]
async fn forgiven_hits_are_taken_back_and_never_below_zero() {
    use pwreset_core::ports::{Forgive, RateDecision, RateLimiter as _};
    for endpoint in [
        emulators::moto().url.as_str(),
        emulators::dynalite().url.as_str(),
    ] {
        let client = sdk().dynamodb(endpoint);
        let table = aws::fresh_table(&client, "forgive", dynamodb::table::create_tables).await;
        let store = DynamoStore::new(client, table);
        let limit = RateLimit::parse("2/1h").expect("limit").expect("on");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let hits = |bucket: &'static str, n: usize| {
            let store = store.clone();
            async move {
                let mut decisions = Vec::new();
                for _ in 0..n {
                    let decision = store.hit(bucket, &limit, now).await.expect("hit");
                    decisions.push(matches!(decision, RateDecision::Allowed));
                }
                decisions
            }
        };
        // Forgiving a bucket nobody hit creates nothing: the limit is still 2.
        store
            .forgive("fresh", &limit, now, Forgive::One)
            .await
            .expect("forgive");
        store
            .forgive("fresh", &limit, now, Forgive::All)
            .await
            .expect("forgive");
        assert_eq!(hits("fresh", 3).await, [true, true, false], "{endpoint}");
        // Two allowed; one forgiven makes room for exactly one more.
        assert_eq!(hits("one", 2).await, [true, true], "{endpoint}");
        store
            .forgive("one", &limit, now, Forgive::One)
            .await
            .expect("forgive");
        assert_eq!(hits("one", 2).await, [true, false], "{endpoint}");
        // All forgiven: the window starts over, and a forgive at zero stays at zero.
        store
            .forgive("one", &limit, now, Forgive::All)
            .await
            .expect("forgive");
        store
            .forgive("one", &limit, now, Forgive::One)
            .await
            .expect("forgive");
        assert_eq!(hits("one", 3).await, [true, true, false], "{endpoint}");
    }
}

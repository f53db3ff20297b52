//! P7: what a million resets cost on AWS, from the work the Lambda binaries measurably do.
//!
//! The binaries run under cargo-lambda's runtime emulator as in P4 (one long-lived
//! process each, so these are warm invocations), configured as `template.yaml` configures
//! them (JSON logs at INFO, the rate limits on: their counters are writes), their DynamoDB
//! calls going through a counting proxy in front of moto. For `--flows` resets, each one
//! request → mail → verify → confirm → "password changed" notice, the driver records per
//! invocation: wall time (driver to emulator and back), the function's CPU time
//! (`/proc/<pid>/stat`), and every DynamoDB operation with the request units AWS would
//! charge for it (item sizes computed from the requests and responses as DynamoDB counts
//! them). Then:
//!
//! - billed duration = the time spent waiting (wall − CPU) + CPU time scaled by the CPU
//!   share of the function's memory size (Lambda gives one vCPU at 1,769 MB and a
//!   proportional share below: a function at 128 MB computes 13.8 times slower than this
//!   machine's full core), rounded up to the millisecond;
//! - GB-seconds at the template's `MemorySize` per function;
//! - prices: the public us-east-1 list prices printed with the result.
//!
//! Not counted: the first invocation of each execution environment (its init, P4), SES
//! (printed separately: it dominates), API Gateway (printed separately), data transfer,
//! storage. Each AWS call here goes to an emulator on loopback; a second line prices the
//! same work if every AWS call took `AWS_CALL_MS` in AWS instead.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, bail};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::lambda::{Bench, Setup};
use crate::stats::cpu_ms;

const FUNCTIONS: [&str; 3] = ["request-reset", "confirm-reset", "send-reset-email"];
/// Lambda's memory size with exactly one vCPU.
const FULL_VCPU_MB: f64 = 1769.0;
/// A DynamoDB or SES call from Lambda in the same region, for the second estimate.
const AWS_CALL_MS: f64 = 8.0;

/// Public list prices, us-east-1, as published on 2026-12-06 (aws.amazon.com/lambda/pricing,
/// /dynamodb/pricing/on-demand, /api-gateway/pricing, /ses/pricing, /cloudwatch/pricing).
const PRICES_AS_OF: &str = "2026-12-06";
const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
const DYNAMODB_PER_WRU: f64 = 0.625 / 1e6;
const DYNAMODB_PER_RRU: f64 = 0.125 / 1e6;
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
const SES_PER_MAIL: f64 = 0.10 / 1000.0;
const LOGS_PER_GB: f64 = 0.50;

/// DynamoDB calls seen by the proxy, and the request units they are charged.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ledger {
    calls: BTreeMap<String, u64>,
    wru: f64,
    rru: f64,
    largest_item: usize,
}

impl Ledger {
    fn record(&mut self, operation: &str, request: &Value, response: &Value) {
        *self.calls.entry(operation.to_owned()).or_default() += 1;
        let (wru, rru, largest) = request_units(operation, request, response);
        self.wru += wru;
        self.rru += rru;
        self.largest_item = self.largest_item.max(largest);
    }

    fn minus(&self, earlier: &Ledger) -> Ledger {
        let calls = self
            .calls
            .iter()
            .map(|(op, n)| (op.clone(), n - earlier.calls.get(op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Ledger {
            calls,
            wru: self.wru - earlier.wru,
            rru: self.rru - earlier.rru,
            largest_item: self.largest_item,
        }
    }

    fn add(&mut self, other: &Ledger) {
        for (op, n) in &other.calls {
            *self.calls.entry(op.clone()).or_default() += n;
        }
        self.wru += other.wru;
        self.rru += other.rru;
        self.largest_item = self.largest_item.max(other.largest_item);
    }
}

/// DynamoDB's size of an attribute value in its JSON wire form: strings and binaries by
/// their bytes, numbers by their digits (about one byte per two), booleans and nulls one
/// byte, maps and lists three bytes plus their elements (and one per element).
fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => {
            let digits = n.chars().filter(char::is_ascii_digit).count();
            digits.div_ceil(2) + 1
        }
        ("B", Value::String(b)) => b.len() * 3 / 4,
        ("BOOL" | "NULL", _) => 1,
        ("SS" | "NS" | "BS", Value::Array(items)) => {
            items.iter().map(|s| s.as_str().map_or(0, str::len)).sum()
        }
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        ("M", Value::Object(map)) => 3 + item_size(map) + map.len(),
        _ => 0,
    }
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn size_of(item: &Value) -> usize {
    item.as_object().map_or(0, item_size)
}

/// Write units for an item: one per KB, at least one.
fn wu(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// Read units for `size` bytes read: one per 4 KB (half for an eventually consistent
/// read), at least one such unit per call.
fn ru(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// The item an update or delete writes: the key and every value it sets. DynamoDB charges
/// the larger of the item before and after; pwreset's items are a few hundred bytes, far
/// under the 1 KB of one unit, which `largest_item` lets a reader check.
fn written_size(request: &Value) -> usize {
    size_of(&request["Key"]) + size_of(&request["ExpressionAttributeValues"])
}

/// (write units, read units, the largest item seen) for one call.
fn request_units(operation: &str, request: &Value, response: &Value) -> (f64, f64, usize) {
    let consistent = request["ConsistentRead"].as_bool() == Some(true);
    match operation {
        "PutItem" => {
            let size = size_of(&request["Item"]);
            (wu(size), 0.0, size)
        }
        "UpdateItem" | "DeleteItem" => {
            let size = written_size(request);
            (wu(size), 0.0, size)
        }
        "GetItem" => {
            let size = size_of(&response["Item"]);
            (0.0, ru(size, consistent), size)
        }
        "Query" => {
            let items = response["Items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let size = items.iter().map(size_of).sum();
            let largest = items.iter().map(size_of).max().unwrap_or(0);
            (0.0, ru(size, consistent), largest)
        }
        "TransactWriteItems" => {
            let mut wru = 0.0;
            let mut largest = 0;
            for action in request["TransactItems"].as_array().into_iter().flatten() {
                let size = if let Some(put) = action.get("Put") {
                    size_of(&put["Item"])
                } else {
                    action
                        .as_object()
                        .and_then(|o| o.values().next())
                        .map_or(0, written_size)
                };
                wru += 2.0 * wu(size);
                largest = largest.max(size);
            }
            (wru, 0.0, largest)
        }
        "TransactGetItems" => {
            let responses = response["Responses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let rru = responses
                .iter()
                .map(|r| 2.0 * ru(size_of(&r["Item"]), true))
                .sum();
            let largest = responses
                .iter()
                .map(|r| size_of(&r["Item"]))
                .max()
                .unwrap_or(0);
            (0.0, rru, largest)
        }
        "BatchWriteItem" => {
            let mut wru = 0.0;
            let mut largest = 0;
            for requests in request["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for r in requests.as_array().into_iter().flatten() {
                    let size =
                        size_of(&r["PutRequest"]["Item"]).max(size_of(&r["DeleteRequest"]["Key"]));
                    wru += wu(size);
                    largest = largest.max(size);
                }
            }
            (wru, 0.0, largest)
        }
        // Control-plane calls (DescribeTable, ListTables, ...) are not charged per request.
        _ => (0.0, 0.0, 0),
    }
}

/// A proxy in front of moto that forwards every call unchanged and books it.
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    ledger: Arc<Mutex<Ledger>>,
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    match forward_inner(&proxy, request).await {
        Ok(response) => response,
        Err(err) => Response::builder()
            .status(502)
            .body(Body::from(format!("proxy: {err:#}")))
            .unwrap_or_default(),
    }
}

async fn forward_inner(proxy: &Proxy, request: Request) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 << 20).await?;
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, op)| op.to_owned());
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = proxy
        .client
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.body(body.clone()).send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await?;
    if let Some(operation) = operation
        && status.is_success()
    {
        let request_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let response_json: Value = serde_json::from_slice(&answer_body).unwrap_or(Value::Null);
        proxy
            .ledger
            .lock()
            .expect("ledger")
            .record(&operation, &request_json, &response_json);
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    Ok(response.body(Body::from(answer_body))?)
}

/// Starts the proxy on a free loopback port; returns its URL and its ledger.
async fn start_proxy(upstream: &str) -> anyhow::Result<(String, Arc<Mutex<Ledger>>)> {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::builder().no_proxy().build()?,
        ledger: ledger.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, ledger))
}

/// What the invocations of one function spent, summed.
#[derive(Debug, Default)]
struct Spent {
    invocations: u64,
    wall_ms: f64,
    cpu_ms: f64,
    dynamodb: Ledger,
}

pub(crate) struct Reading {
    at: Instant,
    cpu_ms: f64,
    ledger: Ledger,
}

/// Books each metered invocation under its function.
pub(crate) struct Meter {
    pids: HashMap<String, u32>,
    ledger: Arc<Mutex<Ledger>>,
    spent: Mutex<BTreeMap<String, Spent>>,
}

impl Meter {
    fn cpu(&self, function: &str) -> f64 {
        self.pids
            .get(function)
            .and_then(|pid| cpu_ms(&pid.to_string()))
            .unwrap_or(0.0)
    }

    pub(crate) fn before(&self, function: &str) -> Reading {
        Reading {
            cpu_ms: self.cpu(function),
            ledger: self.ledger.lock().expect("ledger").clone(),
            at: Instant::now(),
        }
    }

    pub(crate) fn after(&self, function: &str, before: Reading) {
        let wall_ms = crate::stats::ms(before.at.elapsed());
        let cpu_ms = self.cpu(function) - before.cpu_ms;
        let calls = self.ledger.lock().expect("ledger").minus(&before.ledger);
        let mut spent = self.spent.lock().expect("spent");
        let entry = spent.entry(function.to_owned()).or_default();
        entry.invocations += 1;
        entry.wall_ms += wall_ms;
        entry.cpu_ms += cpu_ms;
        entry.dynamodb.add(&calls);
    }
}

/// `MemorySize` of each function in `template.yaml` (its own, else the `Globals` one),
/// found by the function's `Binary:` build property.
fn memory_sizes(template: &str) -> anyhow::Result<HashMap<String, f64>> {
    let mut global = None;
    let mut sizes = HashMap::new();
    let mut binary: Option<String> = None;
    let mut own: Option<f64> = None;
    let mut in_globals = false;
    let mut finish = |binary: &mut Option<String>, own: &mut Option<f64>| {
        if let Some(b) = binary.take() {
            sizes.insert(b, own.take());
        }
        *own = None;
    };
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 0 && !trimmed.is_empty() {
            in_globals = trimmed == "Globals:";
        }
        if indent == 2 && trimmed.ends_with(':') {
            finish(&mut binary, &mut own);
        }
        if let Some(mb) = trimmed.strip_prefix("MemorySize:") {
            let mb: f64 = mb.trim().parse().context("a MemorySize")?;
            if in_globals {
                global = Some(mb);
            } else {
                own = Some(mb);
            }
        }
        if let Some(b) = trimmed.strip_prefix("Binary:") {
            binary = Some(b.trim().to_owned());
        }
    }
    finish(&mut binary, &mut own);
    let global = global.context("Globals.Function.MemorySize in the template")?;
    Ok(sizes
        .into_iter()
        .map(|(b, mb)| (b, mb.unwrap_or(global)))
        .collect())
}

fn dollars(x: f64) -> String {
    format!("${x:.3}")
}

pub async fn run(setup: Setup, flows: usize, template: &Path) -> anyhow::Result<()> {
    let memory = memory_sizes(&std::fs::read_to_string(template)?)?;
    let (proxy_url, ledger) = start_proxy(&setup.moto).await?;
    // As the template configures the functions: application logs at INFO, the reset
    // limits on (counts high enough that the benchmark never reaches them).
    let mut bench = Bench::start(
        setup,
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB", proxy_url.as_str()),
            ("RESET_LIMIT_PER_EMAIL", "1000000/15m"),
            ("RESET_LIMIT_PER_IP", "1000000/1m"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            // Unset: the Lambda log level decides, as in AWS.
            ("RUST_LOG", ""),
        ],
    )
    .await?;
    let log_dir =
        std::env::temp_dir().join(pwreset_testkit::aws::unique_name("pwreset-bench-cost"));
    std::fs::create_dir_all(&log_dir)?;
    bench.log_dir = log_dir.clone();
    let mut users = Vec::with_capacity(flows + 1);
    for _ in 0..=flows {
        users.push(bench.seed_user().await?);
    }
    let processes = FUNCTIONS
        .iter()
        .map(|f| bench.spawn(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One unmetered flow first: each process's first invocation (connections, lazy
    // set-up) is the cold start's, which P4 measures.
    let (address, uid) = &users[0];
    bench.reset_flow(address, uid).await?;
    let log_bytes_before = log_bytes(&log_dir)?;
    bench.meter = Some(Meter {
        pids: FUNCTIONS
            .iter()
            .zip(&processes)
            .map(|(f, p)| ((*f).to_owned(), p.pid()))
            .collect(),
        ledger,
        spent: Mutex::new(BTreeMap::new()),
    });
    for (address, uid) in &users[1..] {
        bench.reset_flow(address, uid).await?;
    }
    let meter = bench.meter.take().context("the meter")?;
    drop(processes);
    let log_bytes_per_reset = (log_bytes(&log_dir)? - log_bytes_before) as f64 / flows as f64;
    std::fs::remove_dir_all(&log_dir).ok();
    let spent = meter.spent.into_inner().expect("spent");
    report(&spent, &memory, flows, log_bytes_per_reset)
}

fn log_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn report(
    spent: &BTreeMap<String, Spent>,
    memory: &HashMap<String, f64>,
    flows: usize,
    log_bytes_per_reset: f64,
) -> anyhow::Result<()> {
    let per_million = 1e6 / flows as f64;
    println!(
        "P7 cost per 1M resets: {flows} warm flows (request, mail, verify, confirm, notice) under cargo lambda watch, DynamoDB on moto through a counting proxy"
    );
    println!(
        "  prices: us-east-1 list prices as of {PRICES_AS_OF}: Lambda arm64 ${LAMBDA_ARM_PER_GB_S}/GB-s + $0.20/1M requests; DynamoDB on-demand $0.625/1M WRU, $0.125/1M RRU; HTTP API $1.00/1M; SES $0.10/1000 mails; CloudWatch Logs $0.50/GB ingested"
    );
    let (mut lambda_duration, mut lambda_requests) = (0.0, 0.0);
    let (mut lambda_duration_aws, mut dynamodb) = (0.0, Ledger::default());
    let mut rows = Vec::new();
    for function in FUNCTIONS {
        let Some(s) = spent.get(function) else {
            bail!("no metered invocation of {function}");
        };
        let mb = *memory
            .get(function)
            .with_context(|| format!("{function}'s MemorySize in the template"))?;
        let n = s.invocations as f64;
        let (wall, cpu) = (s.wall_ms / n, s.cpu_ms / n);
        let stretch = (FULL_VCPU_MB / mb).max(1.0);
        let billed_ms = ((wall - cpu).max(0.0) + cpu * stretch).ceil();
        let aws_calls = s.dynamodb.calls.values().sum::<u64>() as f64 / n
            + if function == "send-reset-email" {
                1.0
            } else {
                0.0
            };
        let billed_aws_ms = (aws_calls * AWS_CALL_MS + cpu * stretch).ceil();
        let gb_s = |ms: f64| mb / 1024.0 * ms / 1000.0;
        let per_reset = n / flows as f64;
        lambda_duration += gb_s(billed_ms) * LAMBDA_ARM_PER_GB_S * n * per_million;
        lambda_duration_aws += gb_s(billed_aws_ms) * LAMBDA_ARM_PER_GB_S * n * per_million;
        lambda_requests += LAMBDA_PER_REQUEST * n * per_million;
        dynamodb.add(&s.dynamodb);
        println!(
            "  {function:17} {per_reset:.0} invocations/reset  {mb:5.0} MB  wall {wall:6.2} ms  CPU {cpu:6.2} ms  billed {billed_ms:4.0} ms ({billed_aws_ms:4.0} ms with AWS calls at {AWS_CALL_MS} ms)  DynamoDB {:?}",
            s.dynamodb
                .calls
                .iter()
                .map(|(op, c)| format!("{op} {:.1}", *c as f64 / n))
                .collect::<Vec<_>>()
        );
        rows.push(json!({"function": function, "invocations_per_reset": per_reset,
            "memory_mb": mb, "wall_ms": wall, "cpu_ms": cpu, "billed_ms": billed_ms,
            "billed_ms_aws_calls": billed_aws_ms,
            "dynamodb_calls_per_invocation": s.dynamodb.calls.iter()
                .map(|(op, c)| (op.clone(), json!(*c as f64 / n))).collect::<serde_json::Map<_, _>>()}));
    }
    let wru = dynamodb.wru / flows as f64;
    let rru = dynamodb.rru / flows as f64;
    let dynamodb_cost = (wru * DYNAMODB_PER_WRU + rru * DYNAMODB_PER_RRU) * 1e6;
    let logs = log_bytes_per_reset * 1e6 / 1e9 * LOGS_PER_GB;
    let total = lambda_duration + lambda_requests + dynamodb_cost + logs;
    let total_aws = lambda_duration_aws + lambda_requests + dynamodb_cost + logs;
    let http_api = 3.0 * HTTP_API_PER_REQUEST * 1e6;
    let ses = 2.0 * SES_PER_MAIL * 1e6;
    println!(
        "  DynamoDB per reset: {wru:.2} WRU, {rru:.2} RRU (largest item written or read: {} bytes)",
        dynamodb.largest_item
    );
    println!(
        "  per 1M resets: Lambda duration {} ({} with AWS calls at {AWS_CALL_MS} ms), Lambda requests {}, DynamoDB {}, logs {} ({log_bytes_per_reset:.0} bytes/reset of our own lines)",
        dollars(lambda_duration),
        dollars(lambda_duration_aws),
        dollars(lambda_requests),
        dollars(dynamodb_cost),
        dollars(logs)
    );
    println!(
        "  TOTAL per 1M resets: {} ({} with AWS calls at {AWS_CALL_MS} ms); besides: HTTP API {} (3 requests), SES {} (2 mails)",
        dollars(total),
        dollars(total_aws),
        dollars(http_api),
        dollars(ses)
    );
    println!(
        "RESULT {}",
        json!({"p7_cost_per_million_resets": {
            "flows": flows, "prices_as_of": PRICES_AS_OF, "functions": rows,
            "wru_per_reset": wru, "rru_per_reset": rru, "log_bytes_per_reset": log_bytes_per_reset,
            "lambda_duration": lambda_duration, "lambda_duration_aws_calls": lambda_duration_aws,
            "lambda_requests": lambda_requests, "dynamodb": dynamodb_cost, "logs": logs,
            "total": total, "total_aws_calls": total_aws, "http_api": http_api, "ses": ses}})
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_count_as_dynamodb_counts_them() {
        let item = json!({"pk": {"S": "USER#abc"}, "n": {"N": "12345"}, "ok": {"BOOL": true}});
        // "pk" 2 + 8, "n" 1 + 3 + 1, "ok" 2 + 1
        assert_eq!(size_of(&item), 18);
        assert_eq!(wu(0), 1.0);
        assert_eq!(wu(1025), 2.0);
        assert_eq!(ru(10, false), 0.5);
        assert_eq!(ru(4097, true), 2.0);
    }

    #[test]
    fn a_transaction_costs_two_units_per_item() {
        let request = json!({"TransactItems": [
            {"Put": {"Item": {"pk": {"S": "a"}}}},
            {"Update": {"Key": {"pk": {"S": "b"}}, "ExpressionAttributeValues": {":v": {"S": "x"}}}},
            {"ConditionCheck": {"Key": {"pk": {"S": "c"}}}}
        ]});
        // The largest: the update's key and value, "pk" + "b" and ":v" + "x".
        assert_eq!(
            request_units("TransactWriteItems", &request, &Value::Null),
            (6.0, 0.0, 6)
        );
    }

    #[test]
    fn memory_sizes_come_from_the_template() {
        let sizes = memory_sizes(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
                .expect("template.yaml"),
        )
        .expect("sizes");
        assert_eq!(sizes.get("request-reset"), Some(&128.0));
        assert_eq!(sizes.get("confirm-reset"), Some(&1769.0));
        assert_eq!(sizes.get("send-reset-email"), Some(&128.0));
    }
}

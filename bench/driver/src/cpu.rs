//! CPU per request: what `pwreset serve` spends on one `POST /password-reset` (existing
//! and missing addresses) and one `POST /password-reset/verify`, against a hello-world
//! axum server that answers the same status, headers and JSON and does nothing else (and,
//! as a reading aid, the same hello after reading the request body).
//!
//! Both servers run as processes of their own on the same tokio runtime flavour; the
//! driver sends a fixed number of requests per phase over `concurrency` keep-alive
//! connections and reads the server's CPU time (`/proc/<pid>/stat`, user + system) before
//! and after. Phases are interleaved (hello, then each pwreset kind, order rotating each
//! round), so both sides see the same machine. Throughput does not enter: a server's CPU
//! time per request is what it costs, however fast the driver is.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pwreset_testkit::mail::link_parts;
use pwreset_testkit::process::{Keep, Server};
use serde_json::{Value, json};

use crate::serve::{Serve, add_user, wait_for_mail};
use crate::stats::{cpu_ms, median};

const EXISTING: &str = "cpu-here@example.org";

/// The hello-world: 202 `{"status":"accepted"}` and 200 `{"valid":true,…}` with the same
/// headers as pwreset's, parsing nothing; `/read/password-reset/verify` answers the same
/// 200 after reading the request body into memory (what any JSON API must do first).
pub fn hello_server() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("hello listening on http://{}", listener.local_addr()?);
        axum::serve(listener, hello_router()).await?;
        Ok(())
    })
}

/// The hello-world's routes (also timed in process by `inproc`).
pub fn hello_router() -> axum::Router {
    fn json_answer(status: StatusCode, body: &'static str) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
    axum::Router::new()
        .route(
            "/password-reset",
            axum::routing::post(|| async {
                json_answer(StatusCode::ACCEPTED, r#"{"status":"accepted"}"#)
            }),
        )
        .route(
            "/password-reset/verify",
            axum::routing::post(|| async { json_answer(StatusCode::OK, VERIFIED) }),
        )
        .route(
            "/read/password-reset/verify",
            axum::routing::post(|body: axum::body::Body| async {
                match axum::body::to_bytes(body, 16 * 1024).await {
                    Ok(bytes) if !bytes.is_empty() => json_answer(StatusCode::OK, VERIFIED),
                    _ => json_answer(StatusCode::BAD_REQUEST, "{}"),
                }
            }),
        )
}

const VERIFIED: &str =
    r#"{"valid":true,"expires_at":"2026-12-06T05:00:00Z","email":"cpu-here@example.org"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    HelloRequest,
    RequestExisting,
    RequestMissing,
    HelloVerify,
    Verify,
    HelloVerifyRead,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::HelloRequest,
        Target::RequestExisting,
        Target::RequestMissing,
        Target::HelloVerify,
        Target::Verify,
        Target::HelloVerifyRead,
    ];

    fn on_hello(self) -> bool {
        matches!(
            self,
            Target::HelloRequest | Target::HelloVerify | Target::HelloVerifyRead
        )
    }

    /// The hello-world phase this one is compared with (a hello phase is its own).
    fn baseline(self) -> Target {
        match self {
            Target::HelloRequest | Target::RequestExisting | Target::RequestMissing => {
                Target::HelloRequest
            }
            Target::HelloVerify | Target::Verify | Target::HelloVerifyRead => Target::HelloVerify,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::HelloRequest => "hello axum, 202",
            Target::RequestExisting => "POST /password-reset, existing",
            Target::RequestMissing => "POST /password-reset, missing",
            Target::HelloVerify => "hello axum, 200 verify",
            Target::Verify => "POST /password-reset/verify, valid",
            Target::HelloVerifyRead => "hello axum, 200, reads the body",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Target::HelloRequest => "hello_request",
            Target::RequestExisting => "request_existing",
            Target::RequestMissing => "request_missing",
            Target::HelloVerify => "hello_verify",
            Target::Verify => "verify",
            Target::HelloVerifyRead => "hello_verify_read",
        }
    }
}

/// `requests` POSTs from `concurrency` keep-alive workers; `body(i)` is the i-th body.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
    concurrency: usize,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
    want: u16,
) -> anyhow::Result<()> {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        workers.spawn(async move {
            let mut i = worker;
            while i < requests {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(i).to_string())
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let text = response.text().await?;
                if status != want {
                    bail!("POST {url}: want {want}, got {status} {text}");
                }
                i += concurrency;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}

pub async fn run(
    pwreset: &Path,
    requests: usize,
    concurrency: usize,
    rounds: usize,
    only: &[String],
) -> anyhow::Result<()> {
    for key in only {
        if !Target::ALL.iter().any(|t| t.key() == key) {
            bail!("--only {key}: not a phase");
        }
    }
    let wanted = |target: Target| {
        only.is_empty()
            || Target::ALL.iter().any(|t| {
                only.iter().any(|k| k == t.key()) && (*t == target || t.baseline() == target)
            })
    };
    let serve = Serve::start(pwreset)?;
    let mut hello_command = Command::new(std::env::current_exe()?);
    hello_command.arg("hello-server");
    let hello = Server::start(
        &mut hello_command,
        Keep::UntilListening,
        Duration::from_secs(30),
    )
    .map_err(anyhow::Error::msg)
    .context("starting the hello-world server")?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;

    // A user and a valid link for the verify phases (a verify does not use the token up).
    add_user(&client, &serve.base, EXISTING).await?;
    client
        .post(format!("{}/password-reset", serve.base))
        .json(&json!({"email": EXISTING}))
        .send()
        .await?;
    let (uid, token) = wait_for_mail(&client, &serve.base, 0)
        .await?
        .iter()
        .find_map(|m| m["text"].as_str().and_then(link_parts))
        .context("a reset link in the mail")?;
    let verify_body = json!({"uid": uid, "token": token});

    let plan = |target: Target| -> (String, u32, Arc<dyn Fn(usize) -> Value + Send + Sync>, u16) {
        let (base, pid) = if target.on_hello() {
            (hello.base_url.as_str(), hello.pid())
        } else {
            (serve.base.as_str(), serve.pid())
        };
        let (path, body, want): (_, Arc<dyn Fn(usize) -> Value + Send + Sync>, _) = match target {
            Target::HelloRequest | Target::RequestExisting => (
                "/password-reset",
                Arc::new(|_| json!({"email": EXISTING})),
                202,
            ),
            Target::RequestMissing => (
                "/password-reset",
                Arc::new(|i| json!({"email": format!("cpu-nobody-{i}@example.org")})),
                202,
            ),
            Target::HelloVerify | Target::Verify | Target::HelloVerifyRead => {
                let body = verify_body.clone();
                (
                    if target == Target::HelloVerifyRead {
                        "/read/password-reset/verify"
                    } else {
                        "/password-reset/verify"
                    },
                    Arc::new(move |_| body.clone()),
                    200,
                )
            }
        };
        (format!("{base}{path}"), pid, body, want)
    };

    // Warm-up: connections, allocator, each route once at volume.
    for target in Target::ALL.into_iter().filter(|t| wanted(*t)) {
        let (url, _, body, want) = plan(target);
        drive(&client, &url, requests / 4, concurrency, body, want).await?;
    }
    let mut per_request: Vec<Vec<f64>> = vec![Vec::new(); Target::ALL.len()];
    for round in 0..rounds {
        for k in 0..Target::ALL.len() {
            let index = (k + round) % Target::ALL.len();
            if !wanted(Target::ALL[index]) {
                continue;
            }
            let (url, pid, body, want) = plan(Target::ALL[index]);
            let pid = pid.to_string();
            let before = cpu_ms(&pid).context("server CPU time")?;
            drive(&client, &url, requests, concurrency, body, want).await?;
            let after = cpu_ms(&pid).context("server CPU time")?;
            per_request[index].push((after - before) * 1000.0 / requests as f64);
        }
    }
    println!(
        "CPU per request (server user + system time, /proc/<pid>/stat), {rounds} rounds x {requests} requests, concurrency {concurrency}"
    );
    let medians: Vec<f64> = per_request.iter().map(|v| median(v)).collect();
    let mut result = serde_json::Map::new();
    for (index, target) in Target::ALL.iter().enumerate() {
        if !wanted(*target) {
            continue;
        }
        let baseline = Target::ALL
            .iter()
            .position(|t| *t == target.baseline())
            .expect("every baseline is among the targets");
        let hello = medians[baseline];
        println!(
            "  {:38} median {:7.1} µs  rounds {}  ratio to hello {:.2}",
            target.label(),
            medians[index],
            per_request[index]
                .iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(" "),
            medians[index] / hello
        );
        result.insert(
            target.key().to_owned(),
            json!({"median_us": medians[index], "rounds_us": per_request[index], "ratio_to_hello": medians[index] / hello}),
        );
    }
    println!("RESULT {}", json!({ "cpu_per_request": result }));
    Ok(())
}

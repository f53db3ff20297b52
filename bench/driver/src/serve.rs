//! Benchmarks against `pwreset serve` (memory backend, limits off, no demo user).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pwreset_core::hashing::PasswordHasher;
use pwreset_testkit::mail::link_parts;
use pwreset_testkit::process::{Keep, Server};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::stats::{cpu_ms, median, ms, quantile, vm_hwm_kib};

const EXISTING: &str = "here@example.org";
const OLD_PASSWORD: &str = "old password 123";

/// A `pwreset serve` we started on a free loopback port; killed by PID on drop. Its output
/// is drained and dropped once it listens (it prints every mail), so the driver's memory
/// stays flat however long the load runs.
#[derive(Debug)]
pub struct Serve {
    server: Server,
    pub base: String,
}

impl Serve {
    pub fn start(bin: &Path) -> anyhow::Result<Self> {
        let mut command = Command::new(bin);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--no-demo"])
            .env("RESET_LIMIT_PER_EMAIL", "off")
            .env("RESET_LIMIT_PER_IP", "off")
            .env("CHANGE_LIMIT_FAILURES", "off")
            .env("CHANGE_LIMIT_PER_IP", "off")
            .env("RUST_LOG", "warn");
        let server = Server::start(&mut command, Keep::UntilListening, Duration::from_secs(30))
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            base: server.base_url.clone(),
            server,
        })
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(u16, String)> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

pub(crate) async fn add_user(
    client: &reqwest::Client,
    base: &str,
    email: &str,
) -> anyhow::Result<String> {
    let (status, body) = post(
        client,
        &format!("{base}/_dev/users"),
        &json!({"email": email, "password": OLD_PASSWORD}),
    )
    .await?;
    if status != 201 {
        bail!("POST /_dev/users: {status} {body}");
    }
    let body: Value = serde_json::from_str(&body)?;
    body["uid"].as_str().map(str::to_owned).context("uid")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Existing,
    Missing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Existing => "existing",
            Kind::Missing => "missing",
        }
    }
}

/// One phase: `concurrency` workers, each a keep-alive loop of POST /password-reset, for
/// `length`. Returns (requests per second, latencies in ms).
async fn phase(
    client: &reqwest::Client,
    url: &Arc<String>,
    kind: Kind,
    concurrency: usize,
    length: Duration,
    phase_id: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let deadline = started + length;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), Arc::clone(url));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let email = match kind {
                    Kind::Existing => EXISTING.to_owned(),
                    Kind::Missing => format!("nobody-{phase_id}-{worker}-{i}@example.org"),
                };
                let start = Instant::now();
                let (status, body) = post(&client, &url, &json!({ "email": email })).await?;
                latencies.push(ms(start.elapsed()));
                if status != 202 {
                    bail!("POST /password-reset: {status} {body}");
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((all.len() as f64 / elapsed, all))
}

/// P1: request-reset throughput and latency, existing vs missing, interleaved rounds.
pub async fn load(
    bin: &Path,
    concurrency: usize,
    rounds: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let serve = Serve::start(bin)?;
    let client = client()?;
    add_user(&client, &serve.base, EXISTING).await?;
    let url = Arc::new(format!("{}/password-reset", serve.base));
    let length = Duration::from_secs_f64(seconds);
    // Warm-up: connections, allocator, the outbox worker.
    for (i, kind) in [Kind::Existing, Kind::Missing].into_iter().enumerate() {
        phase(&client, &url, kind, concurrency, length / 2, 1000 + i).await?;
    }
    let mut rates = [Vec::new(), Vec::new()];
    let mut latencies = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let mut order = [Kind::Existing, Kind::Missing];
        if round % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            let (rate, lat) = phase(&client, &url, kind, concurrency, length, round).await?;
            let slot = usize::from(kind == Kind::Missing);
            rates[slot].push(rate);
            latencies[slot].extend(lat);
        }
    }
    let mut summary = serde_json::Map::new();
    println!(
        "P1 POST /password-reset on pwreset serve, concurrency {concurrency}, {rounds} rounds x {seconds} s per kind"
    );
    for kind in [Kind::Existing, Kind::Missing] {
        let slot = usize::from(kind == Kind::Missing);
        let (rps, p50, p99) = (
            median(&rates[slot]),
            quantile(&latencies[slot], 0.50),
            quantile(&latencies[slot], 0.99),
        );
        println!(
            "  {:8}  {rps:8.0} req/s (median of rounds; rounds {})  p50 {p50:.3} ms  p99 {p99:.3} ms  n {}",
            kind.name(),
            rates[slot]
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            latencies[slot].len()
        );
        summary.insert(
            kind.name().to_owned(),
            json!({"rps_median": rps, "p50_ms": p50, "p99_ms": p99, "requests": latencies[slot].len()}),
        );
    }
    let ratio = median(&rates[0]) / median(&rates[1]);
    println!("  throughput existing / missing: {ratio:.3}");
    summary.insert("rps_ratio_existing_over_missing".into(), json!(ratio));
    summary.insert("concurrency".into(), json!(concurrency));
    summary.insert("serve_vm_hwm_kib".into(), json!(vm_hwm_kib(serve.pid())));
    println!("RESULT {}", json!({ "p1_load": summary }));
    Ok(())
}

/// Mail messages the dev server has sent so far.
async fn mail(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Value>> {
    let body: Value = client
        .get(format!("{base}/_dev/mail"))
        .send()
        .await?
        .json()
        .await?;
    Ok(body["messages"].as_array().cloned().unwrap_or_default())
}

/// Waits until there are more than `seen` messages; returns them all.
pub(crate) async fn wait_for_mail(
    client: &reqwest::Client,
    base: &str,
    seen: usize,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let messages = mail(client, base).await?;
        if messages.len() > seen {
            return Ok(messages);
        }
        if Instant::now() > deadline {
            bail!("no new mail after 30 s (have {seen})");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// P3 (confirm over HTTP vs a bare argon2id hash, interleaved pairs) and P6 for serve.
pub async fn confirm(bin: &Path, pairs: usize, warmup: usize) -> anyhow::Result<()> {
    let serve = Serve::start(bin)?;
    let client = client()?;
    let email = "bench@example.org";
    add_user(&client, &serve.base, email).await?;
    let hasher = PasswordHasher::owasp();
    let reset_url = format!("{}/password-reset", serve.base);
    let confirm_url = format!("{}/password-reset/confirm", serve.base);
    let mut seen = mail(&client, &serve.base).await?.len();
    let (mut confirms, mut hashes, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    // CPU time spent by the server during the timed confirms, and by this process during
    // the timed hashes: wall time minus CPU time is waiting for a core.
    let server_pid = serve.pid().to_string();
    let (mut server_cpu, mut driver_cpu) = (0.0, 0.0);
    for i in 0..warmup + pairs {
        // A fresh token: request, then read the link from the mail (not timed).
        let (status, body) = post(&client, &reset_url, &json!({ "email": email })).await?;
        if status != 202 {
            bail!("POST /password-reset: {status} {body}");
        }
        let messages = wait_for_mail(&client, &serve.base, seen).await?;
        seen = messages.len();
        let (uid, token) = messages
            .iter()
            .rev()
            .find_map(|m| m["text"].as_str().and_then(link_parts))
            .context("a reset link in the mail")?;
        let new_password = format!("violin kettle mango quartz {i}");

        let time_hash = async || -> anyhow::Result<(f64, f64)> {
            let cpu = cpu_ms("self").unwrap_or(0.0);
            let start = Instant::now();
            hasher
                .hash(SecretString::from(new_password.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
            let took = ms(start.elapsed());
            Ok((took, cpu_ms("self").unwrap_or(0.0) - cpu))
        };
        let confirm_body = json!({"uid": uid, "token": token, "new_password": new_password});
        let time_confirm = async || -> anyhow::Result<(f64, f64)> {
            let cpu = cpu_ms(&server_pid).unwrap_or(0.0);
            let start = Instant::now();
            let (status, body) = post(&client, &confirm_url, &confirm_body).await?;
            let took = ms(start.elapsed());
            if status != 200 {
                bail!("POST /password-reset/confirm: {status} {body}");
            }
            Ok((took, cpu_ms(&server_pid).unwrap_or(0.0) - cpu))
        };
        // Alternate the order; after a confirm, let its "password changed" notice go out
        // before the next timed step so the outbox worker never overlaps a measurement.
        let ((hash_ms, hash_cpu), (confirm_ms, confirm_cpu)) = if i % 2 == 0 {
            let h = time_hash().await?;
            let c = time_confirm().await?;
            seen = wait_for_mail(&client, &serve.base, seen).await?.len();
            (h, c)
        } else {
            let c = time_confirm().await?;
            seen = wait_for_mail(&client, &serve.base, seen).await?.len();
            let h = time_hash().await?;
            (h, c)
        };
        if i >= warmup {
            hashes.push(hash_ms);
            confirms.push(confirm_ms);
            ratios.push(confirm_ms / hash_ms);
            server_cpu += confirm_cpu;
            driver_cpu += hash_cpu;
        }
    }
    let (mc, mh) = (median(&confirms), median(&hashes));
    let hwm = vm_hwm_kib(serve.pid());
    println!(
        "P3 confirm over HTTP vs bare argon2id (m=19456 t=2 p=1, PasswordHasher::owasp), {pairs} interleaved pairs"
    );
    println!(
        "  median confirm {mc:.2} ms  median bare hash {mh:.2} ms  ratio of medians {:.3}  median of pair ratios {:.3}",
        mc / mh,
        median(&ratios)
    );
    println!(
        "  p90 confirm {:.2} ms  p90 hash {:.2} ms",
        quantile(&confirms, 0.9),
        quantile(&hashes, 0.9)
    );
    let (server_cpu, driver_cpu) = (server_cpu / pairs as f64, driver_cpu / pairs as f64);
    println!(
        "  CPU time (mean, 10 ms ticks): server per confirm {server_cpu:.1} ms  driver per bare hash {driver_cpu:.1} ms"
    );
    println!(
        "P6 pwreset serve peak RSS (VmHWM) after {} full flows: {} KiB",
        warmup + pairs,
        hwm.map_or("?".into(), |k| k.to_string())
    );
    println!(
        "RESULT {}",
        json!({"p3_confirm": {
            "pairs": pairs,
            "confirm_median_ms": mc,
            "hash_median_ms": mh,
            "ratio_of_medians": mc / mh,
            "median_pair_ratio": median(&ratios),
            "server_cpu_per_confirm_ms": server_cpu,
            "driver_cpu_per_hash_ms": driver_cpu,
        }, "p6_serve": {"vm_hwm_kib": hwm, "flows": warmup + pairs}})
    );
    Ok(())
}

/// The change flow over HTTP (verify the current password, hash the new one, the
/// conditional write) against what it must at least cost: one bare argon2id verify and one
/// bare hash in this process, interleaved pairs, the order alternating.
pub async fn change(bin: &Path, pairs: usize, warmup: usize) -> anyhow::Result<()> {
    let serve = Serve::start(bin)?;
    let client = client()?;
    let email = "bench@example.org";
    add_user(&client, &serve.base, email).await?;
    let hasher = PasswordHasher::owasp();
    let change_url = format!("{}/password-change", serve.base);
    let server_pid = serve.pid().to_string();
    let mut seen = mail(&client, &serve.base).await?.len();
    let (mut changes, mut bare, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut server_cpu, mut driver_cpu) = (0.0, 0.0);
    let mut current = OLD_PASSWORD.to_owned();
    let stored = hasher
        .hash(SecretString::from(OLD_PASSWORD))
        .await
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
    for i in 0..warmup + pairs {
        let new_password = format!("violin kettle mango quartz {i}");
        let time_bare = async || -> anyhow::Result<(f64, f64)> {
            let cpu = cpu_ms("self").unwrap_or(0.0);
            let start = Instant::now();
            let ok = hasher
                .verify(SecretString::from(OLD_PASSWORD), Some(stored.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
            if !ok {
                bail!("the bare verify failed");
            }
            hasher
                .hash(SecretString::from(new_password.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
            let took = ms(start.elapsed());
            Ok((took, cpu_ms("self").unwrap_or(0.0) - cpu))
        };
        let body = json!({"email": email, "old_password": current, "new_password": new_password});
        let time_change = async || -> anyhow::Result<(f64, f64)> {
            let cpu = cpu_ms(&server_pid).unwrap_or(0.0);
            let start = Instant::now();
            let (status, body) = post(&client, &change_url, &body).await?;
            let took = ms(start.elapsed());
            if status != 200 {
                bail!("POST /password-change: {status} {body}");
            }
            Ok((took, cpu_ms(&server_pid).unwrap_or(0.0) - cpu))
        };
        // After a change, let its notice go out before the next timed step.
        let ((bare_ms, bare_cpu), (change_ms, change_cpu)) = if i % 2 == 0 {
            let b = time_bare().await?;
            let c = time_change().await?;
            seen = wait_for_mail(&client, &serve.base, seen).await?.len();
            (b, c)
        } else {
            let c = time_change().await?;
            seen = wait_for_mail(&client, &serve.base, seen).await?.len();
            let b = time_bare().await?;
            (b, c)
        };
        current = new_password;
        if i >= warmup {
            bare.push(bare_ms);
            changes.push(change_ms);
            ratios.push(change_ms / bare_ms);
            server_cpu += change_cpu;
            driver_cpu += bare_cpu;
        }
    }
    let (mc, mb) = (median(&changes), median(&bare));
    println!(
        "P3c password change over HTTP vs a bare argon2id verify + hash (m=19456 t=2 p=1), {pairs} interleaved pairs"
    );
    println!(
        "  median change {mc:.2} ms  median bare verify+hash {mb:.2} ms  ratio of medians {:.3}  median of pair ratios {:.3}",
        mc / mb,
        median(&ratios)
    );
    let (server_cpu, driver_cpu) = (server_cpu / pairs as f64, driver_cpu / pairs as f64);
    println!(
        "  CPU time (mean, 10 ms ticks): server per change {server_cpu:.1} ms  driver per verify+hash {driver_cpu:.1} ms"
    );
    println!(
        "RESULT {}",
        json!({"p3_change": {
            "pairs": pairs,
            "change_median_ms": mc,
            "two_hashes_median_ms": mb,
            "ratio_of_medians": mc / mb,
            "median_pair_ratio": median(&ratios),
            "server_cpu_per_change_ms": server_cpu,
            "driver_cpu_per_two_hashes_ms": driver_cpu,
        }})
    );
    Ok(())
}

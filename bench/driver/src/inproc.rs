//! In process: what the verify route costs inside the app, without sockets, hyper or a
//! second thread. The router (or the service alone) is called `requests` times through
//! `tower::ServiceExt::oneshot` on this thread, each response body read, and the wall time
//! per call taken; phases rotate each round and the medians are printed. Where `cpu`
//! measures the whole server, this splits the app's part: the hello-world's router bare,
//! under `app()` (the log line and shared headers), as `pwreset serve` wraps it, and
//! pwreset's verify the same way, next to `ConfirmReset::verify` alone.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use http_body_util::BodyExt as _;
use pwreset_core::adapters::memory::MemoryStore;
use pwreset_core::domain::{EmailAddress, PasswordHash, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http;
use pwreset_core::policy::PasswordPolicy;
use pwreset_core::ports::{SystemClock, UserRepository as _};
use pwreset_core::service::ConfirmReset;
use pwreset_core::token::{TokenKeys, TokenSigner, TokenSubject};
use serde_json::json;
use tower::ServiceExt as _;

use crate::cpu::hello_router;
use crate::stats::median;

/// µs per call of `service` on `POST /password-reset/verify` with `body`, each answered 200.
async fn per_call<S>(service: &S, body: &str, requests: usize) -> anyhow::Result<f64>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    let started = Instant::now();
    for _ in 0..requests {
        let request = Request::builder()
            .method("POST")
            .uri("/password-reset/verify")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))?;
        let Ok(response) = service.clone().oneshot(request).await;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if status != 200 || bytes.is_empty() {
            bail!("verify answered {status}");
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / requests as f64)
}

pub async fn run(requests: usize, rounds: usize) -> anyhow::Result<()> {
    let store = Arc::new(MemoryStore::new());
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    // A stored hash of the usual length; a verify never checks it, only signs over it.
    let user = User {
        uid: UserId::generate(),
        email: EmailAddress::parse("cpu-here@example.org")?,
        password_hash: Some(PasswordHash::new(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY",
        )),
        active: true,
        credential_version: 0,
        locale: None,
    };
    store.insert(&user).await?;
    let hash = user.password_hash.as_ref().context("the user's hash")?;
    let token = signer.sign(
        TokenSubject {
            uid: &user.uid,
            email: &user.email,
            password_hash: hash,
        },
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let confirm = Arc::new(ConfirmReset::new(
        store,
        Arc::new(SystemClock),
        signer,
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
    ));
    let body = json!({"uid": user.uid.as_str(), "token": token.as_str()}).to_string();

    let hello = hello_router();
    let hello_app = http::app(hello_router());
    let hello_served = http::for_dev_server(hello_router());
    let verify_served = http::for_dev_server(http::confirm_routes(confirm.clone()));
    let labels = [
        "hello router",
        "hello router under app()",
        "hello router as pwreset serve wraps it",
        "verify, confirm routes as pwreset serve wraps them",
        "ConfirmReset::verify alone",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); labels.len()];
    for round in 0..=rounds {
        for k in 0..labels.len() {
            let index = (k + round) % labels.len();
            let us = match index {
                0 => per_call(&hello, &body, requests).await?,
                1 => per_call(&hello_app, &body, requests).await?,
                2 => per_call(&hello_served, &body, requests).await?,
                3 => per_call(&verify_served, &body, requests).await?,
                _ => {
                    let started = Instant::now();
                    for _ in 0..requests {
                        let verified = confirm.verify(user.uid.as_str(), token.as_str()).await?;
                        std::hint::black_box(verified);
                    }
                    started.elapsed().as_secs_f64() * 1e6 / requests as f64
                }
            };
            // Round 0 warms up and is not kept.
            if round > 0 {
                samples[index].push(us);
            }
        }
    }
    println!(
        "In process, one thread, µs per call (POST /password-reset/verify), {rounds} rounds x {requests} calls"
    );
    let mut result = serde_json::Map::new();
    for (label, times) in labels.iter().zip(&samples) {
        let m = median(times);
        println!(
            "  {label:52} median {m:7.3} µs  rounds {}",
            times
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        result.insert(
            (*label).to_owned(),
            json!({"median_us": m, "rounds_us": times}),
        );
    }
    println!("RESULT {}", json!({ "inproc_verify": result }));
    Ok(())
}

//! `pwreset serve` under test: the real binary on a free loopback port, driven over HTTP,
//! its mail and its output read back.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::mail::link_parts;
use crate::paths::workspace_root;
use crate::process::{Keep, Server};

/// The `pwreset` binary under test: `PWRESET_BIN` (relative to the workspace root unless
/// absolute), which `scripts/test` sets after building the binaries once. A test never
/// builds it: a `cargo build` inside a test waits for the build directory's lock and can
/// rebuild the binary under another feature set.
pub fn pwreset_bin() -> PathBuf {
    let bin = std::env::var_os("PWRESET_BIN")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "PWRESET_BIN is not set: build the binary and name it, e.g. \
                 `cargo build -p pwreset --features aws && \
                 PWRESET_BIN=target/debug/pwreset cargo test -p pwreset-blackbox` \
                 (scripts/test does both)"
            )
        });
    let bin = workspace_root().join(bin);
    assert!(
        bin.is_file(),
        "PWRESET_BIN: {} is not a file",
        bin.display()
    );
    bin
}

/// A running `pwreset serve`, stopped (by PID) when dropped.
#[derive(Debug)]
pub struct DevServer {
    server: Server,
    pub base_url: String,
    pub client: reqwest::Client,
}

impl DevServer {
    /// Starts with no demo user, the given environment on top of a clean one.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::try_start(env)
            .unwrap_or_else(|output| panic!("pwreset serve did not start:\n{output}"))
    }

    /// Starts, or returns everything it printed if it exits or never listens.
    pub fn try_start(env: &[(&str, &str)]) -> Result<Self, String> {
        Self::try_start_with_args(&[], env)
    }

    /// `pwreset serve --addr 127.0.0.1:0 --no-demo` plus `args` (e.g. `--backend aws`).
    pub fn start_with_args(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::try_start_with_args(args, env)
            .unwrap_or_else(|output| panic!("pwreset serve did not start:\n{output}"))
    }

    pub fn try_start_with_args(args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        let mut command = Command::new(pwreset_bin());
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--no-demo"])
            .args(args)
            .env_remove("TOKEN_KEYS")
            .env_remove("RESET_LINK_TEMPLATE")
            .env_remove("PASSWORD_RESET_TIMEOUT")
            .env_remove("RESET_LIMIT_PER_EMAIL")
            .env_remove("RESET_LIMIT_PER_IP")
            .env_remove("PASSWORD_MIN_LENGTH")
            .env("RUST_LOG", "debug");
        for (key, value) in env {
            command.env(key, value);
        }
        let server = Server::start(&mut command, Keep::Everything, Duration::from_secs(30))?;
        Ok(Self {
            base_url: server.base_url.clone(),
            server,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn stdout(&self) -> String {
        self.server.stdout()
    }

    pub fn stderr(&self) -> String {
        self.server.stderr()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn create_user(&self, email: &str, password: &str, active: bool) -> String {
        let reply = self
            .post_json(
                "/_dev/users",
                &json!({"email": email, "password": password, "active": active}),
            )
            .await;
        assert_eq!(reply.status, 201, "create user: {}", reply.text);
        reply.json["uid"].as_str().expect("uid").to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> bool {
        let reply = self
            .post_json(
                "/_dev/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "login: {}", reply.text);
        reply.json["valid"].as_bool().expect("bool")
    }

    pub async fn request_reset(&self, email: &str) -> Reply {
        self.post_json("/password-reset", &json!({ "email": email }))
            .await
    }

    pub async fn verify(&self, uid: &str, token: &str) -> Reply {
        self.post_json(
            "/password-reset/verify",
            &json!({"uid": uid, "token": token}),
        )
        .await
    }

    pub async fn confirm(&self, uid: &str, token: &str, password: &str) -> Reply {
        self.post_json(
            "/password-reset/confirm",
            &json!({"uid": uid, "token": token, "new_password": password}),
        )
        .await
    }

    pub async fn change_password(&self, email: &str, old: &str, new: &str) -> Reply {
        self.post_json(
            "/password-change",
            &json!({"email": email, "old_password": old, "new_password": new}),
        )
        .await
    }

    pub async fn mail(&self) -> Vec<Mail> {
        self.mailbox().await.messages
    }

    async fn mailbox(&self) -> Mailbox {
        let reply = self
            .client
            .get(self.url("/_dev/mail"))
            .send()
            .await
            .expect("get mail");
        reply.json().await.expect("mailbox json")
    }

    /// Waits until at least `count` messages were sent (the outbox is asynchronous).
    pub async fn wait_for_mail(&self, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.mail().await;
            if mail.len() >= count || Instant::now() > deadline {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the outbox is idle (`/_dev/mail` reports no unfinished job), for tests
    /// that assert no (more) mail was sent; fails if it does not settle within 10 s.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.mailbox().await.outbox_pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the outbox never went idle");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Requests a link for `email` and returns (uid, token) from the mail it produces.
    pub async fn reset_link(&self, email: &str) -> (String, String) {
        let before = self.mail().await.len();
        let reply = self.request_reset(email).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        let mail = self.wait_for_mail(before + 1).await;
        let last = mail.get(before).expect("a reset mail arrived");
        link_parts(&last.text).expect("a link in the mail")
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Sends a request and reads the whole answer.
    pub async fn read(request: reqwest::RequestBuilder) -> Self {
        Self::from(request.send().await.expect("request sent")).await
    }

    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What "identical" responses must share: status, body and every header but `Date`
    /// (sorted, so order does not count).
    pub fn comparable(&self) -> (u16, String, Vec<(String, String)>) {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(name, _)| name.as_str() != "date")
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        headers.sort();
        (self.status, self.text.clone(), headers)
    }

    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    /// Asserts a problem document with this status and code, and the headers every
    /// response carries.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert!(self.json["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.header("cache-control"), Some("no-store"));
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub sent_at: String,
}

#[derive(Debug, Deserialize)]
struct Mailbox {
    messages: Vec<Mail>,
    outbox_pending: usize,
}

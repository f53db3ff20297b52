//! Helpers for black-box tests: start the real `pwreset serve` binary on a random loopback
//! port, talk to it over HTTP, read its mail and its captured output.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `pwreset` binary next to this test's own executable (same profile, same target
/// dir), built on first use if it is not there yet. `PWRESET_BIN` overrides.
pub fn pwreset_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("PWRESET_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> → target/<profile>/pwreset
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let bin = profile_dir.join("pwreset");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "pwreset", "--features", "aws"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build -p pwreset");
        assert!(
            status.success(),
            "cargo build -p pwreset --features aws failed"
        );
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// A running `pwreset serve`, stopped (by PID) when dropped.
pub struct DevServer {
    child: Child,
    pub base_url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub client: reqwest::Client,
}

fn capture(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut buffer = into.lock().expect("capture lock");
            buffer.push_str(&line);
            buffer.push('\n');
        }
    });
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

    fn try_start_with_args(args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
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
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| format!("spawn failed: {e}"))?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().expect("piped"), stdout.clone());
        capture(child.stderr.take().expect("piped"), stderr.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let printed = stdout.lock().expect("lock").clone();
            if let Some(rest) = printed.split("listening on ").nth(1) {
                let base_url = rest.lines().next().unwrap_or_default().trim().to_owned();
                return Ok(Self {
                    child,
                    base_url,
                    stdout,
                    stderr,
                    client: reqwest::Client::builder()
                        .no_proxy()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .expect("client"),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "exited with {status}\nstdout:\n{printed}\nstderr:\n{}",
                    stderr.lock().expect("lock")
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("never listened\nstdout:\n{printed}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
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

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// (uid, token) from a link of the default shape `…#uid=U&token=T` or any link whose
/// query/fragment holds `uid=` and `token=`.
pub fn link_parts(text: &str) -> Option<(String, String)> {
    let link = text
        .split_whitespace()
        .find(|w| w.contains("uid=") && w.contains("token="))?;
    let params = link.split(['#', '?']).nth(1)?;
    let mut uid = None;
    let mut token = None;
    for pair in params.split('&') {
        match pair.split_once('=') {
            Some(("uid", v)) => uid = Some(v.to_owned()),
            Some(("token", v)) => token = Some(v.to_owned()),
            _ => {}
        }
    }
    Some((uid?, token?))
}

/// The first link in a mail text.
pub fn first_link(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
}

/// A race test's size from the environment: `PWRESET_RACE_ROUNDS` and `PWRESET_RACE_N`
/// (`scripts/race` sets them), else `default`.
pub fn race_setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the rounds of a race ended: with no winner, one, or two and more.
#[derive(Debug, Default)]
pub struct RaceTally {
    by_winners: [usize; 3],
}

impl RaceTally {
    /// Counts a round that had `winners` successful confirms. Two or more fail the round
    /// at once, so even a run cut short proves every round before it.
    pub fn count(&mut self, round: usize, winners: usize) {
        self.by_winners[winners.min(2)] += 1;
        assert!(winners <= 1, "round {round}: {winners} winners");
    }

    pub fn rounds(&self) -> usize {
        self.by_winners.iter().sum()
    }

    pub fn no_winner(&self) -> usize {
        self.by_winners[0]
    }

    pub fn one_winner(&self) -> usize {
        self.by_winners[1]
    }

    /// The fields of the `race:` lines `scripts/race` collects.
    pub fn summary(&self, n: usize) -> String {
        format!(
            "rounds={} n={n} one_winner={} no_winner={} double_success={}",
            self.rounds(),
            self.by_winners[1],
            self.by_winners[0],
            self.by_winners[2]
        )
    }
}

//! Lambda mode end to end: the four real binaries under `cargo lambda watch -A 127.0.0.1`
//! (cargo-lambda's runtime emulator), DynamoDB on moto and SES v2 on aws-ses-v2-local, all
//! on loopback, started here and stopped by PID. The stream step is driven by invoking
//! `send-reset-email` with stream records built from the outbox items in the table.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use pwreset_blackbox::{RaceTally, race_setting};
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::item::OUTBOX_SK;
use pwreset_core::adapters::dynamodb::{self, DynamoStore};
use pwreset_core::domain::{EmailAddress, PasswordHash, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::ports::{InsertOutcome, StoreError, UserRepository as _};
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::mail::link_parts;
use pwreset_testkit::net::{free_port, wait_until_listening};
use pwreset_testkit::outbox::{self, OutboxStream};
use pwreset_testkit::paths::{find_tool, workspace_root};
use pwreset_testkit::process::Process;
use pwreset_testkit::{emulators, ses_store};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const TOKEN_KEYS: &str = "bGFtYmRhLW1vZGUtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=";
const STRONG: &str = "violin kettle mango quartz";

fn cargo_lambda() -> PathBuf {
    find_tool("CARGO_LAMBDA_BIN", "venv/bin/cargo-lambda", "cargo-lambda")
}

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

/// `cargo lambda watch` and everything it started, in one process group stopped on drop.
struct Watch {
    /// Held for its `Drop`, which stops the group.
    _group: Process,
    port: u16,
    env: Vec<(String, String)>,
    /// Everything `cargo lambda watch` and the functions under it printed.
    log: PathBuf,
}

struct Stack {
    watch: Watch,
    table: String,
    store: DynamoStore,
    dynamodb: aws_sdk_dynamodb::Client,
    ses_url: String,
    http: reqwest::Client,
    stream: Mutex<OutboxStream>,
}

impl Stack {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with these variables replacing (or adding to) the functions' environment.
    async fn start_with(overrides: &[(&str, &str)]) -> Self {
        let moto = emulators::moto();
        let ses = emulators::ses_local();
        let dynamodb = sdk().dynamodb(&moto.url);
        let table = aws::fresh_table(&dynamodb, "lambda-e2e", dynamodb::table::create_tables).await;
        // The token keys live in a secret, as the template deploys them; a test may give
        // TOKEN_KEYS itself instead.
        let secret = aws::secret_holding(&sdk(), &moto.url, "pwreset-token-keys", TOKEN_KEYS).await;
        let port = free_port();
        let plain_keys = overrides.iter().any(|(k, _)| *k == "TOKEN_KEYS");
        let env: Vec<(String, String)> = [
            ("TABLE_NAME", table.as_str()),
            ("TOKEN_KEYS_SECRET_ID", secret.as_str()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.as_str()),
            (
                "RESET_LINK_TEMPLATE",
                "https://app.example.com/reset#uid={uid}&token={token}",
            ),
            ("MAIL_FROM", "no-reply@example.com"),
            ("RESET_LIMIT_PER_IP", "1000/1m"),
            ("RESET_LIMIT_PER_EMAIL", "100/15m"),
            ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.as_str()),
            ("AWS_ENDPOINT_URL_SESV2", ses.url.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .filter(|(k, _)| !(plain_keys && *k == "TOKEN_KEYS_SECRET_ID"))
        .chain(overrides.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let log = std::env::temp_dir().join(format!("pwreset-cargo-lambda-watch-{port}.log"));
        let out = std::fs::File::create(&log).expect("log");
        let mut command = Command::new(cargo_lambda());
        command
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(port.to_string())
            .args(["--ignore-changes", "--concurrency", "4"])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        for (key, value) in &env {
            command.arg("--env-var").arg(format!("{key}={value}"));
            command.env(key, value);
        }
        let mut process = Process::spawn_group(&mut command)
            .expect("start cargo lambda watch (run scripts/install-tools)");
        let listening = wait_until_listening(port, Duration::from_secs(120), || {
            process.exited().is_some()
        });
        assert!(
            listening,
            "cargo lambda watch never listened:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let watch = Watch {
            _group: process,
            port,
            env,
            log,
        };
        Self {
            store: DynamoStore::new(dynamodb.clone(), table.clone()),
            watch,
            table,
            dynamodb,
            ses_url: ses.url.clone(),
            // The first call to each function waits for cargo to build it.
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(900))
                .build()
                .expect("client"),
            stream: Mutex::new(OutboxStream::default()),
        }
    }

    async fn add_user(&self, email: &str, password: &str) -> UserId {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse(email).expect("valid"),
            password_hash: Some(
                PasswordHasher::owasp()
                    .hash(SecretString::from(password.to_owned()))
                    .await
                    .expect("hash"),
            ),
            active: true,
            credential_version: 0,
            locale: None,
        };
        // Setup against an emulator that may be overloaded (the race rounds): retry a
        // timed-out insert with the same user. Addresses here are unique, so "taken" means
        // an earlier attempt landed — ours, or the SDK's own retry of it, which moto does
        // not de-duplicate by ClientRequestToken as DynamoDB does.
        for _ in 0..5 {
            match self.store.insert(&user).await {
                Ok(InsertOutcome::Inserted | InsertOutcome::EmailTaken) => {
                    let stored = self.store.find_by_uid(&user.uid).await.expect("read");
                    assert!(stored.is_some(), "{email}: taken, but not by this user");
                    return user.uid;
                }
                Err(StoreError::Transient(_)) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(other) => panic!("insert: {other:?}"),
            }
        }
        panic!("insert: DynamoDB stayed unavailable")
    }

    async fn post(&self, function: &str, path: &str, body: &Value) -> (u16, Value, String) {
        let url = format!(
            "http://127.0.0.1:{}/lambda-url/{function}{path}",
            self.watch.port
        );
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("invoke over HTTP");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    async fn invoke(&self, function: &str, event: &Value) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.watch.port
        );
        let response = self
            .http
            .post(url)
            .json(event)
            .send()
            .await
            .expect("invoke");
        response.json().await.expect("JSON response")
    }

    /// The stream records DynamoDB would deliver for outbox items not yet delivered, and
    /// the keys of their items.
    async fn pending_stream_event(&self) -> (Value, Vec<String>) {
        let items =
            outbox::items_with_prefix(&self.dynamodb, &self.table, dynamodb::item::OUTBOX_PREFIX)
                .await
                .expect("scan");
        let (records, keys) = self.stream.lock().await.new_records(&items);
        (json!({ "Records": records }), keys)
    }

    /// Delivers the pending outbox items as one stream batch, then deletes them, as their
    /// TTL eventually would, so long runs keep the table (and every scan of it) small.
    async fn deliver_outbox(&self) -> usize {
        let (event, keys) = self.pending_stream_event().await;
        let response = self.invoke("send-reset-email", &event).await;
        assert_eq!(response, json!({"batchItemFailures": []}), "stream batch");
        for pk in &keys {
            self.dynamodb
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(OUTBOX_SK.into()))
                .send()
                .await
                .expect("delete a delivered outbox item");
        }
        keys.len()
    }

    async fn mail_to(&self, to: &str) -> Vec<Value> {
        ses_store::mail_to(&self.http, &self.ses_url, to)
            .await
            .expect("GET /store")
    }

    /// The password hash stored for `uid` now.
    async fn stored_hash(&self, uid: &UserId) -> Option<PasswordHash> {
        self.store
            .find_by_uid(uid)
            .await
            .expect("read")
            .expect("user")
            .password_hash
    }
}

#[tokio::test]
async fn the_whole_flow_runs_on_the_lambda_binaries_against_the_emulators() {
    // PasswordChanged events go to a bus on moto whose rule feeds an SQS queue.
    let moto = &emulators::moto().url;
    let (bus, queue) = aws::event_bus_with_queue(&sdk(), moto).await;
    let stack = Arc::new(
        Stack::start_with(&[
            ("EVENT_BUS_NAME", bus.as_str()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.as_str()),
        ])
        .await,
    );
    let address = format!("{}@example.org", unique_name("alice"));
    let uid = stack.add_user(&address, "the old password 1").await;

    // Request: identical answers for an existing and a missing address, one outbox item each.
    let (status, _, existing) = stack
        .post(
            "request-reset",
            "/password-reset",
            &json!({ "email": address.to_uppercase() }),
        )
        .await;
    assert_eq!(status, 202, "{existing}");
    let (status, _, missing) = stack
        .post(
            "request-reset",
            "/password-reset",
            &json!({"email": "nobody-here@example.org"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(existing, missing);
    assert_eq!(existing, r#"{"status":"accepted"}"#);

    // Stream step: the outbox items go to send-reset-email; only the account is mailed.
    assert_eq!(stack.deliver_outbox().await, 2);
    let mail = stack.mail_to(&address).await;
    assert_eq!(mail.len(), 1, "one reset mail to the stored address");
    let text = mail[0]["body"]["text"].as_str().expect("text");
    assert!(
        text.contains("https://app.example.com/reset#uid="),
        "{text}"
    );
    assert!(text.contains("expires in 1 hour"));
    let (link_uid, token) = link_parts(text).expect("link");
    assert_eq!(link_uid, uid.as_str());

    // Verify has no side effect; a weak password keeps the token usable.
    for _ in 0..3 {
        let (status, body, _) = stack
            .post(
                "confirm-reset",
                "/password-reset/verify",
                &json!({"uid": link_uid, "token": token}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["valid"], true);
    }
    let (status, body, _) = stack
        .post(
            "confirm-reset",
            "/password-reset/confirm",
            &json!({"uid": link_uid, "token": token, "new_password": "password"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "weak_password");

    // 20 concurrent confirms with the one token: exactly one lands.
    let attempts = (0..20).map(|i| {
        let (stack, uid, token) = (stack.clone(), link_uid.clone(), token.clone());
        tokio::spawn(async move {
            stack
                .post(
                    "confirm-reset",
                    "/password-reset/confirm",
                    &json!({"uid": uid, "token": token, "new_password": format!("{STRONG} {i}")}),
                )
                .await
        })
    });
    let results: Vec<(u16, Value, String)> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    for (status, body, _) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["code"], "invalid_token");
    }

    // Replay is refused; the stored hash is the winner's.
    let winner = results.iter().position(|r| r.0 == 200).expect("a winner");
    let (status, body, _) = stack
        .post(
            "confirm-reset",
            "/password-reset/confirm",
            &json!({"uid": link_uid, "token": token, "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_token"))
    );
    let stored = stack.stored_hash(&uid).await;
    assert!(
        PasswordHasher::owasp()
            .verify(SecretString::from(format!("{STRONG} {winner}")), stored)
            .await
            .expect("verify")
    );

    // The change wrote exactly one notice and one event item; delivered, the notice says
    // the password changed and the event reached the bus's rule target once.
    assert_eq!(stack.deliver_outbox().await, 2);
    let sqs = sdk().sqs(moto);
    assert_eq!(aws::messages_waiting(&sqs, &queue).await, 1);
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let event: Value =
        serde_json::from_str(received.messages()[0].body().expect("body")).expect("event JSON");
    assert_eq!(event["source"], "pwreset");
    assert_eq!(event["detail-type"], "PasswordChanged");
    assert_eq!(event["detail"]["uid"], uid.as_str());
    assert_eq!(event["detail"]["credential_version"], 1);
    assert!(
        !event.to_string().contains(&address),
        "no address in the event: {event}"
    );
    let mail = stack.mail_to(&address).await;
    assert_eq!(mail.len(), 2);
    assert!(
        mail[1]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("changed")),
        "{}",
        mail[1]
    );
    assert!(
        !mail[1]["body"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&token)
    );
}

#[tokio::test]
async fn a_password_change_runs_on_its_own_lambda_binary_against_the_emulators() {
    let moto = &emulators::moto().url;
    let (bus, queue) = aws::event_bus_with_queue(&sdk(), moto).await;
    let stack = Arc::new(
        Stack::start_with(&[
            ("EVENT_BUS_NAME", bus.as_str()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.as_str()),
            ("CHANGE_LIMIT_FAILURES", "100/15m"),
            ("CHANGE_LIMIT_PER_IP", "100/1m"),
        ])
        .await,
    );
    const OLD: &str = "the old password 1";
    let address = format!("{}@example.org", unique_name("ann"));
    let uid = stack.add_user(&address, OLD).await;
    let change = |email: &str, old: &str, new: &str| {
        let body = json!({"email": email, "old_password": old, "new_password": new});
        let stack = stack.clone();
        async move {
            stack
                .post("change-password", "/password-change", &body)
                .await
        }
    };

    // An outstanding reset link, to be killed by the change.
    let (status, _, text) = stack
        .post(
            "request-reset",
            "/password-reset",
            &json!({ "email": address }),
        )
        .await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(stack.deliver_outbox().await, 1);
    let mail = stack.mail_to(&address).await;
    let (_, token) = link_parts(mail[0]["body"]["text"].as_str().expect("text")).expect("link");

    // Wrong password and unknown account: the same 401; a weak new password: 422.
    let (status, _, wrong) = change(&address, "not the password", STRONG).await;
    assert_eq!(status, 401, "{wrong}");
    let (_, _, missing) = change("nobody-here@example.org", OLD, STRONG).await;
    assert_eq!(wrong, missing);
    let (status, body, _) = change(&address, OLD, OLD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("weak_password"))
    );

    // 20 concurrent changes with the right password: exactly one lands.
    let attempts = (0..20).map(|i| {
        let new = format!("{STRONG} {i}");
        let attempt = change(&address, OLD, &new);
        tokio::spawn(async move { (attempt.await, new) })
    });
    let mut winners = Vec::new();
    let mut tried = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        let ((status, body, text), new) = attempt.expect("task");
        tried.push(new.clone());
        match status {
            200 => winners.push(new),
            401 => assert_eq!(body["code"], "invalid_credentials", "{text}"),
            // An overloaded emulator can time a call out: a clear 503.
            503 => assert_eq!(body["code"], "unavailable", "{text}"),
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert!(winners.len() <= 1, "{winners:?}");
    // Exactly one of the passwords landed (moto may have lost the winner's answer to an
    // SDK retry: see the confirm race below), and it is the winner's when one was told.
    let stored = stack.stored_hash(&uid).await;
    let mut landed = Vec::new();
    for new in &tried {
        if PasswordHasher::owasp()
            .verify(SecretString::from(new.clone()), stored.clone())
            .await
            .expect("verify")
        {
            landed.push(new.clone());
        }
    }
    assert_eq!(landed.len(), 1, "{landed:?}");
    if let [winner] = winners.as_slice() {
        assert_eq!(winner, &landed[0]);
    }

    // The old link is dead; the notice is mailed and the event reaches the bus once.
    let (status, body, _) = stack
        .post(
            "confirm-reset",
            "/password-reset/verify",
            &json!({"uid": uid.as_str(), "token": token}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_token"))
    );
    assert_eq!(stack.deliver_outbox().await, 2);
    let mail = stack.mail_to(&address).await;
    assert_eq!(mail.len(), 2);
    assert!(
        mail[1]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("changed")),
        "{}",
        mail[1]
    );
    let sqs = sdk().sqs(moto);
    assert_eq!(aws::messages_waiting(&sqs, &queue).await, 1);
}

#[tokio::test]
async fn every_sample_event_gives_its_expected_answer_through_cargo_lambda_invoke() {
    let stack = Stack::start().await;
    let events = workspace_root().join("events");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(events.join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let mut checked = 0;
    for (name, want) in expected.as_object().expect("object") {
        let function = if name.starts_with("request-reset") {
            "request-reset"
        } else if name.starts_with("change-password") {
            "change-password"
        } else if name.starts_with("outbox") {
            "send-reset-email"
        } else {
            "confirm-reset"
        };
        let output = Command::new(cargo_lambda())
            .args(["lambda", "invoke", function, "--data-file"])
            .arg(events.join(name))
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(stack.watch.port.to_string())
            .envs(
                stack
                    .watch
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .current_dir(workspace_root())
            .output()
            .expect("cargo lambda invoke");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let response: Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
        match want.as_u64() {
            Some(status) => {
                assert_eq!(
                    response["statusCode"].as_u64(),
                    Some(status),
                    "{name}: {response}"
                );
                let headers = &response["headers"];
                assert_eq!(headers["cache-control"], "no-store", "{name}: {response}");
            }
            None => assert_eq!(&response, want, "{name}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 13);
}

/// Every form of a secret worth looking for: the text itself and, for binary secrets, the
/// encodings a careless log line would use.
fn secret_forms(name: &str, text: &str, out: &mut Vec<(String, String)>) {
    out.push((name.to_owned(), text.to_owned()));
}

/// Standard base64 (the test has no base64 crate at hand): decode, and encode to URL-safe
/// without padding.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c)
            .expect("standard base64");
        bits = (bits << 6) | u32::try_from(value).expect("< 64");
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("a byte"));
        }
    }
    out
}

fn base64_url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut buffer = [0u8; 3];
        buffer[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(buffer[0]) << 16) | (u32::from(buffer[1]) << 8) | u32::from(buffer[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn key_forms(base64_key: &str, out: &mut Vec<(String, String)>) {
    let bytes = base64_decode(base64_key);
    assert!(bytes.len() >= 32, "a real key");
    out.push(("TOKEN_KEYS (base64)".into(), base64_key.to_owned()));
    out.push((
        "TOKEN_KEYS (base64 without padding)".into(),
        base64_key.trim_end_matches('=').to_owned(),
    ));
    out.push((
        "TOKEN_KEYS (URL-safe base64)".into(),
        base64_url_encode(&bytes),
    ));
    out.push((
        "TOKEN_KEYS (hex)".into(),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ));
    out.push((
        "TOKEN_KEYS (as a byte list)".into(),
        format!("{:?}", bytes.as_slice()),
    ));
    if let Ok(text) = String::from_utf8(bytes) {
        out.push(("TOKEN_KEYS (decoded text)".into(), text));
    }
}

/// A PHC string and its salt and hash parts (`$argon2id$v=19$m=…$<salt>$<hash>`).
fn hash_forms(name: &str, phc: &str, out: &mut Vec<(String, String)>) {
    out.push((format!("{name} (PHC string)"), phc.to_owned()));
    let parts: Vec<&str> = phc.split('$').collect();
    assert_eq!(parts.len(), 6, "an argon2 PHC string: {phc}");
    out.push((format!("{name} (salt)"), parts[4].to_owned()));
    out.push((format!("{name} (hash)"), parts[5].to_owned()));
}

#[tokio::test]
async fn no_token_password_hash_or_key_reaches_the_lambda_logs_even_at_trace_level() {
    const OLD: &str = "old Secret zebra 4411";
    const NEW: &str = "violin kettle mango quartz audit";
    const WEAK: &str = "qwerty123456";
    // The most verbose setting there is: the Lambda runtime logs raw event bodies at TRACE,
    // so dependencies must stay capped at DEBUG whatever RUST_LOG says.
    let stack = Stack::start_with(&[("RUST_LOG", "trace")]).await;
    let address = format!("{}@example.org", unique_name("audit"));
    let uid = stack.add_user(&address, OLD).await;
    let old_hash = stack.stored_hash(&uid).await.expect("hash");

    // The whole flow: request, stream delivery, verify, a refused and a good confirm, the
    // notice, a replay.
    let (status, _, _) = stack
        .post(
            "request-reset",
            "/password-reset",
            &json!({ "email": address }),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(stack.deliver_outbox().await, 1);
    let mail = stack.mail_to(&address).await;
    let (link_uid, token) =
        link_parts(mail[0]["body"]["text"].as_str().expect("text")).expect("link");
    let verify = json!({"uid": link_uid, "token": token});
    let (status, _, _) = stack
        .post("confirm-reset", "/password-reset/verify", &verify)
        .await;
    assert_eq!(status, 200);
    for (password, want) in [(WEAK, 422), (NEW, 200), (NEW, 400)] {
        let (status, body, _) = stack
            .post(
                "confirm-reset",
                "/password-reset/confirm",
                &json!({"uid": link_uid, "token": token, "new_password": password}),
            )
            .await;
        assert_eq!(status, want, "{body}");
    }
    assert_eq!(stack.deliver_outbox().await, 1);
    assert_eq!(stack.mail_to(&address).await.len(), 2);
    let new_hash = stack.stored_hash(&uid).await.expect("hash");
    assert_ne!(new_hash, old_hash);

    // The functions' lines reach cargo lambda watch's output (a little after the answer).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let captured = std::fs::read_to_string(&stack.watch.log).expect("the captured output");
    // cargo lambda watch's own log lines ("  INFO supervisor: spawning command … TOKEN_KEYS=…")
    // echo the environment it was handed: that is the local emulator, which no deployment
    // runs. Everything else — the functions' JSON lines and anything else they print — is
    // audited.
    let is_cargo_lambda_line = |line: &str| {
        let line = line.trim_start();
        ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR "]
            .iter()
            .any(|level| line.starts_with(level))
    };
    let (tool_lines, function_lines): (Vec<&str>, Vec<&str>) = captured
        .lines()
        .partition(|line| is_cargo_lambda_line(line));
    let logs = function_lines.join("\n");
    let tool_logs = tool_lines.join("\n");
    assert!(
        logs.contains(r#""event":"request""#) && logs.contains(r#""event":"mail_sent""#),
        "the functions' JSON logs were captured:\n{logs}"
    );
    assert!(
        logs.contains(r#""level":"DEBUG""#) && logs.contains("beginning attempt #1"),
        "debug lines, the AWS SDK's included, were captured:\n{logs}"
    );
    assert!(
        !logs.contains("raw JSON event received from Lambda")
            && !logs.contains(r#""level":"TRACE""#),
        "no dependency logged at TRACE:\n{logs}"
    );

    // The functions' own lines: Powertools' top-level fields, and one EMF line per counted
    // metric, each a single JSON object.
    let json_lines: Vec<Value> = function_lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .collect();
    let request_line = json_lines
        .iter()
        .find(|line| line["event"] == "request" && line["route"] == "/password-reset")
        .unwrap_or_else(|| panic!("request-reset's request line:\n{logs}"));
    for key in ["level", "message", "timestamp", "service", "function_name"] {
        assert!(
            request_line[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {request_line}"
        );
    }
    assert!(request_line["cold_start"].is_boolean(), "{request_line}");
    assert!(
        request_line["request_id"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{request_line}"
    );
    assert_eq!(request_line["status"], 202);
    assert!(request_line.get("fields").is_none(), "{request_line}");
    let emf = json_lines
        .iter()
        .find(|line| line["ResetRequestAccepted"] == 1)
        .unwrap_or_else(|| panic!("an EMF line for ResetRequestAccepted:\n{logs}"));
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
        "ResetRequestAccepted"
    );
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "pwreset");
    assert!(emf["function_name"].is_string(), "{emf}");
    for metric in [
        "MailSent",
        "WeakPasswordRefused",
        "ResetCompleted",
        "InvalidToken",
    ] {
        assert!(
            json_lines.iter().any(|line| line[metric] == 1),
            "an EMF line for {metric}:\n{logs}"
        );
    }
    eprintln!("sample log line: {request_line}");
    eprintln!("sample EMF line: {emf}");

    let mut secrets = Vec::new();
    secret_forms("the token", &token, &mut secrets);
    // The token's MAC alone (its last 22 characters: 128 bits of base64url).
    secret_forms("the token's MAC", &token[token.len() - 22..], &mut secrets);
    secret_forms("the old password", OLD, &mut secrets);
    secret_forms("the new password", NEW, &mut secrets);
    secret_forms("the refused password", WEAK, &mut secrets);
    hash_forms("the old hash", old_hash.as_str(), &mut secrets);
    hash_forms("the new hash", new_hash.as_str(), &mut secrets);
    secret_forms("an argon2 PHC prefix", "$argon2id$", &mut secrets);
    key_forms(TOKEN_KEYS, &mut secrets);
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, text)| logs.contains(text.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    assert!(
        leaks.is_empty(),
        "leaked into the Lambda logs at RUST_LOG=trace: {leaks:?} (log: {})",
        stack.watch.log.display()
    );
    let tool_leaks: Vec<&str> = secrets
        .iter()
        .filter(|(_, text)| tool_logs.contains(text.as_str()))
        .map(|(name, _)| name.as_str())
        .collect();
    if !tool_leaks.is_empty() {
        eprintln!(
            "note: cargo lambda watch's own lines (not the functions') show {tool_leaks:?}: it \
             prints the environment it passes to the functions"
        );
    }
}

#[tokio::test]
async fn a_token_key_secret_that_cannot_be_read_stops_only_the_functions_that_use_keys() {
    let stack =
        Arc::new(Stack::start_with(&[("TOKEN_KEYS_SECRET_ID", "no-such-secret-here")]).await);
    // confirm-reset cannot start. (Lambda answers such an invocation Runtime.ExitError, a
    // 502 behind API Gateway; cargo lambda watch holds it instead, so it is not awaited.)
    let verify = {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move {
            stack
                .post(
                    "confirm-reset",
                    "/password-reset/verify",
                    &json!({"uid": "u", "token": "t"}),
                )
                .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let line = loop {
        let captured = std::fs::read_to_string(&stack.watch.log).expect("the captured output");
        let found = captured
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
            .find(|line| line["event"] == "startup_failed");
        if let Some(line) = found {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "confirm-reset's start-up error was never logged:\n{captured}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(line["level"], "ERROR");
    let message = line["message"].as_str().expect("message");
    assert!(
        message.starts_with("configuration error in TOKEN_KEYS_SECRET_ID")
            && message.contains("ResourceNotFound"),
        "{line}"
    );
    if verify.is_finished() {
        let (status, body, _) = verify.await.expect("task");
        assert!(status >= 500, "{status} {body}");
    } else {
        verify.abort();
    }
    // request-reset never holds the keys, so it reads no secret and keeps answering.
    let (status, _, _) = stack
        .post(
            "request-reset",
            "/password-reset",
            &json!({"email": "someone@example.org"}),
        )
        .await;
    assert_eq!(status, 202);
}

/// Races at scale in Lambda mode: rounds of N concurrent confirms with one token through
/// `confirm-reset` on moto. `scripts/test` runs a few rounds; `scripts/race` runs 1,000
/// (`PWRESET_RACE_ROUNDS`, `PWRESET_RACE_N`). Exactly one winner per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_round_of_concurrent_confirms_has_exactly_one_winner_in_lambda_mode() {
    let rounds = race_setting("PWRESET_RACE_ROUNDS", 3);
    let n = race_setting("PWRESET_RACE_N", 20).max(2);
    let stack = Arc::new(Stack::start().await);
    let mut tally = RaceTally::default();
    let mut unavailable_total = 0;
    let mut lost_answers = 0;
    for round in 0..rounds {
        let address = format!("{}@example.org", unique_name("racer"));
        let uid = stack.add_user(&address, "the old password 1").await;
        let (status, _, text) = stack
            .post(
                "request-reset",
                "/password-reset",
                &json!({ "email": address }),
            )
            .await;
        assert_eq!(status, 202, "{text}");
        stack.deliver_outbox().await;
        let mail = stack.mail_to(&address).await;
        let text = mail
            .last()
            .and_then(|m| m["body"]["text"].as_str())
            .expect("a reset mail");
        let (_, token) = link_parts(text).expect("link");
        let attempts = (0..n).map(|i| {
            let (stack, uid, token) = (stack.clone(), uid.as_str().to_owned(), token.clone());
            tokio::spawn(async move {
                let password = format!("{STRONG} {round} {i}");
                let reply = stack
                    .post(
                        "confirm-reset",
                        "/password-reset/confirm",
                        &json!({"uid": uid, "token": token, "new_password": password}),
                    )
                    .await;
                (reply, password)
            })
        });
        let mut winners = Vec::new();
        let mut unavailable = 0;
        let mut tried = Vec::new();
        for attempt in futures::future::join_all(attempts).await {
            let ((status, body, text), password) = attempt.expect("task");
            tried.push(password.clone());
            match status {
                200 => winners.push(password),
                400 => assert_eq!(body["code"], "invalid_token", "{text}"),
                // An overloaded emulator can time a call out: a clear 503, nothing changed.
                503 => {
                    assert_eq!(body["code"], "unavailable", "{text}");
                    unavailable += 1;
                }
                other => panic!("round {round}: unexpected {other}: {text}"),
            }
        }
        if winners.is_empty() && unavailable == 0 {
            // The winner's transaction landed but its answer came too late (moto under
            // load), the SDK retried it, and the retry found the hash changed. DynamoDB
            // makes that retry idempotent through the ClientRequestToken the SDK sends;
            // moto ignores it. Nothing may be lost: the stored hash must be one of ours.
            let stored = stack.stored_hash(&uid).await;
            let mut landed = false;
            for password in &tried {
                landed |= PasswordHasher::owasp()
                    .verify(SecretString::from(password.clone()), stored.clone())
                    .await
                    .expect("verify");
            }
            assert!(
                landed,
                "round {round}: no winner, no 503 and the hash unchanged: a request was lost"
            );
            lost_answers += 1;
        }
        unavailable_total += unavailable;
        // Fails at the round itself, so even a run cut short proves its rounds.
        tally.count(round, winners.len());
        if (round + 1) % 25 == 0 {
            eprintln!(
                "race: lambda progress {} unavailable_503={unavailable_total} \
                 retried_after_landing={lost_answers}",
                tally.summary(n)
            );
        }
        if let [winner] = winners.as_slice() {
            let stored = stack.stored_hash(&uid).await;
            assert!(
                PasswordHasher::owasp()
                    .verify(SecretString::from(winner.clone()), stored)
                    .await
                    .expect("verify"),
                "round {round}: the stored hash is the winner's"
            );
        }
        // The notice for this round's change, so the outbox stays short.
        stack.deliver_outbox().await;
    }
    eprintln!(
        "race: lambda {} unavailable_503={unavailable_total} \
         retried_after_landing={lost_answers}",
        tally.summary(n)
    );
}

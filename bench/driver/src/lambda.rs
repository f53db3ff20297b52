//! P4 (cold start) and P6 (peak RSS) of the Lambda binaries under cargo-lambda's runtime
//! emulator (`cargo lambda watch --only-lambda-apis`), DynamoDB on moto, SES v2 on
//! aws-ses-v2-local.
//!
//! `--only-lambda-apis` makes the emulator serve the Runtime API and the invoke endpoints
//! without starting functions itself, so this driver starts each binary as a fresh
//! process pointed at `http://127.0.0.1:<port>/.rt/<function>`. That lets it time exactly
//! one thing, the same way for every binary:
//!
//!   t0: immediately before `fork/exec` of the binary — the invocation is already queued
//!       in the emulator (sent 100 ms earlier; the emulator holds it until a runtime polls);
//!   t1: the driver has the complete invoke response from the emulator.
//!
//! So t1 − t0 is process start, `main`'s start-up (configuration, SDK clients, the
//! runtime's first poll), the handler, and the response's trip back through the emulator.
//! No cargo build or cargo freshness check is inside the interval.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::DynamoStore;
use pwreset_core::adapters::dynamodb::item::OUTBOX_PREFIX;
use pwreset_core::adapters::dynamodb::table::create_tables;
use pwreset_core::domain::{EmailAddress, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::ports::UserRepository as _;
use secrecy::SecretString;
use serde_json::{Value, json};

use pwreset_testkit::aws::{Sdk, unique_name};
use pwreset_testkit::mail::link_parts;
use pwreset_testkit::outbox::{self, OutboxStream};
use pwreset_testkit::process::Process;
use pwreset_testkit::ses_store;

use crate::stats::{median, ms, quantile, vm_hwm_kib};

const TOKEN_KEYS: &str = "YmVuY2gtbW9kZS10ZXN0LWtleS0zMi1ieXRlcy1sb25nLCBvaw==";
const HELLO: &str = "hello-lambda";
/// `hello-lambda` plus one DynamoDB `GetItem` through the functions' own client.
const HELLO_DYNAMODB: &str = "hello-lambda-dynamodb";
const FUNCTIONS: [&str; 3] = ["request-reset", "confirm-reset", "send-reset-email"];

/// Where the Lambda binaries are and the emulators they run under (`lambda`, `cost`).
#[derive(Debug, clap::Args)]
pub struct Setup {
    /// Directory holding request-reset, confirm-reset, send-reset-email (and hello-lambda,
    /// hello-lambda-dynamodb).
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// Port of `cargo lambda watch --only-lambda-apis -A 127.0.0.1`.
    #[arg(long)]
    pub watch_port: u16,
    /// moto's URL (DynamoDB, Secrets Manager).
    #[arg(long)]
    pub moto: String,
    /// aws-ses-v2-local's URL (SES v2).
    #[arg(long)]
    pub ses: String,
}

/// How a case invokes its function.
#[derive(Debug, Clone)]
enum Invoke {
    /// A function URL request through `/lambda-url/<function><path>`.
    Http {
        path: &'static str,
        body: Value,
        status: u16,
    },
    /// A raw event through `/2015-03-31/functions/<function>/invocations`.
    Raw { event: Value, expect: Value },
}

#[derive(Debug, Clone)]
struct Case {
    label: String,
    function: &'static str,
    invoke: Invoke,
    /// The token keys from the Secrets Manager secret (`TOKEN_KEYS_SECRET_ID`, as the
    /// template deploys it) instead of `TOKEN_KEYS`.
    keys_from_secret: bool,
    /// The case calls AWS before it answers: compared with `hello-lambda-dynamodb` too.
    calls_aws: bool,
}

pub(crate) struct Bench {
    pub(crate) setup: Setup,
    env: Vec<(String, String)>,
    /// What replaces `TOKEN_KEYS` for a case whose keys come from the secret.
    secret_env: Vec<(String, String)>,
    http: reqwest::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    stream: OutboxStream,
    pub(crate) log_dir: PathBuf,
    /// Set by the cost run (P7): what each invocation spends.
    pub(crate) meter: Option<crate::cost::Meter>,
}

/// SDK clients configured as the functions configure theirs.
fn sdk() -> Sdk {
    Sdk::new(
        adapters::http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

impl Bench {
    pub(crate) fn spawn(&self, function: &str) -> anyhow::Result<Process> {
        self.spawn_with(function, false)
    }

    fn spawn_with(&self, function: &str, keys_from_secret: bool) -> anyhow::Result<Process> {
        let log = self.log_dir.join(format!("pwreset-bench-{function}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let runtime_api = format!("http://127.0.0.1:{}/.rt/{function}", self.setup.watch_port);
        let mut command = Command::new(self.setup.bin_dir.join(function));
        let env = self
            .env
            .iter()
            .filter(|(k, _)| !(keys_from_secret && k == "TOKEN_KEYS"))
            .chain(self.secret_env.iter().filter(|_| keys_from_secret));
        command
            .envs(env.map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Process::spawn(&mut command)
            .with_context(|| format!("starting {function} (built? see scripts/bench)"))
    }

    /// Sends one invocation and checks the answer; returns the response body. With a
    /// meter set, what the invocation spent is recorded under the function's name.
    async fn invoke(&self, function: &str, invoke: &Invoke) -> anyhow::Result<String> {
        let Some(meter) = &self.meter else {
            return self.invoke_unmetered(function, invoke).await;
        };
        let reading = meter.before(function);
        let answer = self.invoke_unmetered(function, invoke).await?;
        meter.after(function, reading);
        Ok(answer)
    }

    async fn invoke_unmetered(&self, function: &str, invoke: &Invoke) -> anyhow::Result<String> {
        let port = self.setup.watch_port;
        match invoke {
            Invoke::Http { path, body, status } => {
                let response = self
                    .http
                    .post(format!(
                        "http://127.0.0.1:{port}/lambda-url/{function}{path}"
                    ))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let got = response.status().as_u16();
                let text = response.text().await?;
                if got != *status {
                    bail!("{function} {path}: want {status}, got {got} {text}");
                }
                Ok(text)
            }
            Invoke::Raw { event, expect } => {
                let response = self
                    .http
                    .post(format!(
                        "http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations"
                    ))
                    .json(event)
                    .send()
                    .await?;
                let text = response.text().await?;
                let got: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if &got != expect {
                    bail!("{function}: want {expect}, got {text}");
                }
                Ok(text)
            }
        }
    }

    /// One cold start: queue the invocation, start a fresh process, time to the answer.
    async fn cold_start(&self, case: &Case) -> anyhow::Result<f64> {
        let this: &Self = self;
        let request = this.invoke(case.function, &case.invoke);
        let timed = async {
            // Let the invocation reach the emulator's queue before the process exists.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let start = Instant::now();
            let process = this.spawn_with(case.function, case.keys_from_secret)?;
            Ok::<_, anyhow::Error>((start, process))
        };
        let (answer, started) = tokio::join!(request, timed);
        let end = Instant::now();
        let (start, process) = started?;
        answer.with_context(|| case.label.clone())?;
        drop(process);
        Ok(ms(end - start))
    }

    /// Stream records for outbox items not yet delivered, as DynamoDB Streams sends them.
    async fn pending_stream_event(&mut self) -> anyhow::Result<(Value, usize)> {
        let items = outbox::items_with_prefix(&self.dynamodb, &self.table, OUTBOX_PREFIX).await?;
        let (records, _) = self.stream.new_records(&items);
        let count = records.len();
        Ok((json!({ "Records": records }), count))
    }

    /// Marks every outbox item present now as delivered (earlier cases' items).
    async fn skip_pending(&mut self) -> anyhow::Result<()> {
        self.pending_stream_event().await.map(|_| ())
    }

    async fn deliver(&mut self) -> anyhow::Result<usize> {
        let (event, count) = self.pending_stream_event().await?;
        self.invoke(
            "send-reset-email",
            &Invoke::Raw {
                event,
                expect: json!({"batchItemFailures": []}),
            },
        )
        .await?;
        Ok(count)
    }

    async fn mail_to(&self, to: &str) -> anyhow::Result<Vec<Value>> {
        Ok(ses_store::mail_to(&self.http, &self.setup.ses, to).await?)
    }

    async fn latest_link(&self, to: &str) -> anyhow::Result<(String, String)> {
        let mail = self.mail_to(to).await?;
        mail.iter()
            .rev()
            .find_map(|m| m["body"]["text"].as_str().and_then(link_parts))
            .context("a reset link in the mail")
    }
}

impl Bench {
    /// A table on moto, the token keys also in a secret there, and the functions'
    /// environment; `overrides` replace (or add to) that environment, an empty value
    /// removes the variable.
    pub(crate) async fn start(setup: Setup, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dynamodb = sdk().dynamodb(&setup.moto);
        let deadline = Instant::now() + Duration::from_secs(90);
        while let Err(err) = dynamodb.list_tables().limit(1).send().await {
            if Instant::now() > deadline {
                bail!("moto's DynamoDB never answered: {err:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let table = unique_name("bench");
        create_tables(&dynamodb, &table)
            .await
            .map_err(|e| anyhow::anyhow!("create table: {e}"))?;
        let mut env: Vec<(String, String)> = [
            ("TABLE_NAME", table.as_str()),
            ("TOKEN_KEYS", TOKEN_KEYS),
            (
                "RESET_LINK_TEMPLATE",
                "https://app.example.com/reset#uid={uid}&token={token}",
            ),
            ("MAIL_FROM", "no-reply@example.com"),
            ("RESET_LIMIT_PER_IP", "off"),
            ("RESET_LIMIT_PER_EMAIL", "off"),
            ("AWS_ENDPOINT_URL_DYNAMODB", setup.moto.as_str()),
            ("AWS_ENDPOINT_URL_SESV2", setup.ses.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("RUST_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (key, value) in overrides {
            env.retain(|(k, _)| k != key);
            if !value.is_empty() {
                env.push(((*key).to_owned(), (*value).to_owned()));
            }
        }
        let secret = pwreset_testkit::aws::secret_holding(
            &sdk(),
            &setup.moto,
            "bench-token-keys",
            TOKEN_KEYS,
        )
        .await;
        let secret_env = vec![
            ("TOKEN_KEYS_SECRET_ID".to_owned(), secret),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
                setup.moto.clone(),
            ),
        ];
        Ok(Bench {
            env,
            secret_env,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()?,
            dynamodb,
            table,
            stream: OutboxStream::default(),
            log_dir: std::env::temp_dir(),
            meter: None,
            setup,
        })
    }

    /// A new active user with an argon2id hash, straight into the table; its address and uid.
    pub(crate) async fn seed_user(&self) -> anyhow::Result<(String, UserId)> {
        let store = DynamoStore::new(self.dynamodb.clone(), self.table.clone());
        let address = format!("{}@example.org", unique_name("alice"));
        let uid = UserId::generate();
        let user = User {
            uid: uid.clone(),
            email: EmailAddress::parse(&address).map_err(|e| anyhow::anyhow!("{e}"))?,
            password_hash: Some(
                PasswordHasher::owasp()
                    .hash(SecretString::from("the old password 1".to_owned()))
                    .await
                    .map_err(|e| anyhow::anyhow!("hash: {e}"))?,
            ),
            active: true,
            credential_version: 0,
            locale: None,
        };
        store
            .insert(&user)
            .await
            .map_err(|e| anyhow::anyhow!("insert user: {e}"))?;
        Ok((address, uid))
    }

    /// One reset as a person goes through it, each step on the function that serves it:
    /// request-reset, the mail (send-reset-email, one stream record), verify and confirm
    /// (confirm-reset), the "password changed" notice (send-reset-email).
    pub(crate) async fn reset_flow(&mut self, address: &str, uid: &UserId) -> anyhow::Result<()> {
        self.invoke("request-reset", &request(address)).await?;
        if self.deliver().await? != 1 {
            bail!("expected one outbox item for the request");
        }
        let (link_uid, token) = self.latest_link(address).await?;
        if link_uid != uid.as_str() {
            bail!("the link is for {link_uid}, not {uid}");
        }
        self.invoke(
            "confirm-reset",
            &Invoke::Http {
                path: "/password-reset/verify",
                body: json!({"uid": link_uid, "token": token}),
                status: 200,
            },
        )
        .await?;
        self.invoke(
            "confirm-reset",
            &Invoke::Http {
                path: "/password-reset/confirm",
                body: json!({"uid": link_uid, "token": token, "new_password": "violin kettle mango quartz"}),
                status: 200,
            },
        )
        .await?;
        if self.deliver().await? != 1 {
            bail!("expected one 'password changed' notice in the outbox");
        }
        Ok(())
    }
}

/// `POST /password-reset` for `email`, answered 202.
fn request(email: &str) -> Invoke {
    Invoke::Http {
        path: "/password-reset",
        body: json!({ "email": email }),
        status: 202,
    }
}

pub async fn run(setup: Setup, reps: usize) -> anyhow::Result<()> {
    let mut bench = Bench::start(setup, &[]).await?;
    let (address, uid) = bench.seed_user().await?;

    // P6: one long-lived process per function serves a full flow; then read VmHWM.
    let processes: Vec<(&str, Process)> = FUNCTIONS
        .iter()
        .chain([HELLO].iter())
        .map(|f| bench.spawn(f).map(|p| (*f, p)))
        .collect::<anyhow::Result<_>>()?;
    bench
        .invoke(
            HELLO,
            &Invoke::Raw {
                event: json!({}),
                expect: json!({"hello": "world"}),
            },
        )
        .await?;
    // A request for a missing address too: its outbox item goes through the mail
    // function (which finds no user) before the flow's own.
    bench
        .invoke("request-reset", &request("nobody-here@example.org"))
        .await?;
    if bench.deliver().await? != 1 {
        bail!("expected one outbox item for the missing address");
    }
    bench.reset_flow(&address, &uid).await?;
    let mut peaks = serde_json::Map::new();
    println!(
        "P6 peak RSS (VmHWM) after a missing-address request and its delivery, then a full flow (request, mail, verify, confirm, notice)"
    );
    for (function, process) in &processes {
        let kib = vm_hwm_kib(process.pid());
        println!(
            "  {function:18} {} KiB",
            kib.map_or("?".into(), |k| k.to_string())
        );
        peaks.insert((*function).to_owned(), json!(kib));
    }
    // A fresh token (the flow's was used) for the verify cold-start case.
    bench.invoke("request-reset", &request(&address)).await?;
    bench.deliver().await?;
    let (link_uid, token) = bench.latest_link(&address).await?;
    drop(processes);

    // P4: cold starts, every case once per repetition, the order rotating each repetition.
    let cases = [
        Case {
            label: "hello-lambda (echo)".into(),
            function: HELLO,
            invoke: Invoke::Raw {
                event: json!({"n": 1}),
                expect: json!({"hello": "world"}),
            },
            keys_from_secret: false,
            calls_aws: false,
        },
        Case {
            label: "hello-lambda-dynamodb (one GetItem)".into(),
            function: HELLO_DYNAMODB,
            invoke: Invoke::Raw {
                event: json!({"n": 1}),
                expect: json!({"hello": "world", "found": false}),
            },
            keys_from_secret: false,
            calls_aws: true,
        },
        Case {
            label: "request-reset, 400 invalid_request (no I/O)".into(),
            function: "request-reset",
            invoke: Invoke::Http {
                path: "/password-reset",
                body: json!({}),
                status: 400,
            },
            keys_from_secret: false,
            calls_aws: false,
        },
        Case {
            label: "confirm-reset, 400 invalid_request (no I/O)".into(),
            function: "confirm-reset",
            invoke: Invoke::Http {
                path: "/password-reset/verify",
                body: json!({}),
                status: 400,
            },
            keys_from_secret: false,
            calls_aws: false,
        },
        Case {
            label: "send-reset-email, empty batch (no I/O)".into(),
            function: "send-reset-email",
            invoke: Invoke::Raw {
                event: json!({"Records": []}),
                expect: json!({"batchItemFailures": []}),
            },
            keys_from_secret: false,
            calls_aws: false,
        },
        Case {
            label: "request-reset, 202 missing address (DynamoDB writes)".into(),
            function: "request-reset",
            invoke: request("cold-start-nobody@example.org"),
            keys_from_secret: false,
            calls_aws: true,
        },
        Case {
            label: "confirm-reset, 200 verify (DynamoDB read)".into(),
            function: "confirm-reset",
            invoke: Invoke::Http {
                path: "/password-reset/verify",
                body: json!({"uid": link_uid, "token": token}),
                status: 200,
            },
            keys_from_secret: false,
            calls_aws: true,
        },
        Case {
            label: "confirm-reset, 400, keys from Secrets Manager".into(),
            function: "confirm-reset",
            invoke: Invoke::Http {
                path: "/password-reset/verify",
                body: json!({}),
                status: 400,
            },
            keys_from_secret: true,
            calls_aws: true,
        },
        Case {
            label: "confirm-reset, 200 verify, keys from Secrets Manager".into(),
            function: "confirm-reset",
            invoke: Invoke::Http {
                path: "/password-reset/verify",
                body: json!({"uid": link_uid, "token": token}),
                status: 200,
            },
            keys_from_secret: true,
            calls_aws: true,
        },
    ];
    // One untimed start of each binary first: the page cache holds every binary alike.
    let mut warmed = Vec::new();
    for case in &cases {
        if warmed.contains(&case.function) {
            continue;
        }
        warmed.push(case.function);
        bench.cold_start(case).await?;
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for rep in 0..reps {
        for k in 0..cases.len() {
            let index = (k + rep) % cases.len();
            samples[index].push(bench.cold_start(&cases[index]).await?);
        }
    }
    // The missing-address requests left outbox items; nothing needs delivering.
    bench.skip_pending().await?;
    let median_of = |function: &str| {
        cases
            .iter()
            .position(|case| case.function == function)
            .map(|index| median(&samples[index]))
            .context("a yardstick case")
    };
    let hello = median_of(HELLO)?;
    let hello_dynamodb = median_of(HELLO_DYNAMODB)?;
    println!(
        "P4 cold start, process start -> first response, under cargo lambda watch --only-lambda-apis, {reps} reps"
    );
    let mut starts = Vec::new();
    for (case, times) in cases.iter().zip(&samples) {
        let m = median(times);
        let to_dynamodb = case.calls_aws.then(|| m / hello_dynamodb);
        println!(
            "  {:52} median {m:7.2} ms  p90 {:7.2} ms  ratio to hello {:.2}{}",
            case.label,
            quantile(times, 0.9),
            m / hello,
            to_dynamodb.map_or(String::new(), |r| format!(", to hello + GetItem {r:.2}"))
        );
        starts.push(json!({"case": case.label, "function": case.function,
            "median_ms": m, "ratio_to_hello": m / hello,
            "ratio_to_hello_dynamodb": to_dynamodb, "samples_ms": times}));
    }
    println!(
        "RESULT {}",
        json!({"p4_cold_start": starts, "p6_lambda_vm_hwm_kib": peaks})
    );
    Ok(())
}

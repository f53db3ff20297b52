//! Emulators for the adapter tests: `moto_server` (DynamoDB, DynamoDB Streams, SES v2) and
//! `aws-ses-v2-local` (SES v2 with a readable mail store), each started once per test
//! binary on a free loopback port, and SDK clients pointed at them.
//!
//! The servers live in statics (every `#[tokio::test]` has its own runtime, so only the
//! servers are shared, never a client). Statics are never dropped, so each server runs
//! under a small watchdog that kills it by PID as soon as the test process is gone;
//! [`Emulator`]'s `Drop` kills it too when one is owned directly.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod outbox_stream;
pub mod ses_store;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use pwreset_core::adapters::{retry_config, timeout_config};
use rand::Rng as _;

pub const REGION: &str = "us-east-1";

/// A server we started, killed (with its watchdog) on drop.
#[derive(Debug)]
pub struct Emulator {
    pub name: &'static str,
    pub url: String,
    pub port: u16,
    watchdog: Child,
    log: PathBuf,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The watchdog traps TERM and kills the server it started, by PID.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.watchdog.id().to_string())
            .status();
        let _ = self.watchdog.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits inside the workspace")
        .to_path_buf()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Where `scripts/install-tools` puts the emulators: `$PWRESET_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/pwreset`, else `~/.cache/pwreset` (outside the clone, so a fresh clone on
/// the same machine reuses them).
pub fn tool_cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PWRESET_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("pwreset")))
        .or_else(|| var("HOME").map(|home| home.join(".cache/pwreset")))
        .unwrap_or_else(|| workspace_root().join(".cache"))
}

/// `$ENV`, else the tool cache, else `PATH`; panics with the fix otherwise.
fn find_tool(env: &str, cached: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cached = tool_cache_dir().join(cached);
    if cached.is_file() {
        return cached;
    }
    on_path(name).unwrap_or_else(|| {
        panic!(
            "{name} not found (set {env}, or run scripts/install-tools to install it into the tool cache)"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback port nothing listens on (connections are refused at once).
pub fn closed_port() -> u16 {
    free_port()
}

/// A loopback endpoint that accepts connections and never answers (a hung service).
pub fn silent_endpoint() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback listener");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs `program args…` under a bash watchdog that kills it when this test process (or the
/// watchdog itself, on TERM) goes away.
const WATCHDOG: &str = r#"
parent=$1; shift
"$@" &
child=$!
trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.3; done
kill "$child" 2>/dev/null
wait "$child" 2>/dev/null
"#;

fn start(name: &'static str, program: &Path, args: impl Fn(u16) -> Vec<String>) -> Emulator {
    let mut last_log = String::new();
    // A port found free can be taken before the server binds it: try a few.
    for _ in 0..3 {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("pwreset-{name}-{port}.log"));
        let out = File::create(&log).expect("emulator log file");
        let err = out.try_clone().expect("emulator log file");
        let mut watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({}): {e}", program.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Emulator {
                    name,
                    url: format!("http://127.0.0.1:{port}"),
                    port,
                    watchdog,
                    log,
                };
            }
            if Instant::now() > deadline || watchdog.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").arg(watchdog.id().to_string()).status();
        let _ = watchdog.wait();
        last_log = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!("{name} did not start listening; its last output:\n{last_log}");
}

/// moto (5.2) does not isolate concurrent transactions: a cancelled TransactWriteItems
/// restores a snapshot of the whole table taken before it ran, wiping whatever a concurrent
/// transaction committed meanwhile (seen here: two winners of one conditional update under
/// CPU load). DynamoDB serialises conflicting transactions, so we make moto do the same:
/// its WSGI app runs under one lock (requests are still read and written concurrently).
///
/// moto also keeps every model object it ever created in a list for its dashboard, and
/// that snapshot is a deep copy of the table: each cancelled transaction leaked a whole
/// table, so a 1,000-round race grew moto past 24 GB until the OOM killer stopped it.
/// Nothing we use reads those lists (only the dashboard and S3), so they are emptied after
/// every request.
const SERIALISED_MOTO: &str = r#"
import sys, threading
import moto.server as server
from moto.core.model_instances import reset_model_data
_run_simple = server.run_simple
def run_simple(host, port, app, **kwargs):
    lock = threading.Lock()
    def serialised(environ, start_response):
        with lock:
            try:
                return list(app(environ, start_response))
            finally:
                reset_model_data()
    return _run_simple(host, port, serialised, **kwargs)
server.run_simple = run_simple
server.main(sys.argv[1:])
"#;

/// The interpreter named by a Python script's `#!` line (pip's entry points have one).
fn python_of(script: &Path) -> Option<Vec<String>> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
    let parts: Vec<String> = first.split_whitespace().map(str::to_owned).collect();
    (parts.iter().any(|p| p.contains("python"))).then_some(parts)
}

/// One `moto_server` per test binary (serialised, see [`SERIALISED_MOTO`], when it is a
/// Python entry point; as it is otherwise).
pub fn moto() -> &'static Emulator {
    static MOTO: OnceLock<Emulator> = OnceLock::new();
    MOTO.get_or_init(|| {
        let bin = find_tool("MOTO_SERVER_BIN", "venv/bin/moto_server", "moto_server");
        let address = |port: u16| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        };
        match python_of(&bin) {
            Some(python) => {
                let (program, prefix) = python.split_first().expect("a #! line names a program");
                let prefix = prefix.to_vec();
                start("moto", Path::new(program), move |port| {
                    let mut args = prefix.clone();
                    args.extend(["-c".to_owned(), SERIALISED_MOTO.to_owned()]);
                    args.extend(address(port));
                    args
                })
            }
            None => start("moto", &bin, address),
        }
    })
}

/// One `aws-ses-v2-local` per test binary.
pub fn ses_local() -> &'static Emulator {
    static SES: OnceLock<Emulator> = OnceLock::new();
    SES.get_or_init(|| {
        let bin = find_tool(
            "AWS_SES_V2_LOCAL_BIN",
            "node/node_modules/.bin/aws-ses-v2-local",
            "aws-ses-v2-local",
        );
        start("aws-ses-v2-local", &bin, |port| {
            vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
            ]
        })
    })
}

/// One `dynalite` per test binary: a DynamoDB without transactions or TTL.
pub fn dynalite() -> &'static Emulator {
    static DYNALITE: OnceLock<Emulator> = OnceLock::new();
    DYNALITE.get_or_init(|| {
        let bin = find_tool(
            "DYNALITE_BIN",
            "node/node_modules/.bin/dynalite",
            "dynalite",
        );
        start("dynalite", &bin, |port| {
            vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
            ]
        })
    })
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "pwreset-tests")
}

/// A DynamoDB client for `endpoint`, configured in code (never from the environment):
/// dummy credentials, us-east-1, the adapters' timeouts and retries.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .timeout_config(timeout_config())
        .retry_config(retry_config())
        .http_client(pwreset_core::adapters::http_client())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub fn streams_client(endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .timeout_config(timeout_config())
        .retry_config(retry_config())
        .http_client(pwreset_core::adapters::http_client())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

pub fn sesv2_client(endpoint: &str) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .timeout_config(timeout_config())
        .retry_config(retry_config())
        .http_client(pwreset_core::adapters::http_client())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// A table name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::rng().random::<u64>())
}

/// A new table (named `<prefix>-<random>`) created by the adapter on the DynamoDB behind
/// `client`, once that DynamoDB answers.
pub async fn fresh_table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    warm_up_dynamodb(client).await;
    let table = unique_name(prefix);
    pwreset_core::adapters::dynamodb::create_table(client, &table)
        .await
        .expect("table created");
    table
}

/// Waits until moto answers DynamoDB calls: its first request imports the backend, which
/// on a loaded 2-core machine can take longer than the adapters' 5 s operation timeout.
pub async fn warm_up_dynamodb(client: &aws_sdk_dynamodb::Client) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match client.list_tables().limit(1).send().await {
            Ok(_) => return,
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for moto's DynamoDB: {err:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("moto's DynamoDB never answered: {err:?}"),
        }
    }
}

//! The emulators: `moto_server` (DynamoDB, DynamoDB Streams, SES v2), `aws-ses-v2-local`
//! (SES v2 with a readable mail store) and `dynalite` (a DynamoDB without transactions or
//! TTL), each started once per test binary on a free loopback port.
//!
//! The servers live in statics (every `#[tokio::test]` has its own runtime, so only the
//! servers are shared, never a client). Statics are never dropped, so each server runs
//! under a small watchdog that kills it by PID as soon as the test process is gone;
//! [`Emulator`]'s `Drop` kills it too when one is owned directly.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::net::{free_port, wait_until_listening};
use crate::paths::find_tool;

/// A server we started, killed (with its watchdog) on drop.
#[derive(Debug)]
pub struct Emulator {
    pub name: &'static str,
    pub url: String,
    pub port: u16,
    /// Where its output goes.
    pub log: PathBuf,
    watchdog: Child,
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
        let listening = wait_until_listening(port, Duration::from_secs(30), || {
            watchdog.try_wait().ok().flatten().is_some()
        });
        if listening {
            return Emulator {
                name,
                url: format!("http://127.0.0.1:{port}"),
                port,
                watchdog,
                log,
            };
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

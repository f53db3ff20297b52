//! Processes we start: stopped by PID when dropped, their output captured, and servers
//! that say where they listen (`… listening on <url>`, as `pwreset serve` prints).

use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A process we started, killed by PID (and reaped) when dropped. One started with
/// [`Process::spawn_group`] leads a process group of its own, and the whole group is
/// stopped: for tools that start processes themselves (`cargo lambda watch`).
#[derive(Debug)]
pub struct Process {
    child: Child,
    group: bool,
}

impl Process {
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        Ok(Self {
            child: command.spawn()?,
            group: false,
        })
    }

    /// Spawns `command` as the leader of a new process group.
    pub fn spawn_group(command: &mut Command) -> std::io::Result<Self> {
        Ok(Self {
            child: command.process_group(0).spawn()?,
            group: true,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The child itself, e.g. to take its piped streams.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.group {
            // TERM first, so the group's leader can stop what it started; then KILL.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lines a process printed on one stream, read by a thread of their own so the process
/// never blocks on a full pipe.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    /// Reads `stream` to its end, keeping each line while `keep()` says so (and dropping
    /// it otherwise).
    fn start(stream: impl Read + Send + 'static, keep: impl Fn() -> bool + Send + 'static) -> Self {
        let captured = Self::default();
        let into = captured.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if keep() {
                    let mut buffer = lock(&into);
                    buffer.push_str(&line);
                    buffer.push('\n');
                }
            }
        });
        captured
    }

    /// Everything kept so far.
    pub fn text(&self) -> String {
        lock(&self.0).clone()
    }
}

/// How much of a server's output to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every line, for tests that read what the server printed.
    Everything,
    /// Lines up to the `listening on` one; later lines are read and dropped (a load
    /// benchmark, where a growing buffer would cost the driver memory and time).
    UntilListening,
}

const LISTENING: &str = "listening on ";

/// A server that prints `… listening on <url>` on stdout once it accepts connections (so it
/// can bind port 0 and say which port it got).
#[derive(Debug)]
pub struct Server {
    process: Process,
    pub base_url: String,
    stdout: Captured,
    stderr: Captured,
}

impl Server {
    /// Spawns `command` with stdin closed and stdout and stderr captured, and waits up to
    /// `limit` for its `listening on` line. If it exits first or never says it listens, it
    /// is stopped and everything it printed is returned.
    pub fn start(command: &mut Command, keep: Keep, limit: Duration) -> Result<Self, String> {
        let spawned = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = Process::spawn(spawned).map_err(|e| format!("spawn failed: {e}"))?;
        let listening = Arc::new(AtomicBool::new(false));
        let keeping = |listening: Arc<AtomicBool>| {
            move || keep == Keep::Everything || !listening.load(Ordering::Relaxed)
        };
        let child = process.child_mut();
        let stdout = Captured::start(
            child.stdout.take().expect("stdout is piped"),
            keeping(listening.clone()),
        );
        let stderr = Captured::start(
            child.stderr.take().expect("stderr is piped"),
            keeping(listening.clone()),
        );
        let deadline = Instant::now() + limit;
        loop {
            let printed = stdout.text();
            if let Some(rest) = printed.split(LISTENING).nth(1) {
                listening.store(true, Ordering::Relaxed);
                let base_url = rest.lines().next().unwrap_or_default().trim().to_owned();
                return Ok(Self {
                    process,
                    base_url,
                    stdout,
                    stderr,
                });
            }
            if let Some(status) = process.exited() {
                // Let the capture threads read what is left in the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "exited with {status}\nstdout:\n{}\nstderr:\n{}",
                    stdout.text(),
                    stderr.text()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "never listened\nstdout:\n{printed}\nstderr:\n{}",
                    stderr.text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `path` on the server, e.g. `/password-reset`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// What it printed on stdout (so far, or up to `listening on` under
    /// [`Keep::UntilListening`]).
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }
}

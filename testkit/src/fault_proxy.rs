//! A fault-injecting HTTP/1.1 proxy on loopback, put between the real AWS SDK and an
//! emulator (moto, aws-ses-v2-local). A test switches its behaviour at run time: pass
//! through, answer an AWS-style error (5xx, throttling), hang until the client gives up, or
//! close the connection without an answer — for every request, or only for those whose
//! `X-Amz-Target` (DynamoDB) or path (SES v2's REST routes) matches.
//!
//! It understands just enough HTTP/1.1 for the SDK's requests (a head and a
//! `Content-Length` body). Each forwarded request gets a fresh upstream connection
//! (`Connection: close`); the client's connection stays open when the answer allows it.
//! Its tasks run on the runtime of the test that started it and end with it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it to the upstream and relay the answer.
    Pass,
    /// Answer `status` with an AWS error of this code; the upstream never sees the request.
    Error { status: u16, code: &'static str },
    /// Never answer: hold the request until the client closes the connection (a hung
    /// service, or a process that died while its call was in flight).
    Hang,
    /// Close the connection without answering.
    Drop,
}

impl Fault {
    pub const INTERNAL_ERROR: Self = Self::Error {
        status: 500,
        code: "InternalServerError",
    };
    pub const SERVICE_UNAVAILABLE: Self = Self::Error {
        status: 503,
        code: "ServiceUnavailable",
    };
    pub const THROTTLING: Self = Self::Error {
        status: 400,
        code: "ThrottlingException",
    };
    pub const THROUGHPUT_EXCEEDED: Self = Self::Error {
        status: 400,
        code: "ProvisionedThroughputExceededException",
    };
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None`: every request; otherwise an `X-Amz-Target` equal to it or a path starting
    /// with it.
    matching: Option<String>,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    forwarded: AtomicUsize,
    faulted: AtomicUsize,
    held: AtomicUsize,
    abandoned: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub url: String,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`),
    /// passing everything through until told otherwise.
    pub async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the upstream is http://<ip>:<port>");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve_client(client, upstream, Arc::clone(&shared)));
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
            accept,
        }
    }

    /// Applies `fault` to every request.
    pub fn set(&self, fault: Fault) {
        *lock(&self.state.rules) = vec![Rule {
            matching: None,
            fault,
        }];
    }

    /// Applies `fault` only to requests whose `X-Amz-Target` is `target` (e.g.
    /// `DynamoDB_20120810.TransactWriteItems`) or whose path starts with it; others pass.
    pub fn set_for(&self, target: &str, fault: Fault) {
        *lock(&self.state.rules) = vec![Rule {
            matching: Some(target.to_owned()),
            fault,
        }];
    }

    /// Back to passing everything through (requests already held stay held).
    pub fn clear(&self) {
        lock(&self.state.rules).clear();
    }

    /// Requests relayed to the upstream.
    pub fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// Requests answered with a fault, dropped, or held.
    pub fn faulted(&self) -> usize {
        self.state.faulted.load(Ordering::SeqCst)
    }

    /// Requests held right now.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Held requests whose client went away before any answer (they never reached the
    /// upstream).
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until `condition` holds; panics naming `what` otherwise.
    pub async fn wait_until(&self, what: &str, limit: Duration, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "proxy: {what} did not happen within {limit:?} (forwarded {}, faulted {}, held {}, abandoned {})",
                self.forwarded(),
                self.faulted(),
                self.held(),
                self.abandoned()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn fault_for(state: &State, request: &Head) -> Fault {
        lock(&state.rules)
            .iter()
            .find(|rule| match &rule.matching {
                None => true,
                Some(want) => {
                    request.target.as_deref() == Some(want.as_str())
                        || request.path.starts_with(want)
                }
            })
            .map_or(Fault::Pass, |rule| rule.fault)
    }
}

/// A request or response head: its lines (without CRLF) and what we need from them.
#[derive(Debug, Default)]
struct Head {
    lines: Vec<String>,
    path: String,
    target: Option<String>,
    content_length: Option<usize>,
    chunked: bool,
}

fn header<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
}

/// Reads a head; `None` at a clean end of the stream (or a broken one).
async fn read_head<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Head> {
    let mut head = Head::default();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).await.ok()?;
        if read == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if head.lines.is_empty() {
                continue;
            }
            break;
        }
        if head.lines.is_empty() {
            head.path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
        } else if let Some(value) = header(&line, "content-length") {
            head.content_length = value.parse().ok();
        } else if let Some(value) = header(&line, "x-amz-target") {
            head.target = Some(value.to_owned());
        } else if let Some(value) = header(&line, "transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        }
        head.lines.push(line);
    }
    Some(head)
}

/// The head again, without hop-by-hop `Connection` headers, plus `extra` lines.
fn render(head: &Head, first_line: Option<String>, extra: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (index, line) in head.lines.iter().enumerate() {
        if index == 0 {
            out.push_str(first_line.as_deref().unwrap_or(line));
        } else if header(line, "connection").is_some() || header(line, "keep-alive").is_some() {
            continue;
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    for line in extra {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn error_response(status: u16, code: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by the test's fault proxy"}}"#
    );
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: {code}\r\nx-amzn-RequestId: fault-proxy\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Relays one request on a fresh upstream connection; returns the response and whether
/// the client's connection can carry another request afterwards.
async fn forward(upstream: SocketAddr, head: &Head, body: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut connection = TcpStream::connect(upstream).await.ok()?;
    connection
        .write_all(&render(head, None, &["Connection: close"]))
        .await
        .ok()?;
    connection.write_all(body).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), connection.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut reader = BufReader::new(&raw[..split]);
    let response = read_head(&mut reader).await?;
    // A body delimited by the end of the connection cannot share it with another request.
    let keep_alive = response.content_length.is_some() || response.chunked;
    let status_line = response.lines.first()?.replacen("HTTP/1.0", "HTTP/1.1", 1);
    let extra: &[&str] = if keep_alive {
        &[]
    } else {
        &["Connection: close"]
    };
    let mut out = render(&response, Some(status_line), extra);
    out.extend_from_slice(&raw[split..]);
    Some((out, keep_alive))
}

async fn serve_client(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let (read_half, mut write_half) = client.into_split();
    let mut reader = BufReader::new(read_half);
    loop {
        let Some(head) = read_head(&mut reader).await else {
            return;
        };
        assert!(
            !head.chunked,
            "the fault proxy only reads Content-Length bodies"
        );
        let mut body = vec![0; head.content_length.unwrap_or(0)];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        match FaultProxy::fault_for(&state, &head) {
            Fault::Pass => {
                let Some((response, keep_alive)) = forward(upstream, &head, &body).await else {
                    return;
                };
                state.forwarded.fetch_add(1, Ordering::SeqCst);
                if write_half.write_all(&response).await.is_err() || !keep_alive {
                    return;
                }
            }
            Fault::Error { status, code } => {
                state.faulted.fetch_add(1, Ordering::SeqCst);
                if write_half
                    .write_all(&error_response(status, code))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Fault::Drop => {
                state.faulted.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Fault::Hang => {
                state.faulted.fetch_add(1, Ordering::SeqCst);
                state.held.fetch_add(1, Ordering::SeqCst);
                // The client sends nothing more until it has an answer: the next read ends
                // when it closes the connection (its timeout, or its process gone).
                let mut byte = [0u8; 1];
                while let Ok(1..) = reader.read(&mut byte).await {}
                state.held.fetch_sub(1, Ordering::SeqCst);
                state.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

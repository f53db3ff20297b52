//! `pwreset serve`: the whole API in one process over the same HTTP module the Lambda
//! functions use, with in-memory adapters, an in-process outbox worker and a console mailer.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, State};
use axum::response::Response as AxumResponse;
use http_body_util::BodyExt as _;
use pwreset_core::adapters::memory::{
    MemoryRateLimiter, MemoryStore, RecordingMailer, WorkerSettings, run_outbox_worker,
};
use pwreset_core::config::{Config, Mode};
use pwreset_core::domain::{EmailAddress, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http::{Api, Body, MAX_BODY_BYTES, PathMatch, PeerIp, Problem};
use pwreset_core::mail::MailComposer;
use pwreset_core::policy::PasswordPolicy;
use pwreset_core::ports::{
    InsertOutcome, MailError, Mailer, OutgoingMail, SystemClock, UserRepository,
};
use pwreset_core::service::{ConfirmReset, Deliverer, RequestReset};
use pwreset_core::token::TokenSigner;
use secrecy::SecretString;

pub const DEMO_EMAIL: &str = "demo@example.com";

/// Prints each message to stdout (the dev server's "outbox") and keeps it for `/_dev/mail`.
/// The token appears in the printed mail body and nowhere in the logs.
#[derive(Debug, Default)]
pub struct ConsoleMailer {
    pub recorder: RecordingMailer,
}

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        self.recorder.send(mail).await?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "----- mail to {} -----\nSubject: {}\n\n{}----- end of mail -----",
            mail.to, mail.subject, mail.text
        );
        let _ = out.flush();
        Ok(())
    }
}

/// Everything a request handler needs.
pub struct App {
    pub api: Api,
    pub users: Arc<dyn UserRepository>,
    /// The console mailer of `--backend memory`; with `--backend aws` mail goes through SES
    /// from the table's stream and `/_dev/mail` has nothing to show.
    pub mailer: Option<Arc<ConsoleMailer>>,
    pub hasher: PasswordHasher,
    /// The in-process outbox of `--backend memory` (its worker's progress shows at
    /// `/_dev/mail`); `None` with `--backend aws`.
    pub outbox: Option<Arc<MemoryStore>>,
    /// Whether `/_dev/*` answer at all (see [`crate::dev::DevRoutes`]).
    pub dev_routes: crate::dev::DevRoutes,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

pub async fn run(addr: SocketAddr, demo: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let base_url = format!("http://{bound}");
    let config = Config::from_env(&Mode::DevServer {
        base_url: base_url.clone(),
    })?;

    let store = Arc::new(MemoryStore::new());
    let mailer = Arc::new(ConsoleMailer::default());
    let clock = Arc::new(SystemClock);
    let hasher = PasswordHasher::owasp();
    let signer = TokenSigner::new(config.token_keys.clone(), config.token_lifetime_secs);
    let lifetime = signer.lifetime_secs();
    let request = RequestReset::new(
        store.clone(),
        Arc::new(MemoryRateLimiter::new()),
        clock.clone(),
        config.limits,
    );
    let confirm = ConfirmReset::new(
        store.clone(),
        clock.clone(),
        signer.clone(),
        PasswordPolicy::new(config.min_password_length),
        hasher.clone(),
    );
    let deliverer = Deliverer::new(
        store.clone(),
        mailer.clone(),
        clock,
        signer,
        MailComposer::new(
            config.product_name.clone(),
            config.link_template.clone(),
            lifetime,
        ),
    );
    let worker = tokio::spawn(run_outbox_worker(
        store.clone(),
        Arc::new(deliverer),
        WorkerSettings::default(),
    ));

    let app = Arc::new(App {
        api: Api::new(
            Some(Arc::new(request)),
            Some(Arc::new(confirm)),
            PathMatch::Exact,
        ),
        outbox: Some(store.clone()),
        users: store,
        mailer: Some(mailer),
        hasher,
        dev_routes: crate::dev::DevRoutes::decide(bound, true),
    });
    let result = serve(listener, app, &config, &base_url, demo).await;
    worker.abort();
    result
}

/// `--backend aws`: the same API over DynamoDB. Requests write outbox items to the table;
/// the mail goes out from its stream (the deployed `send-reset-email`).
#[cfg(feature = "aws")]
pub async fn run_aws(addr: SocketAddr, demo: bool, dev_routes: bool) -> anyhow::Result<()> {
    use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let base_url = format!("http://{bound}");
    let config = Config::from_env(&Mode::DevServer {
        base_url: base_url.clone(),
    })?;
    let table = pwreset_core::config::required("TABLE_NAME")?;
    let store = Arc::new(DynamoStore::new(dynamodb_client().await, table));
    let clock = Arc::new(SystemClock);
    let hasher = PasswordHasher::owasp();
    let signer = TokenSigner::new(config.token_keys.clone(), config.token_lifetime_secs);
    let request = RequestReset::new(store.clone(), store.clone(), clock.clone(), config.limits);
    let confirm = ConfirmReset::new(
        store.clone(),
        clock,
        signer,
        PasswordPolicy::new(config.min_password_length),
        hasher.clone(),
    );
    let app = Arc::new(App {
        api: Api::new(
            Some(Arc::new(request)),
            Some(Arc::new(confirm)),
            PathMatch::Exact,
        ),
        outbox: None,
        users: store,
        mailer: None,
        hasher,
        dev_routes: crate::dev::DevRoutes::decide(bound, dev_routes),
    });
    println!(
        "--backend aws: mail is sent from the table's stream by send-reset-email, not by this process"
    );
    serve(listener, app, &config, &base_url, demo).await
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    config: &Config,
    base_url: &str,
    demo: bool,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    if demo {
        seed_demo_user(&app).await?;
    }
    if config.token_keys_generated {
        tracing::info!(
            "TOKEN_KEYS not set: using a random key for this process (links die when it stops)"
        );
    }
    let dev_routes_note = app.dev_routes.describe();
    let router = axum::Router::new().fallback(dispatch).with_state(app);
    println!("pwreset serve listening on {base_url}");
    println!("{dev_routes_note}");
    if demo {
        println!(
            "demo user: {DEMO_EMAIL} (ask for a reset link at {base_url}/ and watch this console)"
        );
    }
    let _ = std::io::stdout().flush();
    tracing::info!(event = "listening", addr = %bound);

    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")?;

    tracing::info!(event = "stopped");
    Ok(())
}

async fn seed_demo_user(app: &App) -> anyhow::Result<()> {
    // A random password nobody knows: the demo is about resetting it.
    let password = SecretString::from(UserId::generate().as_str().to_owned());
    let user = User {
        uid: UserId::generate(),
        email: EmailAddress::parse(DEMO_EMAIL)?,
        password_hash: Some(app.hasher.hash(password).await?),
        active: true,
    };
    match app.users.insert(&user).await? {
        InsertOutcome::Inserted | InsertOutcome::EmailTaken => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(event = "shutting_down");
}

/// Reads at most `MAX_BODY_BYTES + 1` bytes: enough for the core to see "too large" and
/// answer 413 after its own route checks, never more.
async fn read_capped(body: AxumBody) -> Result<Vec<u8>, Problem> {
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| Problem::invalid_request("The request body could not be read."))?;
        if let Ok(data) = frame.into_data() {
            let room = (MAX_BODY_BYTES + 1).saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
            if bytes.len() > MAX_BODY_BYTES {
                drain(body).await;
                break;
            }
        }
    }
    Ok(bytes)
}

/// After an oversized body, read and discard a bounded amount more (at most 1 MiB, for at
/// most 2 s) so an ordinary client that is still sending sees the 413 instead of a broken
/// pipe; anything bigger or slower gets the answer and a closed connection.
async fn drain(mut body: AxumBody) {
    const DRAIN_BYTES: usize = 1024 * 1024;
    let mut discarded = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                discarded += data.len();
                if discarded > DRAIN_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

fn to_axum(response: http::Response<Body>) -> AxumResponse {
    response.map(|body| match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        other => AxumBody::from(other.to_vec()),
    })
}

async fn dispatch(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> AxumResponse {
    let path = request.uri().path().to_owned();
    if let Some(response) = crate::pages::handle(request.method(), &path) {
        return to_axum(response);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match read_capped(body).await {
        Ok(bytes) => bytes,
        Err(problem) => return to_axum(problem.into_response()),
    };
    parts.extensions.insert(PeerIp(peer.ip()));
    let request = http::Request::from_parts(parts, Body::Binary(bytes));
    let response = if path.starts_with("/_dev/") {
        if app.dev_routes.answer(&request) {
            crate::dev::handle(&app, request).await
        } else {
            crate::dev::refused(&request)
        }
    } else {
        app.api.handle(request).await
    };
    to_axum(response)
}

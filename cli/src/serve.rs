//! `pwreset serve`: the whole API in one process, from the same routers the Lambda
//! functions run, merged with the reference pages and (nested at `/_dev`) the dev routes.
//! `--backend memory`: in-memory adapters, an in-process outbox worker and a console
//! mailer; `--backend aws`: DynamoDB, with the table's stream read here and delivered by
//! send-reset-email's own code (`stream_reader.rs`), mail to the console or SES.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use pwreset_core::adapters::memory::{MemoryRateLimiter, MemoryStore, RecordingMailer};
use pwreset_core::config::{Config, Mode};
use pwreset_core::delivery::worker::{WorkerSettings, run_outbox_worker};
use pwreset_core::domain::{EmailAddress, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http::{self, PeerIp};
use pwreset_core::ports::{InsertOutcome, MailError, Mailer, OutgoingMail, SystemClock};
use pwreset_core::service::{ChangePassword, ConfirmReset, RequestReset, SendResetEmail};
use secrecy::SecretString;
use tower::util::MapRequest;

use crate::dev::{DevRoutes, DevState};

pub const DEMO_EMAIL: &str = "demo@example.com";

/// Where users, the outbox and mail live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Everything in this process: users, outbox and mail in memory (mail printed here).
    Memory,
    /// DynamoDB and SES v2 (AWS or emulators via AWS_ENDPOINT_URL_*).
    Aws,
}

/// Where `--backend aws` sends the mail its stream reader delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MailOutput {
    /// Printed on this console and kept for `/_dev/mail`.
    Console,
    /// Sent through SES v2 from `MAIL_FROM`.
    Ses,
}

/// Prints each message to stdout (the dev server's "outbox") and keeps it for `/_dev/mail`.
/// The token appears in the printed mail body and nowhere in the logs.
#[derive(Debug, Default)]
pub struct ConsoleMailer {
    pub recorder: Arc<RecordingMailer>,
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

/// One backend's use cases and what the dev routes read.
struct Wiring {
    request: RequestReset,
    confirm: ConfirmReset,
    change: ChangePassword,
    dev: DevState,
    /// The in-process outbox worker (`--backend memory`) or the stream reader (`--backend
    /// aws`), stopped with the server.
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// `--dev-routes` matters only with `--backend aws`: with memory they are always asked for.
pub async fn run(
    addr: SocketAddr,
    backend: Backend,
    demo: bool,
    dev_routes: bool,
    mail: MailOutput,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let base_url = format!("http://{bound}");
    let mode = Mode::DevServer {
        base_url: base_url.clone(),
    };
    let config = match backend {
        Backend::Memory => Config::from_env(&mode)?,
        Backend::Aws => aws_config(&mode).await?,
    };
    let (wiring, dev_routes) = match backend {
        Backend::Memory if mail == MailOutput::Ses => {
            anyhow::bail!("--mail ses needs --backend aws (--backend memory prints the mail)")
        }
        Backend::Memory => (memory(&config), DevRoutes::decide(bound, true)),
        Backend::Aws => (
            aws(&config, mail).await?,
            DevRoutes::decide(bound, dev_routes),
        ),
    };
    // Only in memory: a demo account never goes into a DynamoDB table (it may be a team's
    // own users table).
    let demo = demo && backend == Backend::Memory;
    if demo {
        seed_demo_user(&wiring.dev).await?;
    }
    if config.token_keys_generated {
        tracing::info!(
            "TOKEN_KEYS not set: using a random key for this process (links die when it stops)"
        );
    }
    let api = http::api_routes(
        Arc::new(wiring.request),
        Arc::new(wiring.confirm),
        Arc::new(wiring.change),
    );
    let routes = Router::new()
        .merge(with_cors(api, &config.cors_allow_origins)?)
        .merge(crate::pages::router())
        .nest("/_dev", crate::dev::router(wiring.dev, dev_routes));
    // Around the whole app rather than as a router layer (which wraps, and clones, every
    // route's service per request).
    let app = MapRequest::new(
        http::for_dev_server(routes),
        with_peer_ip as fn(Request) -> Request,
    );

    println!("pwreset serve listening on {base_url}");
    println!("{}", dev_routes.describe());
    if backend == Backend::Aws {
        println!(
            "--backend aws: reading the table's stream (DynamoDB Streams API) through send-reset-email's code; mail: {}",
            match mail {
                MailOutput::Console => "printed here and kept for /_dev/mail",
                MailOutput::Ses => "sent through SES v2",
            }
        );
    }
    if demo {
        println!(
            "demo user: {DEMO_EMAIL} (ask for a reset link at {base_url}/ and watch this console)"
        );
    }
    let _ = std::io::stdout().flush();
    tracing::info!(event = "listening", addr = %bound);

    let served = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed");
    if let Some(worker) = wiring.worker {
        worker.abort();
    }
    served?;
    tracing::info!(event = "stopped");
    Ok(())
}

/// `CORS_ALLOW_ORIGINS` on the API routes (never the pages or `/_dev/*`): preflights from
/// those origins answered for `POST` with a JSON body, `Retry-After` readable by their
/// scripts, no credentials. Other origins get no CORS headers, so browsers refuse them.
fn with_cors(api: Router, origins: &[String]) -> anyhow::Result<Router> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(api);
    }
    let origins = origins
        .iter()
        .map(|origin| origin.parse())
        .collect::<Result<Vec<::http::HeaderValue>, _>>()
        .context("CORS_ALLOW_ORIGINS")?;
    Ok(api.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([::http::Method::POST])
            .allow_headers([::http::header::CONTENT_TYPE])
            .expose_headers([::http::header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// The per-IP limit reads the TCP peer (axum's connect info), never a client-supplied header.
fn with_peer_ip(mut request: Request) -> Request {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = peer.ip();
        request.extensions_mut().insert(PeerIp(ip));
    }
    request
}

fn memory(config: &Config) -> Wiring {
    let store = Arc::new(MemoryStore::new());
    let mailer = Arc::new(ConsoleMailer::default());
    let clock = Arc::new(SystemClock);
    let hasher = PasswordHasher::owasp().writing(config.hash_format);
    let limiter = Arc::new(MemoryRateLimiter::new());
    let request = RequestReset::new(store.clone(), limiter.clone(), clock.clone(), config.limits)
        .allowing_return_to(config.return_urls.clone());
    // No event bus in memory: EVENT_BUS_NAME takes effect with --backend aws only.
    let confirm = ConfirmReset::configured(config, store.clone(), clock.clone(), hasher.clone());
    let change = ChangePassword::configured(
        config,
        store.clone(),
        limiter,
        clock.clone(),
        hasher.clone(),
    );
    let deliverer = SendResetEmail::configured(config, store.clone(), mailer.clone(), clock);
    let worker = tokio::spawn(run_outbox_worker(
        store.clone(),
        Arc::new(deliverer),
        WorkerSettings::default(),
    ));
    Wiring {
        request,
        confirm,
        change,
        dev: DevState {
            users: store.clone(),
            hasher,
            mailbox: Some(mailer.recorder.clone()),
            outbox: Some(store),
        },
        worker: Some(worker),
    }
}

/// The same API over DynamoDB. Requests write outbox items to the table; the mail goes out
/// from its stream (the deployed `send-reset-email`).
#[cfg(feature = "aws")]
async fn aws(config: &Config, mail: MailOutput) -> anyhow::Result<Wiring> {
    use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
    use pwreset_core::adapters::ses::{SesMailer, sesv2_client};
    let table = pwreset_core::config::required("TABLE_NAME")?;
    let users = pwreset_core::config::UsersTable::from_env(&table)?;
    let store = Arc::new(DynamoStore::new(dynamodb_client().await, table).with_users(users));
    let stream_arn = crate::stream_reader::stream_arn(&store).await?;
    let clock = Arc::new(SystemClock);
    let hasher = PasswordHasher::owasp().writing(config.hash_format);
    // The stream reader below publishes the event jobs through send-reset-email's code.
    let confirm = ConfirmReset::configured(config, store.clone(), clock.clone(), hasher.clone())
        .queueing_events(config.event_bus.is_some());
    let change = ChangePassword::configured(
        config,
        store.clone(),
        store.clone(),
        clock.clone(),
        hasher.clone(),
    )
    .queueing_events(config.event_bus.is_some());
    let (mailer, mailbox): (Arc<dyn Mailer>, _) = match mail {
        MailOutput::Console => {
            let console = ConsoleMailer::default();
            let recorder = console.recorder.clone();
            (Arc::new(console), Some(recorder))
        }
        MailOutput::Ses => {
            let ses = SesMailer::new(
                sesv2_client().await,
                config.mail_from.clone(),
                SesMailer::configuration_set_from_env(),
            );
            (Arc::new(ses), None)
        }
    };
    let mut send = SendResetEmail::configured(config, store.clone(), mailer, clock.clone());
    if let Some(bus) = &config.event_bus {
        use pwreset_core::adapters::eventbridge::{EventBridgePublisher, eventbridge_client};
        let client = eventbridge_client().await;
        send = send.with_events(Arc::new(EventBridgePublisher::new(client, bus.clone())));
    }
    let streams = crate::stream_reader::streams_client().await;
    let start = crate::stream_reader::start(&streams, &stream_arn).await?;
    let reader = tokio::spawn(crate::stream_reader::run(
        streams,
        stream_arn,
        start,
        Arc::new(send),
        store.clone(),
    ));
    Ok(Wiring {
        request: RequestReset::new(store.clone(), store.clone(), clock, config.limits)
            .allowing_return_to(config.return_urls.clone()),
        confirm,
        change,
        dev: DevState {
            users: store,
            hasher,
            mailbox,
            outbox: None,
        },
        worker: Some(reader),
    })
}

/// The configuration `--backend aws` runs with: as the functions read theirs, so
/// `TOKEN_KEYS_SECRET_ID` works here too.
#[cfg(feature = "aws")]
async fn aws_config(mode: &Mode) -> anyhow::Result<Config> {
    use pwreset_core::adapters::secrets;
    let client = secrets::secretsmanager_client().await;
    Ok(secrets::config_from_env(mode, || client).await?)
}

#[cfg(not(feature = "aws"))]
async fn aws_config(_mode: &Mode) -> anyhow::Result<Config> {
    anyhow::bail!(crate::NEEDS_AWS)
}

#[cfg(not(feature = "aws"))]
async fn aws(_config: &Config, _mail: MailOutput) -> anyhow::Result<Wiring> {
    anyhow::bail!(crate::NEEDS_AWS)
}

async fn seed_demo_user(dev: &DevState) -> anyhow::Result<()> {
    // A random password nobody knows: the demo is about resetting it.
    let password = SecretString::from(UserId::generate().as_str().to_owned());
    let user = User {
        uid: dev.users.fresh_uid(),
        email: EmailAddress::parse(DEMO_EMAIL)?,
        password_hash: Some(dev.hasher.hash(password).await?),
        active: true,
        credential_version: 0,
        locale: None,
    };
    match dev.users.insert(&user).await? {
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

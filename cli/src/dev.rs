//! `/_dev/*`: helpers for trying pwreset by hand and for black-box tests. They exist only
//! in `pwreset serve`, never in a Lambda binary; `pwreset serve` nests [`router`] at `/_dev`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::HOST;
use pwreset_core::adapters::memory::{MemoryStore, RecordingMailer};
use pwreset_core::domain::{EmailAddress, EmailLookup, User};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http::{ApiJson, Problem, json_response};
use pwreset_core::ports::{InsertOutcome, UserRepository};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

/// What the dev routes read and write.
#[derive(Clone)]
pub struct DevState {
    pub users: Arc<dyn UserRepository>,
    pub hasher: PasswordHasher,
    /// What the console mailer of `--backend memory` sent; with `--backend aws` mail goes
    /// through SES from the table's stream and `/_dev/mail` has nothing to show.
    pub mailbox: Option<Arc<RecordingMailer>>,
    /// The in-process outbox of `--backend memory` (its worker's progress shows at
    /// `/_dev/mail`); `None` with `--backend aws`.
    pub outbox: Option<Arc<MemoryStore>>,
}

impl std::fmt::Debug for DevState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevState")
            .field("mailbox", &self.mailbox.is_some())
            .field("outbox", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

/// `GET /mail`, `POST /users`, `POST /login`, each answered only when `routes` allows
/// it for this request (see [`DevRoutes`]); a refused request gets the 404 of a route
/// that does not exist here.
pub fn router(state: DevState, routes: DevRoutes) -> Router {
    Router::new()
        .route("/mail", get(mail).fallback(get_only))
        .route("/users", post(create_user).fallback(post_only))
        .route("/login", post(login).fallback(post_only))
        .fallback(not_found)
        .with_state(Arc::new(state))
        .layer(middleware::from_fn_with_state(routes, guard))
}

async fn guard(State(routes): State<DevRoutes>, request: Request, next: Next) -> Response {
    if routes.answer(&request) {
        next.run(request).await
    } else {
        refused(&request)
    }
}

async fn not_found() -> Problem {
    Problem::not_found()
}

async fn get_only() -> Problem {
    Problem::method_not_allowed("GET")
}

async fn post_only() -> Problem {
    Problem::method_not_allowed("POST")
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
    password: String,
    active: Option<bool>,
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct Created {
    uid: String,
}

#[derive(Serialize)]
struct LoginResult {
    valid: bool,
}

#[derive(Serialize)]
struct Message {
    to: String,
    subject: String,
    text: String,
    html: Option<String>,
    sent_at: String,
}

#[derive(Serialize)]
struct Mailbox {
    messages: Vec<Message>,
    /// Outbox jobs not yet finished (0: idle, nothing more will be sent for now).
    outbox_pending: usize,
}

/// Whether this process serves `/_dev/*`. They hand out every live reset link, create
/// users and check passwords without a limit, so they are for this machine only: never on a
/// listener other than loopback, never for a `Host` other than loopback (a web page that
/// rebinds its own DNS name to 127.0.0.1 sends its own name as `Host`), and with
/// `--backend aws` (a real table) only when asked for with `--dev-routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevRoutes {
    On,
    /// Off because the listener is not on a loopback address.
    OffNotLoopback,
    /// Off because they were not asked for (`--backend aws` without `--dev-routes`).
    OffNotRequested,
}

impl DevRoutes {
    pub fn decide(bound: SocketAddr, requested: bool) -> Self {
        if !bound.ip().is_loopback() {
            Self::OffNotLoopback
        } else if !requested {
            Self::OffNotRequested
        } else {
            Self::On
        }
    }

    /// What the console says about them at start-up.
    pub fn describe(self) -> &'static str {
        match self {
            Self::On => "dev routes: /_dev/mail, /_dev/users, /_dev/login (loopback Host only)",
            Self::OffNotLoopback => "dev routes: off (the listener is not on a loopback address)",
            Self::OffNotRequested => "dev routes: off (pass --dev-routes to serve them)",
        }
    }

    /// Whether this request may reach a dev route.
    pub fn answer<B>(self, request: &http::Request<B>) -> bool {
        self == Self::On && has_loopback_host(request)
    }
}

/// The `Host` header (and the authority of an absolute-form target, if any) names
/// 127.0.0.1, localhost or [::1], with or without a port.
fn has_loopback_host<B>(request: &http::Request<B>) -> bool {
    let Some(host) = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    is_loopback_authority(host)
        && request
            .uri()
            .authority()
            .is_none_or(|authority| is_loopback_authority(authority.as_str()))
}

fn is_loopback_authority(authority: &str) -> bool {
    let (name, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) => (format!("[{inside}]"), port),
            None => return false,
        },
        None => {
            let name = authority.split(':').next().unwrap_or_default();
            (name.to_owned(), &authority[name.len()..])
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && matches!(
            name.to_ascii_lowercase().as_str(),
            "127.0.0.1" | "localhost" | "[::1]"
        )
}

/// What a refused dev route answers: the 404 of a route that does not exist here.
fn refused(request: &Request) -> Response {
    // Inside the nest the URI has lost its `/_dev` prefix; the matched route has it.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |matched| matched.as_str());
    tracing::info!(
        event = "dev_route_refused",
        route,
        method = %request.method(),
    );
    Problem::not_found()
        .with_detail(
            "The /_dev routes answer only on a loopback listener, for a loopback Host \
             (127.0.0.1, localhost or [::1]); with --backend aws only with --dev-routes.",
        )
        .into_response()
}

async fn mail(State(app): State<Arc<DevState>>) -> Result<Response, Problem> {
    let Some(mailbox) = &app.mailbox else {
        return Err(Problem::not_found().with_detail(
            "With --backend aws, mail goes out through SES: there is no local mailbox.",
        ));
    };
    let messages = mailbox
        .sent()
        .into_iter()
        .map(|sent| Message {
            to: sent.mail.to.as_str().to_owned(),
            subject: sent.mail.subject,
            text: sent.mail.text,
            html: sent.mail.html,
            sent_at: sent.sent_at.format(&Rfc3339).unwrap_or_default(),
        })
        .collect();
    let outbox_pending = app
        .outbox
        .as_ref()
        .map_or(0, |store| store.unfinished_jobs());
    Ok(json_response(
        StatusCode::OK,
        &Mailbox {
            messages,
            outbox_pending,
        },
    ))
}

async fn create_user(
    State(app): State<Arc<DevState>>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, Problem> {
    let email = EmailAddress::parse(&body.email).map_err(|_| Problem::invalid_email())?;
    // Dev users may have any password: the policy guards resets, not test fixtures.
    let hash = app
        .hasher
        .hash(SecretString::from(body.password))
        .await
        .map_err(|_| Problem::internal())?;
    let user = User {
        uid: app.users.fresh_uid(),
        email,
        password_hash: Some(hash),
        active: body.active.unwrap_or(true),
        credential_version: 0,
        locale: None,
    };
    match app.users.insert(&user).await? {
        InsertOutcome::Inserted => Ok(json_response(
            StatusCode::CREATED,
            &Created {
                uid: user.uid.as_str().to_owned(),
            },
        )),
        InsertOutcome::EmailTaken => Err(Problem::email_taken()),
    }
}

async fn login(
    State(app): State<Arc<DevState>>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, Problem> {
    let lookup = EmailLookup::from_request(&body.email).map_err(|_| Problem::invalid_email())?;
    let mut stored: Vec<_> = (app.users.find_by_email(&lookup).await?)
        .into_iter()
        .filter(|u| u.active)
        .filter_map(|u| u.password_hash)
        .map(Some)
        .collect();
    if stored.is_empty() {
        // No account: one verify against a dummy all the same.
        stored.push(None);
    }
    let mut valid = false;
    // A team's table may hold several accounts for one address: any of them signs in.
    for hash in stored {
        valid |= app
            .hasher
            .verify(SecretString::from(body.password.clone()), hash)
            .await
            .map_err(|_| Problem::internal())?;
    }
    Ok(json_response(StatusCode::OK, &LoginResult { valid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, target: &str) -> Request {
        let mut builder = http::Request::builder().uri(target);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn only_a_loopback_listener_that_asked_for_them_serves_dev_routes() {
        let at = |addr: &str| addr.parse::<SocketAddr>().expect("address");
        assert_eq!(DevRoutes::decide(at("127.0.0.1:3000"), true), DevRoutes::On);
        assert_eq!(DevRoutes::decide(at("[::1]:3000"), true), DevRoutes::On);
        assert_eq!(
            DevRoutes::decide(at("0.0.0.0:3000"), true),
            DevRoutes::OffNotLoopback
        );
        assert_eq!(
            DevRoutes::decide(at("192.0.2.7:3000"), true),
            DevRoutes::OffNotLoopback
        );
        assert_eq!(
            DevRoutes::decide(at("[::]:3000"), true),
            DevRoutes::OffNotLoopback
        );
        assert_eq!(
            DevRoutes::decide(at("127.0.0.1:3000"), false),
            DevRoutes::OffNotRequested
        );
    }

    #[test]
    fn only_a_loopback_host_reaches_a_dev_route() {
        for host in [
            "127.0.0.1:3000",
            "127.0.0.1",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "[::1]",
        ] {
            assert!(
                DevRoutes::On.answer(&request(Some(host), "/_dev/mail")),
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "localhost.evil.example:3000",
            "127.0.0.2:3000",
            "0.0.0.0:3000",
            "[::1",
            "[::2]:3000",
            "localhost:",
            "localhost:30a0",
            "",
        ] {
            assert!(
                !DevRoutes::On.answer(&request(Some(host), "/_dev/mail")),
                "{host}"
            );
        }
        assert!(
            !DevRoutes::On.answer(&request(None, "/_dev/mail")),
            "no Host"
        );
        assert!(
            !DevRoutes::On.answer(&request(
                Some("127.0.0.1:3000"),
                "http://evil.example/_dev/mail"
            )),
            "an absolute-form target names the host too"
        );
        assert!(!DevRoutes::OffNotRequested.answer(&request(Some("127.0.0.1"), "/_dev/mail")));
        assert!(!DevRoutes::OffNotLoopback.answer(&request(Some("127.0.0.1"), "/_dev/mail")));
    }
}

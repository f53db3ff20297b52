//! `/_dev/*`: helpers for trying pwreset by hand and for black-box tests. They exist only
//! in `pwreset serve`, never in a Lambda binary.

use std::time::Instant;

use http::{Method, StatusCode};
use pwreset_core::domain::{EmailAddress, EmailKey, User, UserId};
use pwreset_core::http::{Body, Problem, Request, Response, json_response, read_json};
use pwreset_core::ports::InsertOutcome;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::serve::App;

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
}

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    let started = Instant::now();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let response = match (path.as_str(), &method) {
        ("/_dev/mail", &Method::GET) => mail(app),
        ("/_dev/users", &Method::POST) => create_user(app, &request).await,
        ("/_dev/login", &Method::POST) => login(app, &request).await,
        ("/_dev/mail", _) => Err(Problem::method_not_allowed("GET")),
        ("/_dev/users" | "/_dev/login", _) => Err(Problem::method_not_allowed("POST")),
        _ => Err(Problem::not_found()),
    }
    .unwrap_or_else(Problem::into_response);
    tracing::info!(
        event = "request",
        route = %path,
        method = %method,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

fn mail(app: &App) -> Result<Response<Body>, Problem> {
    let Some(mailer) = &app.mailer else {
        return Err(Problem::not_found().with_detail(
            "With --backend aws, mail goes out through SES: there is no local mailbox.",
        ));
    };
    let messages = mailer
        .recorder
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
    Ok(json_response(StatusCode::OK, &Mailbox { messages }))
}

async fn create_user(app: &App, request: &Request) -> Result<Response<Body>, Problem> {
    let body: NewUser = read_json(request)?;
    let email = EmailAddress::parse(&body.email).map_err(|_| Problem::invalid_email())?;
    // Dev users may have any password: the policy guards resets, not test fixtures.
    let hash = app
        .hasher
        .hash(SecretString::from(body.password))
        .await
        .map_err(|_| Problem::internal())?;
    let user = User {
        uid: UserId::generate(),
        email,
        password_hash: Some(hash),
        active: body.active.unwrap_or(true),
    };
    match app.users.insert(&user).await? {
        InsertOutcome::Inserted => Ok(json_response(
            StatusCode::CREATED,
            &Created {
                uid: user.uid.as_str().to_owned(),
            },
        )),
        InsertOutcome::EmailTaken => Err(Problem::new(
            StatusCode::CONFLICT,
            "email_taken",
            "A user with this e-mail address exists",
        )),
    }
}

async fn login(app: &App, request: &Request) -> Result<Response<Body>, Problem> {
    let body: Login = read_json(request)?;
    let key = EmailKey::normalise(&body.email).map_err(|_| Problem::invalid_email())?;
    let user = app.users.find_by_email_key(&key).await?;
    let stored = user.filter(|u| u.active).and_then(|u| u.password_hash);
    let valid = app
        .hasher
        .verify(SecretString::from(body.password), stored)
        .await
        .map_err(|_| Problem::internal())?;
    Ok(json_response(StatusCode::OK, &LoginResult { valid }))
}

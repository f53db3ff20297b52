//! The HTTP mapping: routes, check order, problem documents, headers.

use std::sync::Arc;

use axum::body::Body;
use http::header::{ALLOW, RETRY_AFTER};
use http::{Method, Request};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::adapters::memory::{MemoryRateLimiter, MemoryStore};
use crate::domain::{EmailAddress, User, UserId};
use crate::hashing::PasswordHasher;
use crate::policy::PasswordPolicy;
use crate::ports::SystemClock;
use crate::ports::{RateLimit, UserRepository as _};
use crate::service::{ChangeLimits, ChangePassword, ConfirmReset, Limits, RequestReset};
use crate::token::{TokenKeys, TokenSigner, TokenSubject};

/// Which deployment's path handling a fixture's requests go through.
#[derive(Clone, Copy)]
enum Deployment {
    DevServer,
    Lambda,
}

struct Fixture {
    api: Api,
    store: Arc<MemoryStore>,
    signer: TokenSigner,
}

/// Every use case's routes, served as `deployment` serves them.
#[derive(Clone)]
struct Api {
    request: Router,
    confirm: Router,
    change: Router,
    deployment: Deployment,
}

impl Api {
    fn routes(&self) -> Router {
        self.request
            .clone()
            .merge(self.confirm.clone())
            .merge(self.change.clone())
    }

    /// What `for_dev_server` or `for_lambda` does, over the test's own body type.
    async fn handle_with(&self, routes: Router, request: Request<Body>) -> Response {
        let request = match self.deployment {
            Deployment::DevServer => without_trailing_slash(request),
            Deployment::Lambda => deployment_path(request),
        };
        match app(routes).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn handle(&self, request: Request<Body>) -> Response {
        self.handle_with(self.routes(), request).await
    }
}

fn fixture(deployment: Deployment, limits: Limits) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    let request = RequestReset::new(
        store.clone(),
        Arc::new(MemoryRateLimiter::new()),
        clock.clone(),
        limits,
    );
    let confirm = ConfirmReset::new(
        store.clone(),
        clock.clone(),
        signer.clone(),
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
    );
    let change = ChangePassword::new(
        store.clone(),
        Arc::new(MemoryRateLimiter::new()),
        clock,
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
        ChangeLimits {
            failures: None,
            per_ip: None,
        },
    );
    Fixture {
        api: Api {
            request: request_routes(Arc::new(request)),
            confirm: confirm_routes(Arc::new(confirm)),
            change: change_routes(Arc::new(change)),
            deployment,
        },
        store,
        signer,
    }
}

fn no_limits() -> Limits {
    Limits {
        per_email: None,
        per_ip: None,
    }
}

fn post(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = http::Request::builder().method(Method::POST).uri(path);
    if let Some(ct) = content_type {
        builder = builder.header(CONTENT_TYPE, ct);
    }
    builder.body(body.into()).expect("request")
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    post(path, Some(JSON), body.to_string())
}

async fn body_bytes(response: Response) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a response body")
        .to_vec()
}

async fn send(api: &Api, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    read(api.handle(request).await).await
}

async fn read(response: Response) -> (StatusCode, http::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = body_bytes(response).await;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, json)
}

fn assert_problem(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &Value,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

impl Fixture {
    async fn user_with_token(&self) -> (User, String) {
        let hash = PasswordHasher::owasp()
            .hash(SecretString::from("old password here"))
            .await
            .expect("hash");
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse("a@example.org").expect("valid"),
            password_hash: Some(hash),
            active: true,
            credential_version: 0,
            locale: None,
        };
        self.store.insert(&user).await.expect("insert");
        let token = self.signer.sign(
            TokenSubject {
                uid: &user.uid,
                email: &user.email,
                password_hash: user.password_hash.as_ref().expect("hash"),
            },
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        (user, token.as_str().to_owned())
    }
}

#[tokio::test]
async fn a_reset_request_is_accepted_with_the_exact_body() {
    let f = fixture(Deployment::DevServer, no_limits());
    let response = f
        .api
        .handle(post_json(
            "/password-reset",
            &json!({"email": "a@example.org"}),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()[CONTENT_TYPE], JSON);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(body_bytes(response).await, br#"{"status":"accepted"}"#);
}

#[tokio::test]
async fn bodies_over_16_kib_are_refused_before_parsing_and_exactly_16_kib_is_read() {
    let f = fixture(Deployment::DevServer, no_limits());
    let prefix = r#"{"email":"a@example.org","pad":""#;
    let suffix = r#""}"#;
    let pad = MAX_BODY_BYTES - prefix.len() - suffix.len();
    let exact = format!("{prefix}{}{suffix}", "x".repeat(pad));
    assert_eq!(exact.len(), MAX_BODY_BYTES);
    let (status, _, _) = send(&f.api, post("/password-reset", Some(JSON), exact.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let over = format!("{prefix}{}{suffix}", "x".repeat(pad + 1));
    // Oversized beats a wrong media type and broken JSON: size is checked first.
    let (status, headers, body) =
        send(&f.api, post("/password-reset", Some("text/plain"), over)).await;
    assert_problem(status, &headers, &body, 413, "payload_too_large");
}

#[tokio::test]
async fn only_json_media_types_are_read() {
    let f = fixture(Deployment::DevServer, no_limits());
    let body = json!({"email": "a@example.org"}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let (status, headers, problem) =
            send(&f.api, post("/password-reset", ct, body.clone())).await;
        assert_problem(status, &headers, &problem, 415, "unsupported_media_type");
    }
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
    ] {
        let (status, _, _) = send(&f.api, post("/password-reset", Some(ct), body.clone())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{ct}");
    }
}

#[tokio::test]
async fn malformed_json_and_wrong_shapes_are_invalid_requests() {
    let f = fixture(Deployment::DevServer, no_limits());
    for (path, body) in [
        ("/password-reset", "{"),
        ("/password-reset", "[]"),
        ("/password-reset", "null"),
        ("/password-reset", r#"{"email": 5}"#),
        ("/password-reset", r#"{"mail": "a@example.org"}"#),
        ("/password-reset", r#"{"email": null}"#),
        (
            "/password-reset",
            r#"{"email": "a@b.org", "email": "c@d.org"}"#,
        ),
        ("/password-reset/verify", r#"{"uid": "x"}"#),
        ("/password-reset/confirm", r#"{"uid": "x", "token": "y"}"#),
        (
            "/password-reset/confirm",
            r#"{"uid": "x", "token": "y", "new_password": ["p"]}"#,
        ),
        // Arrays of the right arity: serde would read them by position.
        ("/password-reset", r#"["a@example.org"]"#),
        ("/password-reset/verify", r#" ["x", "y"]"#),
        (
            "/password-reset/confirm",
            r#"["x", "y", "violin kettle mango"]"#,
        ),
        (
            "/password-change",
            r#"["a@example.org", "old one", "new one"]"#,
        ),
        (
            "/password-change",
            r#"{"email": "a@example.org", "old_password": "x"}"#,
        ),
    ] {
        let (status, headers, problem) = send(&f.api, post(path, Some(JSON), body)).await;
        assert_problem(status, &headers, &problem, 400, "invalid_request");
    }
    let (status, headers, problem) = send(
        &f.api,
        post("/password-reset", Some(JSON), vec![0xff, 0xfe]),
    )
    .await;
    assert_problem(status, &headers, &problem, 400, "invalid_request");
}

#[tokio::test]
async fn problem_details_never_echo_the_input() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (_, _, problem) = send(
        &f.api,
        post(
            "/password-reset/confirm",
            Some(JSON),
            r#"{"uid":"x","token":"y","new_password":{"secret-pw":1}}"#,
        ),
    )
    .await;
    assert!(!problem.to_string().contains("secret-pw"), "{problem}");
}

#[tokio::test]
async fn a_return_to_that_is_not_a_string_is_an_invalid_request() {
    let f = fixture(Deployment::DevServer, no_limits());
    for body in [
        json!({"email": "a@example.org", "return_to": null}),
        json!({"email": "a@example.org", "return_to": 1}),
        json!({"email": "a@example.org", "return_to": ["https://app.example/"]}),
    ] {
        let (status, headers, problem) = send(&f.api, post_json("/password-reset", &body)).await;
        assert_problem(status, &headers, &problem, 400, "invalid_request");
    }
    // Absent is fine; a string not on the (empty) list is invalid_return_to.
    let (status, _, _) = send(
        &f.api,
        post_json("/password-reset", &json!({"email": "a@example.org"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, problem) = send(
        &f.api,
        post_json(
            "/password-reset",
            &json!({"email": "a@example.org", "return_to": "https://app.example/"}),
        ),
    )
    .await;
    assert_problem(status, &headers, &problem, 400, "invalid_return_to");
}

#[tokio::test]
async fn malformed_addresses_are_invalid_email() {
    let f = fixture(Deployment::DevServer, no_limits());
    for email in ["", "nope", "a@b.org\r\nBcc: c@d.org", "a b@c.org"] {
        let (status, headers, problem) = send(
            &f.api,
            post_json("/password-reset", &json!({"email": email})),
        )
        .await;
        assert_problem(status, &headers, &problem, 400, "invalid_email");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_are_405_with_allow() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (status, headers, problem) = send(&f.api, post_json("/nope", &json!({}))).await;
    assert_problem(status, &headers, &problem, 404, "not_found");
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let request = http::Request::builder()
            .method(method.clone())
            .uri("/password-reset/verify")
            .body(Body::empty())
            .expect("request");
        let (status, headers, problem) = send(&f.api, request).await;
        assert_problem(status, &headers, &problem, 405, "method_not_allowed");
        assert_eq!(headers[ALLOW], "POST", "{method}");
    }
}

#[tokio::test]
async fn verify_answers_valid_with_an_rfc3339_expiry() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (user, token) = f.user_with_token().await;
    let (status, headers, body) = send(
        &f.api,
        post_json(
            "/password-reset/verify",
            &json!({"uid": user.uid.as_str(), "token": token}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(body["valid"], true);
    let expires = body["expires_at"].as_str().expect("string");
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{expires}"
    );
}

#[tokio::test]
async fn tampered_tokens_are_invalid_token() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (user, token) = f.user_with_token().await;
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for (uid, token) in [
        (user.uid.as_str(), tampered.as_str()),
        (user.uid.as_str(), ""),
        ("no/such uid", token.as_str()),
        ("unknownUid", token.as_str()),
    ] {
        let (status, headers, problem) = send(
            &f.api,
            post_json(
                "/password-reset/verify",
                &json!({"uid": uid, "token": token}),
            ),
        )
        .await;
        assert_problem(status, &headers, &problem, 400, "invalid_token");
    }
}

#[tokio::test]
async fn a_weak_password_is_422_with_reasons_but_a_bad_token_wins() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (user, token) = f.user_with_token().await;
    let (status, headers, problem) = send(
        &f.api,
        post_json(
            "/password-reset/confirm",
            &json!({"uid": user.uid.as_str(), "token": token, "new_password": "123"}),
        ),
    )
    .await;
    assert_problem(status, &headers, &problem, 422, "weak_password");
    assert!(problem["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    let (status, headers, problem) = send(
        &f.api,
        post_json(
            "/password-reset/confirm",
            &json!({"uid": user.uid.as_str(), "token": "forged", "new_password": "123"}),
        ),
    )
    .await;
    assert_problem(status, &headers, &problem, 400, "invalid_token");
}

#[tokio::test]
async fn reasons_speak_the_requests_language_beside_stable_codes() {
    let f = fixture(Deployment::DevServer, no_limits());
    let (user, token) = f.user_with_token().await;
    let confirm = |language: Option<&str>| {
        let mut request = post_json(
            "/password-reset/confirm",
            &json!({"uid": user.uid.as_str(), "token": token, "new_password": "123"}),
        );
        if let Some(language) = language {
            request.headers_mut().insert(
                http::header::ACCEPT_LANGUAGE,
                HeaderValue::from_str(language).expect("header"),
            );
        }
        request
    };
    let (status, headers, english) = send(&f.api, confirm(None)).await;
    assert_problem(status, &headers, &english, 422, "weak_password");
    assert_eq!(english["reason_codes"], json!(["too_short", "all_digits"]));
    assert!(
        english["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("Use at least"))
    );
    for (language, first_words) in [
        ("fr-CA,fr;q=0.9,en;q=0.5", "Utilisez au moins"),
        ("de", "Verwenden Sie mindestens"),
        ("es-419", "Usa al menos"),
        ("ja", "Use at least"),
    ] {
        let (status, _, problem) = send(&f.api, confirm(Some(language))).await;
        assert_eq!(status, 422);
        assert_eq!(
            problem["reason_codes"], english["reason_codes"],
            "{language}"
        );
        assert_eq!(problem["reasons"].as_array().map(Vec::len), Some(2));
        assert!(
            problem["reasons"][0]
                .as_str()
                .is_some_and(|r| r.starts_with(first_words)),
            "{language}: {problem}"
        );
    }
}

#[tokio::test]
async fn a_store_outage_is_503_unavailable() {
    let f = fixture(Deployment::DevServer, no_limits());
    f.store.set_unavailable(true);
    let (status, headers, problem) = send(
        &f.api,
        post_json("/password-reset", &json!({"email": "a@example.org"})),
    )
    .await;
    assert_problem(status, &headers, &problem, 503, "unavailable");
    assert!(headers.contains_key(RETRY_AFTER));
}

#[tokio::test]
async fn the_per_ip_limit_reads_the_peer_address_not_x_forwarded_for() {
    let f = fixture(
        Deployment::DevServer,
        Limits {
            per_email: None,
            per_ip: RateLimit::parse("2/1m").expect("valid"),
        },
    );
    let mut last = None;
    for i in 0..3 {
        let mut request = post_json("/password-reset", &json!({"email": "a@example.org"}));
        request
            .extensions_mut()
            .insert(PeerIp("192.0.2.1".parse().expect("ip")));
        request.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_str(&format!("10.0.0.{i}")).expect("hv"),
        );
        last = Some(send(&f.api, request).await);
    }
    let (status, headers, problem) = last.expect("three requests");
    assert_problem(status, &headers, &problem, 429, "rate_limited");
    let retry: u64 = headers[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
}

/// The route a request reaches, as the status of an empty JSON body says it: 400 from a
/// route's body check, 404 from no route.
async fn reaches_a_route(api: &Api, path: &str) -> bool {
    let (status, _, _) = send(api, post_json(path, &json!({}))).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{path}: {status}"
    );
    status == StatusCode::BAD_REQUEST
}

#[tokio::test]
async fn lambda_functions_route_on_the_last_segments() {
    let f = fixture(Deployment::Lambda, no_limits());
    for path in [
        "/password-reset",
        "/prod/password-reset",
        "/lambda-url/request-reset/password-reset",
        "/lambda-url/request-reset/password-reset/",
        "/lambda-url/confirm-reset/password-reset/verify",
        "/password-reset/confirm",
        "/prod/password-reset/confirm/",
    ] {
        assert!(reaches_a_route(&f.api, path).await, "{path}");
    }
    for path in [
        "/other/verify",
        "/password-reset-x",
        "/prod/password-reset/other",
        "/password-reset/verify/more",
    ] {
        assert!(!reaches_a_route(&f.api, path).await, "{path}");
    }
    let exact = fixture(Deployment::DevServer, no_limits());
    assert!(!reaches_a_route(&exact.api, "/prod/password-reset").await);
    assert!(reaches_a_route(&exact.api, "/password-reset/").await);
}

#[test]
fn the_deployment_prefix_goes_and_the_query_stays() {
    let request = Request::builder()
        .uri("/prod/password-reset/verify/?x=1")
        .body(())
        .expect("request");
    assert_eq!(
        deployment_path(request).uri().to_string(),
        "/password-reset/verify?x=1"
    );
    let root = Request::builder().uri("/").body(()).expect("request");
    assert_eq!(without_trailing_slash(root).uri().path(), "/");
    // The change function's route, behind a stage and a function URL; the later of two
    // API segments wins.
    for (path, routed) in [
        ("/prod/password-change", "/password-change"),
        (
            "/lambda-url/change-password/password-change/",
            "/password-change",
        ),
        (
            "/password-change/x/password-reset/verify",
            "/password-reset/verify",
        ),
        ("/password-reset/password-change", "/password-change"),
        ("/password-changes", "/password-changes"),
    ] {
        let request = Request::builder().uri(path).body(()).expect("request");
        assert_eq!(deployment_path(request).uri().path(), routed, "{path}");
    }
}

#[tokio::test]
async fn a_function_that_serves_one_part_answers_404_for_the_rest() {
    let f = fixture(Deployment::Lambda, no_limits());
    let (status, headers, problem) = read(
        f.api
            .handle_with(
                f.api.request.clone(),
                post_json("/password-reset/verify", &json!({})),
            )
            .await,
    )
    .await;
    assert_problem(status, &headers, &problem, 404, "not_found");
    let (status, headers, problem) = read(
        f.api
            .handle_with(
                f.api.confirm.clone(),
                post_json("/password-reset", &json!({})),
            )
            .await,
    )
    .await;
    assert_problem(status, &headers, &problem, 404, "not_found");
    // change-password answers only its own route, and no other function answers it.
    for (routes, path) in [
        (f.api.change.clone(), "/password-reset/confirm"),
        (f.api.request.clone(), "/password-change"),
        (f.api.confirm.clone(), "/password-change"),
    ] {
        let (status, headers, problem) =
            read(f.api.handle_with(routes, post_json(path, &json!({}))).await).await;
        assert_problem(status, &headers, &problem, 404, "not_found");
    }
}

#[tokio::test]
async fn another_method_on_any_api_path_is_405_in_every_function() {
    // Behind API Gateway, `GET /password-reset/verify` matches no route key and goes to the
    // `$default` route (request-reset): it must still be the 405 the contract promises.
    let f = fixture(Deployment::Lambda, no_limits());
    for routes in [
        f.api.request.clone(),
        f.api.confirm.clone(),
        f.api.change.clone(),
    ] {
        for path in API_PATHS {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(format!("/prod{path}"))
                    .body(Body::empty())
                    .expect("request");
                let (status, headers, problem) =
                    read(f.api.handle_with(routes.clone(), request).await).await;
                assert_problem(status, &headers, &problem, 405, "method_not_allowed");
                assert_eq!(headers.get(ALLOW).map(|v| v.as_bytes()), Some(&b"POST"[..]));
            }
        }
        let request = Request::builder()
            .method(Method::GET)
            .uri("/prod/not-an-api-path")
            .body(Body::empty())
            .expect("request");
        let (status, headers, problem) =
            read(f.api.handle_with(routes.clone(), request).await).await;
        assert_problem(status, &headers, &problem, 404, "not_found");
    }
}

#[tokio::test]
async fn the_source_ip_comes_from_the_api_gateway_request_context() {
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /password-reset",
        "rawPath": "/password-reset",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-forwarded-for": "10.9.9.9"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "id.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "id",
            "http": {"method": "POST", "path": "/password-reset", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.23", "userAgent": "curl"},
            "requestId": "id",
            "routeKey": "POST /password-reset",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390_u64
        },
        "body": "{\"email\":\"a@example.org\"}",
        "isBase64Encoded": false
    });
    let request = lambda_http::request::from_str(&event.to_string()).expect("event");
    assert_eq!(
        client_ip(request.extensions()),
        Some("198.51.100.23".parse().expect("ip"))
    );
}

/// Behind the template's optional JWT authorizer, API Gateway passes the checked claims in
/// the request context: a subject that is not the account's is the same 401 as a wrong
/// password, the account's own subject changes it.
#[tokio::test]
async fn a_jwt_subject_from_the_authorizer_must_be_the_accounts_uid() {
    let f = fixture(Deployment::Lambda, no_limits());
    let (user, _) = f.user_with_token().await;
    let event = |sub: &str| {
        json!({
            "version": "2.0",
            "routeKey": "POST /password-change",
            "rawPath": "/password-change",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api-id",
                "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": null}},
                "domainName": "id.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "id",
                "http": {"method": "POST", "path": "/password-change", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.23", "userAgent": "curl"},
                "requestId": "id",
                "routeKey": "POST /password-change",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1583348638390_u64
            },
            "body": json!({"email": "a@example.org", "old_password": "old password here", "new_password": "violin kettle mango quartz"}).to_string(),
            "isBase64Encoded": false
        })
        .to_string()
    };
    for (sub, want) in [("someone-else", 401), (user.uid.as_str(), 200)] {
        let request = lambda_http::request::from_str(&event(sub)).expect("event");
        let response = match for_lambda(f.api.routes()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        assert_eq!(response.status().as_u16(), want, "sub {sub}");
    }
}

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

#[tokio::test]
async fn every_sample_api_gateway_event_gets_its_expected_status() {
    let f = fixture(Deployment::Lambda, no_limits());
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let mut checked = 0;
    for (name, want) in expected.as_object().expect("object") {
        let Some(want) = want.as_u64() else { continue };
        let text = std::fs::read_to_string(events_dir().join(name)).expect("event file");
        let request = lambda_http::request::from_str(&text).expect("an API Gateway event");
        let response = match for_lambda(f.api.routes()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        assert_eq!(u64::from(response.status().as_u16()), want, "{name}");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store", "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} events checked");
}

#[test]
fn a_cidr_style_source_ip_is_read_as_its_address() {
    let text = std::fs::read_to_string(events_dir().join("request-reset.json")).expect("event");
    let text = text.replace("198.51.100.7", "192.0.2.1/32");
    let request = lambda_http::request::from_str(&text).expect("event");
    assert_eq!(
        client_ip(request.extensions()),
        Some("192.0.2.1".parse().expect("ip"))
    );
}

mod rfc3339_text {
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::super::rfc3339;

    /// What `time`'s own RFC 3339 formatter writes, or the epoch where it cannot.
    fn by_time(unix: i64) -> String {
        OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }

    #[test]
    fn edges_match_the_time_crate() {
        // Year 0's first second, 9999's last, one past it, the epoch, a leap day, and
        // values `OffsetDateTime` refuses.
        for unix in [
            -62_167_219_200,
            -62_167_219_201,
            253_402_300_799,
            253_402_300_800,
            0,
            -1,
            951_782_400,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(rfc3339(unix), by_time(unix), "{unix}");
        }
        assert_eq!(rfc3339(1_796_533_200), "2026-12-06T05:00:00Z");
    }

    proptest! {
        #[test]
        fn matches_the_time_crate(unix in -70_000_000_000i64..260_000_000_000) {
            prop_assert_eq!(rfc3339(unix), by_time(unix));
        }
    }
}

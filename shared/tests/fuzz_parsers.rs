//! Property-based fuzzing of every parser that sees user input: the JSON bodies of the
//! three routes (through the real HTTP mapping), e-mail normalisation, the token and uid
//! parsers, and password normalisation with the policy.
//!
//! Bounded in `scripts/test` (proptest's default 256 cases per property); `scripts/fuzz`
//! runs the same properties with `PROPTEST_CASES` raised to over a million cases in all
//! and records the count in `bench/RESULTS.md`. Each property prints `fuzz-cases: <name>
//! <n>` so the script can add them up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};
use pwreset_core::adapters::memory::{MemoryRateLimiter, MemoryStore};
use pwreset_core::domain::{CandidatePassword, EmailAddress, EmailKey, PasswordHash, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http::{DevServerApp, ProblemCode, api_routes, for_dev_server};
use pwreset_core::policy::PasswordPolicy;
use pwreset_core::ports::SystemClock;
use pwreset_core::service::{ChangeLimits, ChangePassword, ConfirmReset, Limits, RequestReset};
use pwreset_core::token::{ParsedToken, TokenKeys, TokenRejection, TokenSigner, TokenSubject};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use unicode_normalization::UnicodeNormalization as _;

/// Every input value a property generates starts with this, so "the answer never echoes
/// the input" is a plain substring check.
const MARK: &str = "QZXJ";

/// The codes a client's own input can produce (no limits here, no failing dependency).
const CODES: [ProblemCode; 10] = [
    ProblemCode::InvalidRequest,
    ProblemCode::InvalidEmail,
    ProblemCode::InvalidToken,
    ProblemCode::ExpiredToken,
    ProblemCode::WeakPassword,
    ProblemCode::InvalidCredentials,
    ProblemCode::PayloadTooLarge,
    ProblemCode::UnsupportedMediaType,
    ProblemCode::NotFound,
    ProblemCode::MethodNotAllowed,
];

/// Runs one property with proptest's configuration (`PROPTEST_CASES` sets the count;
/// failures persist in `tests/proptest-regressions/`), then prints how many cases actually ran.
fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let config = ProptestConfig {
        // Relative to the package (cargo runs tests there): a failure is replayed first on
        // every later run until fixed.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/fuzz_parsers.txt",
        ))),
        ..ProptestConfig::default()
    };
    let ran = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    eprintln!("fuzz-cases: {name} {}", ran.load(Ordering::Relaxed));
    if let Err(failure) = result {
        panic!("{name}: {failure}");
    }
}

fn api() -> DevServerApp {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let request = RequestReset::new(
        store.clone(),
        Arc::new(MemoryRateLimiter::new()),
        clock.clone(),
        Limits {
            per_email: None,
            per_ip: None,
        },
    );
    let change = ChangePassword::new(
        store.clone(),
        Arc::new(MemoryRateLimiter::new()),
        clock.clone(),
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
        ChangeLimits {
            failures: None,
            per_ip: None,
        },
    );
    let confirm = ConfirmReset::new(
        store,
        clock,
        TokenSigner::new(TokenKeys::generate(), 3600),
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
    );
    for_dev_server(api_routes(
        Arc::new(request),
        Arc::new(confirm),
        Arc::new(change),
    ))
}

/// Any text, marked: printable ASCII, any Unicode scalar, control characters, look-alikes.
fn marked_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[a-zA-Z0-9._%+-]{1,20}@[a-zA-Z0-9.-]{1,20}",
        "[\\PC\r\n\t\u{0}]{0,30}",
    ]
    .prop_map(|s| format!("{MARK}{s}"))
}

/// Any JSON value, a few levels deep, its strings marked.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        marked_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("email".to_owned()),
        Just("uid".to_owned()),
        Just("token".to_owned()),
        Just("new_password".to_owned()),
        Just("old_password".to_owned()),
        "[a-z_]{0,12}",
    ]
}

/// A body: raw bytes, any JSON, or the expected object with arbitrary (marked) strings.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (marked_text(), marked_text(), marked_text(), any::<u8>()).prop_map(|(a, b, c, shape)| {
            let value = match shape % 5 {
                0 => json!({ "email": a }),
                1 => json!({ "uid": a, "token": b }),
                2 => json!({ "uid": a, "token": b, "new_password": c }),
                3 => json!({ "email": a, "old_password": b, "new_password": c }),
                _ => json!({ "email": a, "email2": b, "uid": c }),
            };
            value.to_string().into_bytes()
        }),
        // Duplicate keys and a trailing document.
        marked_text().prop_map(|a| {
            format!(r#"{{"email":{0},"email":{0}}}"#, Value::from(a)).into_bytes()
        }),
        marked_text().prop_map(|a| format!(r#"{{"email":{}}} {{}}"#, Value::from(a)).into_bytes()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("APPLICATION/JSON".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("application/jsonx".to_owned())),
        Just(None),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/password-reset".to_owned()),
        Just("/password-reset/verify".to_owned()),
        Just("/password-reset/confirm".to_owned()),
        Just("/password-change".to_owned()),
        Just("/password-reset/".to_owned()),
        "/[a-z/-]{0,30}",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        8 => Just(Method::POST),
        1 => Just(Method::GET),
        1 => Just(Method::PUT),
        1 => Just(Method::OPTIONS),
    ]
}

/// Whatever arrives, the answer is a 2xx or a 4xx problem document with a known code
/// that matches its status, carries `Cache-Control: no-store`, and never echoes input.
#[test]
fn any_request_gets_a_2xx_or_a_known_4xx_problem_and_no_echo() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let api = api();
    let strategy = (method(), path(), content_type(), body());
    run(
        "http_bodies",
        strategy,
        |(method, path, content_type, body)| {
            let mut builder = http::Request::builder().method(method).uri(path.as_str());
            if let Some(value) = content_type.and_then(|ct| http::HeaderValue::from_str(&ct).ok()) {
                builder = builder.header(CONTENT_TYPE, value);
            }
            let request = builder.body(Body::from(body)).expect("request");
            let (response, bytes) = runtime.block_on(async {
                let response = api.clone().oneshot(request).await.expect("infallible");
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
                (http::Response::from_parts(parts, ()), bytes)
            });
            let status = response.status();
            prop_assert!(
                status == StatusCode::ACCEPTED || status.is_client_error(),
                "status {status}"
            );
            prop_assert_eq!(
                response
                    .headers()
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
                Some("no-store")
            );
            let text = std::str::from_utf8(&bytes).expect("UTF-8 body");
            prop_assert!(!text.contains(MARK), "input echoed: {text}");
            let parsed: Value = serde_json::from_str(text).expect("a JSON body");
            if status.is_client_error() {
                let code = parsed["code"].as_str().unwrap_or_default();
                let known = CODES.iter().find(|c| c.as_str() == code);
                prop_assert!(known.is_some(), "unknown code {code:?}");
                prop_assert_eq!(known.map(|c| c.status()), Some(status));
                prop_assert_eq!(
                    response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok()),
                    Some("application/problem+json")
                );
            } else {
                prop_assert_eq!(parsed, json!({"status": "accepted"}));
            }
            Ok(())
        },
    );
}

/// Normalisation never panics, is idempotent, and what it accepts has one `@`, no control
/// characters and no whitespace; a stored address always has a usable key.
#[test]
fn email_normalisation_is_total_idempotent_and_clean() {
    let strategy = prop_oneof![
        any::<String>(),
        "[\\PC]{1,20}@[\\PC]{1,20}",
        "[a-zA-Z0-9.\u{130}\u{131}\u{212a}\u{ff21}-\u{ff3a}\u{17f}\u{fb00}]{1,16}@[a-z.\u{ff0e}]{1,16}",
        "[ \t\r\n]{0,2}[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,4}[ \t\r\n]{0,2}",
    ];
    run("email", strategy, |raw| {
        if let Ok(key) = EmailKey::normalise(&raw) {
            let again = EmailKey::normalise(key.as_str());
            prop_assert_eq!(again.as_ref().map(EmailKey::as_str), Ok(key.as_str()));
            prop_assert_eq!(key.as_str().matches('@').count(), 1);
            prop_assert!(
                !key.as_str()
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace())
            );
            prop_assert!(key.as_str().len() <= 254);
        }
        if raw.chars().any(char::is_control) {
            prop_assert!(EmailKey::normalise(&raw).is_err());
            prop_assert!(EmailAddress::parse(&raw).is_err());
        }
        if let Ok(stored) = EmailAddress::parse(&raw) {
            prop_assert!(!stored.key().as_str().is_empty());
            prop_assert_eq!(stored.as_str(), raw.trim());
        }
        Ok(())
    });
}

/// Arbitrary text never panics the token or uid parsers and never verifies; uids are
/// exactly 1–64 URL-safe characters.
#[test]
fn arbitrary_tokens_and_uids_never_verify() {
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    let uid = UserId::generate();
    let email = EmailAddress::parse("alice@example.org").expect("valid");
    let hash = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    let subject = TokenSubject {
        uid: &uid,
        email: &email,
        password_hash: &hash,
    };
    let strategy = (
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{54,56}",
            "A[A-Za-z0-9_-]{53}[AEIMQUYcgkosw048]",
        ],
        prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,70}"],
        0i64..4_000_000_000,
    );
    run("token_and_uid", strategy, |(raw_token, raw_uid, now)| {
        let expected = !raw_uid.is_empty()
            && raw_uid.len() <= 64
            && raw_uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(UserId::parse(&raw_uid).is_ok(), expected);
        if let Ok(parsed) = ParsedToken::parse(&raw_token) {
            prop_assert_eq!(
                signer.verify(subject, &parsed, now),
                Err(TokenRejection::Invalid)
            );
        }
        Ok(())
    });
}

/// A signed token verifies for exactly its subject and its lifetime, for any subject.
#[test]
fn signed_tokens_verify_only_for_their_subject_and_lifetime() {
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    let strategy = (
        "[a-z0-9]{1,10}",
        any::<String>(),
        any::<String>(),
        0i64..4_000_000_000,
        0i64..7200,
    );
    run(
        "signed_tokens",
        strategy,
        |(local, hash, other_hash, issued_at, age)| {
            prop_assume!(hash != other_hash);
            let uid = UserId::generate();
            let email = EmailAddress::parse(&format!("{local}@example.org")).expect("valid");
            let stored = PasswordHash::new(hash);
            let other = PasswordHash::new(other_hash);
            let subject = TokenSubject {
                uid: &uid,
                email: &email,
                password_hash: &stored,
            };
            let token = signer.sign(subject, issued_at);
            let parsed = ParsedToken::parse(token.as_str()).expect("our own tokens parse");
            let now = issued_at + age;
            let verdict = signer.verify(subject, &parsed, now);
            if age <= 3600 {
                prop_assert_eq!(verdict, Ok(issued_at + 3600));
            } else {
                prop_assert_eq!(verdict, Err(TokenRejection::Expired));
            }
            let changed = TokenSubject {
                password_hash: &other,
                ..subject
            };
            prop_assert_eq!(
                signer.verify(changed, &parsed, now),
                Err(TokenRejection::Invalid)
            );
            Ok(())
        },
    );
}

/// Normalisation is NFKC and idempotent; the policy never panics, refuses more than 1024
/// normalised bytes with one reason, and never accepts what breaks its rules.
#[test]
fn password_normalisation_and_policy_are_total() {
    let policy = PasswordPolicy::default();
    let strategy = (
        prop_oneof![
            any::<String>(),
            "[\\PC]{0,40}",
            "[0-9]{0,30}",
            "[a-z ]{8,40}",
            "[\u{fb01}\u{2460}\u{ff41}a-z]{200,400}",
            ".{1000,1100}",
        ],
        "[a-z]{1,12}",
    );
    run("password", strategy, |(raw, local)| {
        let candidate = CandidatePassword::new(&raw);
        let normalised = candidate.expose().to_owned();
        prop_assert_eq!(&normalised, &raw.nfkc().collect::<String>());
        prop_assert_eq!(&normalised, &normalised.nfkc().collect::<String>());
        let email = EmailAddress::parse(&format!("{local}@example.org")).expect("valid");
        match policy.check(candidate, &email) {
            Ok(_) => {
                prop_assert!(normalised.chars().count() >= 12);
                prop_assert!(normalised.len() <= 1024);
                prop_assert!(!normalised.chars().all(|c| c.is_ascii_digit()));
            }
            Err(weak) => {
                prop_assert!(!weak.reasons.is_empty());
                if normalised.len() > 1024 {
                    prop_assert_eq!(weak.reasons.len(), 1);
                }
            }
        }
        Ok(())
    });
}

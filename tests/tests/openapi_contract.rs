//! The OpenAPI document and the code must agree. The real `pwreset serve` answers every
//! kind of request the contract knows; each answer must be one the document describes for
//! that operation (status, media type, problem `code`, required headers and fields), and
//! each problem the document promises must actually be produced — so a new code, a renamed
//! code or a dropped header fails here whichever side changed.
//!
//! `503 unavailable` and `500 internal_error` need a failing dependency or a fault of our
//! own, which the in-memory dev server cannot have: the fault-injection tests against the
//! emulators (`shared/tests/fault_injection.rs`) produce `503`, and `500` is only for bugs.

use std::collections::BTreeSet;
use std::time::Duration;

use pwreset_core::http::ProblemCode;
use pwreset_testkit::dev_server::{DevServer, Reply};
use pwreset_testkit::paths::workspace_root;
use serde_json::{Value, json};

const OLD: &str = "the old password 1";
const STRONG: &str = "violin kettle mango quartz";

/// (status, problem code) the dev server cannot produce; see the module documentation.
const NEEDS_A_FAILING_DEPENDENCY: [(u16, &str); 2] =
    [(503, "unavailable"), (500, "internal_error")];

/// What the document says one response of one operation looks like.
#[derive(Debug, Default)]
struct Expected {
    media_type: String,
    /// Problem codes allowed for this status (empty for a success body).
    codes: BTreeSet<String>,
    required_headers: BTreeSet<String>,
    required_fields: BTreeSet<String>,
}

struct Spec {
    doc: Value,
}

impl Spec {
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => {
                let pointer = pointer.trim_start_matches('#');
                self.resolve(
                    self.doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
                )
            }
            None => value,
        }
    }

    /// Walks a schema (through `$ref` and `allOf`) collecting required fields and the
    /// `code` it allows.
    fn walk_schema(
        &self,
        schema: &Value,
        expected: &mut Expected,
        codes: &mut Option<BTreeSet<String>>,
    ) {
        let schema = self.resolve(schema);
        for field in schema["required"].as_array().into_iter().flatten() {
            expected
                .required_fields
                .insert(field.as_str().expect("field name").to_owned());
        }
        let code = &schema["properties"]["code"];
        let allowed: Option<BTreeSet<String>> = if let Some(c) = code["const"].as_str() {
            Some([c.to_owned()].into())
        } else {
            code["enum"].as_array().map(|values| {
                values
                    .iter()
                    .map(|v| v.as_str().expect("code").to_owned())
                    .collect()
            })
        };
        if let Some(allowed) = allowed {
            // The narrowest statement wins (an allOf part narrows the shared Problem).
            *codes = Some(match codes.take() {
                Some(previous) => previous.intersection(&allowed).cloned().collect(),
                None => allowed,
            });
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.walk_schema(part, expected, codes);
        }
    }

    fn expected(&self, path: &str, status: u16) -> Option<Expected> {
        let response = self
            .doc
            .pointer(&format!("/paths/{}/post/responses/{status}", escape(path)))?;
        Some(self.expected_of(response))
    }

    fn expected_of(&self, response: &Value) -> Expected {
        let response = self.resolve(response);
        let mut expected = Expected::default();
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            if self.resolve(header)["required"] == json!(true) {
                expected.required_headers.insert(name.to_ascii_lowercase());
            }
        }
        let content = response["content"].as_object().expect("response content");
        assert_eq!(content.len(), 1, "one media type per response");
        let (media_type, body) = content.iter().next().expect("one media type");
        expected.media_type = media_type.clone();
        let mut codes = None;
        self.walk_schema(&body["schema"], &mut expected, &mut codes);
        expected.codes = codes.unwrap_or_default();
        expected
    }

    /// Every (path, status, code) the document promises for the API's operations.
    fn promises(&self) -> BTreeSet<(String, u16, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            let responses = item["post"]["responses"].as_object().expect("responses");
            for status in responses.keys() {
                let status: u16 = status.parse().expect("numeric status");
                let expected = self.expected(path, status).expect("listed");
                if expected.codes.is_empty() {
                    all.insert((path.clone(), status, String::new()));
                }
                for code in expected.codes {
                    all.insert((path.clone(), status, code));
                }
            }
        }
        all
    }
}

fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// Checks one answer against the document and returns what it observed.
#[track_caller]
fn check(spec: &Spec, path: &str, reply: &Reply) -> (String, u16, String) {
    let expected = spec.expected(path, reply.status).unwrap_or_else(|| {
        panic!(
            "POST {path} answered {} which openapi.yaml does not describe: {}",
            reply.status, reply.text
        )
    });
    check_against(&expected, path, reply);
    (path.to_owned(), reply.status, reply.code().to_owned())
}

#[track_caller]
fn check_against(expected: &Expected, what: &str, reply: &Reply) {
    let media_type = reply.header("content-type").unwrap_or_default();
    assert_eq!(
        media_type, expected.media_type,
        "{what} {}: media type",
        reply.status
    );
    if !expected.codes.is_empty() {
        assert!(
            expected.codes.contains(reply.code()),
            "{what} {} answered code {:?}; openapi.yaml allows {:?}",
            reply.status,
            reply.code(),
            expected.codes
        );
        assert_eq!(reply.json["status"], reply.status, "{what}: status field");
    }
    for header in &expected.required_headers {
        assert!(
            reply.header(header).is_some(),
            "{what} {}: header {header} is required by openapi.yaml but missing",
            reply.status
        );
    }
    for field in &expected.required_fields {
        assert!(
            reply.json.get(field).is_some(),
            "{what} {}: field {field} is required by openapi.yaml: {}",
            reply.status,
            reply.text
        );
    }
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
}

async fn load_spec(server: &DevServer) -> Spec {
    let served = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(served.status(), 200);
    let doc: Value = served.json().await.expect("the served document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    Spec { doc }
}

#[tokio::test]
async fn the_served_document_is_the_repository_openapi_yaml() {
    let server = DevServer::start(&[]);
    let spec = load_spec(&server).await;
    // Cheap structural comparison without a YAML parser: every path and every problem
    // code written in the YAML file appears in the served JSON, and nothing else does.
    let yaml =
        std::fs::read_to_string(workspace_root().join("openapi.yaml")).expect("openapi.yaml");
    let yaml_paths: BTreeSet<&str> = yaml
        .lines()
        .filter(|l| l.starts_with("  /") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let served_paths: BTreeSet<&str> = spec.doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(yaml_paths, served_paths);
    assert_eq!(
        served_paths,
        BTreeSet::from([
            "/password-reset",
            "/password-reset/verify",
            "/password-reset/confirm",
            "/password-change"
        ])
    );
}

#[tokio::test]
async fn every_answer_is_in_the_document_and_every_promise_is_kept() {
    let server = DevServer::start(&[
        ("RESET_LIMIT_PER_IP", "30/1m"),
        ("PASSWORD_RESET_TIMEOUT", "1"),
    ]);
    let spec = load_spec(&server).await;
    let reset = "/password-reset";
    let verify = "/password-reset/verify";
    let confirm = "/password-reset/confirm";
    let change = "/password-change";
    let mut seen = BTreeSet::new();

    // Bad input on every route, in the contract's order of checks.
    for path in [reset, verify, confirm, change] {
        let huge = vec![b' '; 16 * 1024 + 1];
        for reply in [
            server.post_raw(path, Some("application/json"), huge).await,
            server
                .post_raw(path, Some("text/plain"), b"{}".to_vec())
                .await,
            server.post_raw(path, None, b"{}".to_vec()).await,
            server
                .post_raw(path, Some("application/json"), b"{".to_vec())
                .await,
            server
                .post_json(path, &json!({"email": 1, "uid": [], "token": null}))
                .await,
            server.post_json(path, &json!([])).await,
        ] {
            seen.insert(check(&spec, path, &reply));
        }
    }
    seen.insert(check(
        &spec,
        reset,
        &server.request_reset("no at sign").await,
    ));
    seen.insert(check(
        &spec,
        reset,
        &server
            .request_reset("a@b.example\r\nBcc: x@y.example")
            .await,
    ));
    seen.insert(check(
        &spec,
        reset,
        &server.request_reset("nobody@example.org").await,
    ));
    // No RESET_RETURN_URLS here: any return_to is refused.
    seen.insert(check(
        &spec,
        reset,
        &server
            .post_json(
                reset,
                &json!({"email": "nobody@example.org", "return_to": "https://evil.example/"}),
            )
            .await,
    ));

    // Token answers: valid, invalid, expired; weak and accepted passwords.
    let uid = server.create_user("alice@example.org", OLD, true).await;
    let (_, token) = server.reset_link("alice@example.org").await;
    seen.insert(check(&spec, verify, &server.verify(&uid, &token).await));
    seen.insert(check(
        &spec,
        verify,
        &server.verify(&uid, "not-a-token").await,
    ));
    seen.insert(check(
        &spec,
        confirm,
        &server.confirm(&uid, "not-a-token", STRONG).await,
    ));
    seen.insert(check(
        &spec,
        confirm,
        &server.confirm(&uid, &token, "123").await,
    ));
    tokio::time::sleep(Duration::from_millis(2600)).await;
    seen.insert(check(&spec, verify, &server.verify(&uid, &token).await));
    seen.insert(check(
        &spec,
        confirm,
        &server.confirm(&uid, &token, STRONG).await,
    ));
    let (_, fresh) = server.reset_link("alice@example.org").await;
    seen.insert(check(
        &spec,
        confirm,
        &server.confirm(&uid, &fresh, STRONG).await,
    ));

    // A change: wrong password, weak new one, invalid address, success, then the account's
    // failure limit (5 by default).
    let bob = "bob@example.org";
    server.create_user(bob, OLD, true).await;
    seen.insert(check(
        &spec,
        change,
        &server.change_password("bob at example", OLD, STRONG).await,
    ));
    seen.insert(check(
        &spec,
        change,
        &server.change_password(bob, OLD, "123").await,
    ));
    seen.insert(check(
        &spec,
        change,
        &server.change_password(bob, OLD, STRONG).await,
    ));
    let mut change_limited = None;
    for _ in 0..6 {
        let reply = server.change_password(bob, "not the password", OLD).await;
        if reply.status == 429 {
            change_limited = Some(reply);
            break;
        }
        seen.insert(check(&spec, change, &reply));
    }
    let change_limited = change_limited.expect("the failure limit answered 429 within 6 tries");
    seen.insert(check(&spec, change, &change_limited));

    // The per-IP limit (30 a minute; some were used above): 429 with Retry-After.
    let mut limited = None;
    for _ in 0..40 {
        let reply = server.request_reset("nobody@example.org").await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the per-IP limit answered 429 within 40 requests");
    seen.insert(check(&spec, reset, &limited));

    // Described outside the operations: other methods (405 + Allow) and other paths (404).
    let not_allowed = spec.expected_of(&spec.doc["components"]["responses"]["MethodNotAllowed"]);
    for path in [reset, verify, confirm, change] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let reply = Reply::read(server.client.request(method.clone(), server.url(path))).await;
            check_against(&not_allowed, &format!("{method} {path}"), &reply);
            assert_eq!(reply.header("allow"), Some("POST"));
        }
    }
    let missing = server.post_json("/password-reset/other", &json!({})).await;
    missing.assert_problem(404, "not_found");

    // Every promise is kept: each (operation, status, code) in the document was produced
    // above, except those that need a failing dependency.
    let unkept: Vec<_> = spec
        .promises()
        .into_iter()
        .filter(|(_, status, code)| !NEEDS_A_FAILING_DEPENDENCY.contains(&(*status, code.as_str())))
        .filter(|promise| !seen.contains(promise))
        .collect();
    assert!(
        unkept.is_empty(),
        "documented but never produced: {unkept:?}"
    );

    // The shared Problem schema lists exactly the public codes pwreset has, and the
    // operations promise nothing beyond them.
    let listed: BTreeSet<String> =
        spec.doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("code enum")
            .iter()
            .map(|v| v.as_str().expect("code").to_owned())
            .collect();
    let mut used: BTreeSet<String> = spec
        .promises()
        .into_iter()
        .map(|(_, _, code)| code)
        .filter(|code| !code.is_empty())
        .collect();
    used.extend(["not_found".to_owned(), "method_not_allowed".to_owned()]);
    assert_eq!(
        listed, used,
        "Problem.code enum vs the codes the operations use"
    );
    let public: BTreeSet<String> = ProblemCode::ALL
        .into_iter()
        .filter(|code| code.is_public())
        .map(|code| code.as_str().to_owned())
        .collect();
    assert_eq!(listed, public, "Problem.code enum vs pwreset's ProblemCode");
}

//! SES and DynamoDB failing mid-flow, injected by a loopback proxy between the real AWS SDK
//! (with the adapters' timeouts and retries) and the emulators: moto for DynamoDB,
//! aws-ses-v2-local for SES v2. Everything is driven through the `pwreset_core::http` routes and
//! the stream consumer `deliver_batch`, wired as the Lambda functions wire them.
//!
//! What must hold: no lost request, no half-written state, `503 unavailable` (with
//! `Retry-After`) for an outage — never a 500, never a client error such as
//! `invalid_token`, never a 2xx that did not do its work — and a token that still works
//! once the fault clears. Needs `scripts/install-tools` (moto and aws-ses-v2-local).
#![cfg(feature = "aws")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::{self, DynamoStore};
use pwreset_core::adapters::ses::SesMailer;
use pwreset_core::delivery::stream::deliver_batch;
use pwreset_core::domain::{EmailAddress, PasswordHash, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::http::{DevServerApp, PeerIp, api_routes, for_dev_server};
use pwreset_core::mail::{LinkTemplate, MailComposer};
use pwreset_core::policy::PasswordPolicy;
use pwreset_core::ports::{RateLimit, SystemClock, UserRepository as _};
use pwreset_core::service::{
    ChangeLimits, ChangePassword, ConfirmReset, Limits, RequestReset, SendResetEmail,
};
use pwreset_core::token::{TokenKeys, TokenSigner, TokenSubject};
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::fault_proxy::{Fault, FaultProxy};
use pwreset_testkit::outbox::{self, Item, OutboxStream};
use pwreset_testkit::{emulators, mail, net, ses_store};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

const OLD: &str = "the old password 1";
const STRONG: &str = "violin kettle mango quartz";
const FROM: &str = "no-reply@pwreset.example";
const TRANSACT_WRITE: &str = "DynamoDB_20120810.TransactWriteItems";
const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";

/// The service over a table of its own in moto, with DynamoDB and SES reached through a
/// fault proxy each, plus a direct (never faulted) view of the table to check its state.
struct Rig {
    dynamodb_proxy: FaultProxy,
    ses_proxy: FaultProxy,
    direct: DynamoStore,
    api: DevServerApp,
    deliverer: SendResetEmail,
    /// Where the deliverer marks handled outbox items: the faulted store.
    ledger: Arc<DynamoStore>,
    signer: TokenSigner,
    ses_url: String,
    /// Outbox items already turned into stream records.
    stream: OutboxStream,
}

impl Rig {
    async fn start() -> Self {
        let moto = emulators::moto();
        let ses = emulators::ses_local();
        let direct_client = sdk().dynamodb(&moto.url);
        let table =
            aws::fresh_table(&direct_client, "faults", dynamodb::table::create_tables).await;
        let dynamodb_proxy = FaultProxy::start(&moto.url).await;
        let ses_proxy = FaultProxy::start(&ses.url).await;
        let store = Arc::new(DynamoStore::new(
            sdk().dynamodb(&dynamodb_proxy.url),
            table.clone(),
        ));
        let signer = TokenSigner::new(TokenKeys::generate(), 3600);
        let limits = Limits {
            per_email: RateLimit::parse("1000/15m").expect("limit"),
            per_ip: RateLimit::parse("1000/1m").expect("limit"),
        };
        let request =
            RequestReset::new(store.clone(), store.clone(), Arc::new(SystemClock), limits);
        let confirm = ConfirmReset::new(
            store.clone(),
            Arc::new(SystemClock),
            signer.clone(),
            PasswordPolicy::new(12),
            PasswordHasher::owasp(),
        );
        let change = change_password(store.clone());
        let deliverer = SendResetEmail::new(
            store.clone(),
            Arc::new(SesMailer::new(sdk().sesv2(&ses_proxy.url), FROM, None)),
            Arc::new(SystemClock),
            signer.clone(),
            MailComposer::new(
                "pwreset",
                LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}")
                    .expect("template"),
                3600,
            ),
        );
        Self {
            dynamodb_proxy,
            ses_proxy,
            direct: DynamoStore::new(direct_client, table),
            api: for_dev_server(api_routes(
                Arc::new(request),
                Arc::new(confirm),
                Arc::new(change),
            )),
            deliverer,
            ledger: store,
            signer,
            ses_url: ses.url.clone(),
            stream: OutboxStream::default(),
        }
    }

    /// A user with password `OLD`, written straight to the table.
    async fn add_user(&self, email: &str) -> User {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse(email).expect("valid address"),
            password_hash: Some(
                PasswordHasher::owasp()
                    .hash(SecretString::from(OLD))
                    .await
                    .expect("hash"),
            ),
            active: true,
            credential_version: 0,
            locale: None,
        };
        self.direct.insert(&user).await.expect("user inserted");
        user
    }

    /// A token for the user's current hash, as the mail worker would sign it.
    fn token_for(&self, user: &User) -> String {
        let hash = user.password_hash.as_ref().expect("a hash");
        self.signer
            .sign(
                TokenSubject {
                    uid: &user.uid,
                    email: &user.email,
                    password_hash: hash,
                },
                time::OffsetDateTime::now_utc().unix_timestamp(),
            )
            .as_str()
            .to_owned()
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        call(&self.api, path, body).await
    }

    async fn request_reset(&self, email: &str) -> Reply {
        self.post("/password-reset", &json!({ "email": email }))
            .await
    }

    async fn verify(&self, uid: &UserId, token: &str) -> Reply {
        self.post(
            "/password-reset/verify",
            &json!({"uid": uid.as_str(), "token": token}),
        )
        .await
    }

    async fn confirm(&self, uid: &UserId, token: &str, password: &str) -> Reply {
        self.post(
            "/password-reset/confirm",
            &json!({"uid": uid.as_str(), "token": token, "new_password": password}),
        )
        .await
    }

    /// The stored hash, read straight from the table.
    async fn stored_hash(&self, uid: &UserId) -> PasswordHash {
        self.direct
            .find_by_uid(uid)
            .await
            .expect("read the user")
            .expect("the user exists")
            .password_hash
            .expect("a hash")
    }

    async fn outbox_items(&self) -> Vec<Item> {
        outbox::items_with_prefix(
            &self.direct.client,
            &self.direct.table,
            dynamodb::item::OUTBOX_PREFIX,
        )
        .await
        .expect("scan")
    }

    /// Stream records (as DynamoDB Streams would deliver them) for outbox items not yet
    /// turned into records, in sequence order.
    async fn new_stream_records(&mut self) -> Vec<Value> {
        let items = self.outbox_items().await;
        self.stream.new_records(&items).0
    }

    /// What `send-reset-email` answers for these records: the sequence numbers reported
    /// as batch item failures.
    async fn deliver(&self, records: &[Value]) -> Vec<String> {
        let batch: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json!({ "Records": records })).expect("a stream batch");
        deliver_batch(&self.deliverer, self.ledger.as_ref(), &batch)
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier.expect("a failure names its record"))
            .collect()
    }

    /// Mail aws-ses-v2-local holds for `to`.
    async fn mail_to(&self, to: &str) -> Vec<Value> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        ses_store::mail_to(&http, &self.ses_url, to)
            .await
            .expect("GET /store")
    }
}

/// One request through the API, from a fixed client address.
async fn call(api: &DevServerApp, path: &str, body: &Value) -> Reply {
    let request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .extension(PeerIp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))))
        .body(Body::from(body.to_string()))
        .expect("a request");
    let started = Instant::now();
    let response = api.clone().oneshot(request).await.expect("infallible");
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Reply {
        status,
        body,
        retry_after,
        elapsed,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    elapsed: Duration,
}

impl Reply {
    /// `503` with code `unavailable` and a positive `Retry-After`, in bounded time.
    fn assert_unavailable(&self, what: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (503, Some("unavailable")),
            "{what}: {self:?}"
        );
        let retry_after: u64 = self
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no numeric Retry-After: {self:?}"));
        assert!(retry_after >= 1, "{what}: {self:?}");
        // The SDK gives up after its 5 s operation timeout; allow for a loaded machine.
        assert!(self.elapsed < Duration::from_secs(15), "{what}: {self:?}");
    }

    fn assert_status(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
    }
}

fn unique_address(prefix: &str) -> String {
    format!("{}@example.org", unique_name(prefix))
}

/// (uid, token) from the reset mail's text, whose link has the template's shape.
fn link_parts(text: &str) -> (String, String) {
    let link = mail::reset_link(text).unwrap_or_else(|| panic!("no link in {text}"));
    assert!(link.starts_with("https://app.example/reset#"), "{link}");
    mail::link_parts(link).unwrap_or_else(|| panic!("no uid and token in {link}"))
}

// ---------------------------------------------------------------------------------------
// SES failing: the request is accepted, the outbox item retried, the mail sent once.
// ---------------------------------------------------------------------------------------

async fn ses_outage_is_retried_and_the_mail_arrives_once(fault: Fault) {
    let mut rig = Rig::start().await;
    let first = unique_address("ses-a");
    let second = unique_address("ses-b");
    let user = rig.add_user(&first).await;
    rig.add_user(&second).await;

    rig.ses_proxy.set(fault);
    rig.request_reset(&first)
        .await
        .assert_status(202, "request");
    let mut records = rig.new_stream_records().await;
    rig.request_reset(&second)
        .await
        .assert_status(202, "request");
    records.extend(rig.new_stream_records().await);
    assert_eq!(records.len(), 2, "one outbox item per request");

    // SES down: the first record is reported for retry, the rest of the batch left alone.
    let failures = rig.deliver(&records).await;
    let first_sequence = records[0]["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("sequence")
        .to_owned();
    assert_eq!(failures, vec![first_sequence.clone()], "{fault:?}");
    assert!(rig.ses_proxy.faulted() >= 1, "the fault was injected");
    assert!(rig.mail_to(&first).await.is_empty());
    assert!(rig.mail_to(&second).await.is_empty());

    // SES back: Lambda retries the batch from the failed record; each mail goes out once.
    rig.ses_proxy.clear();
    let failed_at = records
        .iter()
        .position(|r| r["dynamodb"]["SequenceNumber"] == first_sequence.as_str())
        .expect("the failed record");
    assert_eq!(
        rig.deliver(&records[failed_at..]).await,
        Vec::<String>::new()
    );
    let mail = rig.mail_to(&first).await;
    assert_eq!(mail.len(), 1, "exactly one reset mail: {mail:?}");
    assert_eq!(rig.mail_to(&second).await.len(), 1);

    // And the link in it works.
    let (uid, token) = link_parts(mail[0]["body"]["text"].as_str().expect("text"));
    assert_eq!(uid, user.uid.as_str());
    rig.verify(&user.uid, &token)
        .await
        .assert_status(200, "verify");
}

#[tokio::test]
async fn ses_answering_5xx_leaves_the_request_accepted_and_the_mail_is_sent_once_when_it_is_back() {
    ses_outage_is_retried_and_the_mail_arrives_once(Fault::Error {
        status: 500,
        code: "InternalFailure",
    })
    .await;
}

#[tokio::test]
async fn ses_timing_out_leaves_the_request_accepted_and_the_mail_is_sent_once_when_it_is_back() {
    ses_outage_is_retried_and_the_mail_arrives_once(Fault::Hang).await;
}

// ---------------------------------------------------------------------------------------
// DynamoDB failing: 503 everywhere, nothing written, the token usable afterwards.
// ---------------------------------------------------------------------------------------

/// With every DynamoDB call failing as `fault`, request, verify and confirm all answer
/// `503 unavailable`; nothing is written; once it clears, the same token verifies and
/// confirms.
async fn dynamodb_outage_is_503_and_changes_nothing(rig: &Rig, fault: Fault) {
    let email = unique_address("ddb");
    let user = rig.add_user(&email).await;
    let token = rig.token_for(&user);
    let before = rig.stored_hash(&user.uid).await;
    let faulted = rig.dynamodb_proxy.faulted();

    rig.dynamodb_proxy.set(fault);
    rig.request_reset(&email)
        .await
        .assert_unavailable(&format!("request, {fault:?}"));
    rig.verify(&user.uid, &token)
        .await
        .assert_unavailable(&format!("verify, {fault:?}"));
    rig.confirm(&user.uid, &token, STRONG)
        .await
        .assert_unavailable(&format!("confirm, {fault:?}"));
    rig.dynamodb_proxy.clear();
    assert!(
        rig.dynamodb_proxy.faulted() >= faulted + 3,
        "the fault was injected"
    );

    assert_eq!(rig.stored_hash(&user.uid).await, before, "hash unchanged");
    assert!(
        rig.outbox_items().await.is_empty(),
        "no outbox item written"
    );
    rig.verify(&user.uid, &token)
        .await
        .assert_status(200, "verify after the outage");
    rig.confirm(&user.uid, &token, STRONG)
        .await
        .assert_status(200, "confirm after the outage");
    assert_ne!(rig.stored_hash(&user.uid).await, before);
    // Clean up for the next case on this table: the one notice goes.
    for item in rig.outbox_items().await {
        rig.direct
            .client
            .delete_item()
            .table_name(&rig.direct.table)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .expect("delete the notice");
    }
}

#[tokio::test]
async fn dynamodb_answering_500_or_503_is_a_503_everywhere_and_changes_nothing() {
    let rig = Rig::start().await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::INTERNAL_ERROR).await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::SERVICE_UNAVAILABLE).await;
}

#[tokio::test]
async fn dynamodb_throttling_is_a_503_everywhere_and_changes_nothing() {
    let rig = Rig::start().await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::THROTTLING).await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::THROUGHPUT_EXCEEDED).await;
}

#[tokio::test]
async fn dynamodb_hanging_is_a_503_everywhere_after_the_timeout_and_changes_nothing() {
    let rig = Rig::start().await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::Hang).await;
}

#[tokio::test]
async fn dynamodb_dropping_connections_is_a_503_everywhere_and_changes_nothing() {
    let rig = Rig::start().await;
    dynamodb_outage_is_503_and_changes_nothing(&rig, Fault::Drop).await;
}

#[tokio::test]
async fn dynamodb_refusing_connections_is_a_503_everywhere_and_changes_nothing() {
    let rig = Rig::start().await;
    let email = unique_address("refused");
    let user = rig.add_user(&email).await;
    let token = rig.token_for(&user);
    let before = rig.stored_hash(&user.uid).await;
    // The same service, its table endpoint a loopback port nobody listens on.
    let store = Arc::new(DynamoStore::new(
        sdk().dynamodb(&format!("http://127.0.0.1:{}", net::closed_port())),
        rig.direct.table.clone(),
    ));
    let down = for_dev_server(api_routes(
        Arc::new(RequestReset::new(
            store.clone(),
            store.clone(),
            Arc::new(SystemClock),
            Limits {
                per_email: None,
                per_ip: RateLimit::parse("1000/1m").expect("limit"),
            },
        )),
        Arc::new(ConfirmReset::new(
            store.clone(),
            Arc::new(SystemClock),
            rig.signer.clone(),
            PasswordPolicy::new(12),
            PasswordHasher::owasp(),
        )),
        Arc::new(change_password(store)),
    ));
    call(&down, "/password-reset", &json!({ "email": email }))
        .await
        .assert_unavailable("request, refused");
    call(
        &down,
        "/password-reset/verify",
        &json!({"uid": user.uid.as_str(), "token": token}),
    )
    .await
    .assert_unavailable("verify, refused");
    call(
        &down,
        "/password-reset/confirm",
        &json!({"uid": user.uid.as_str(), "token": token, "new_password": STRONG}),
    )
    .await
    .assert_unavailable("confirm, refused");
    call(
        &down,
        "/password-change",
        &json!({"email": email, "old_password": OLD, "new_password": STRONG}),
    )
    .await
    .assert_unavailable("change, refused");
    assert_eq!(rig.stored_hash(&user.uid).await, before);
    assert!(rig.outbox_items().await.is_empty());
    rig.verify(&user.uid, &token)
        .await
        .assert_status(200, "verify");
    rig.confirm(&user.uid, &token, STRONG)
        .await
        .assert_status(200, "confirm");
}

/// `POST /password-change` over `store`, failures limited as by default.
fn change_password(store: Arc<DynamoStore>) -> ChangePassword {
    ChangePassword::new(
        store.clone(),
        store,
        Arc::new(SystemClock),
        PasswordPolicy::new(12),
        PasswordHasher::owasp(),
        ChangeLimits {
            failures: RateLimit::parse("5/15m").expect("limit"),
            per_ip: RateLimit::parse("1000/1m").expect("limit"),
        },
    )
}

#[tokio::test]
async fn a_reset_request_whose_outbox_write_fails_is_a_503_not_a_202() {
    let rig = Rig::start().await;
    let email = unique_address("outbox");
    rig.add_user(&email).await;
    for fault in [Fault::INTERNAL_ERROR, Fault::THROTTLING, Fault::Drop] {
        // The rate-limit counter is written; the outbox item is not.
        rig.dynamodb_proxy.set_for(PUT_ITEM, fault);
        rig.request_reset(&email)
            .await
            .assert_unavailable(&format!("outbox write, {fault:?}"));
        rig.dynamodb_proxy.clear();
        assert!(rig.outbox_items().await.is_empty(), "{fault:?}");
    }
    assert!(rig.dynamodb_proxy.faulted() >= 3);
    rig.request_reset(&email)
        .await
        .assert_status(202, "request");
    assert_eq!(rig.outbox_items().await.len(), 1);
}

#[tokio::test]
async fn a_failed_change_write_is_a_503_changes_nothing_and_is_not_counted_as_a_failure() {
    let rig = Rig::start().await;
    let email = unique_address("change");
    let user = rig.add_user(&email).await;
    let before = rig.stored_hash(&user.uid).await;
    let body = json!({"email": email, "old_password": OLD, "new_password": STRONG});
    // More faulted attempts than the account's failure limit (5): each is forgiven, or the
    // last attempt below would be a 429.
    for fault in [
        Fault::INTERNAL_ERROR,
        Fault::THROTTLING,
        Fault::THROUGHPUT_EXCEEDED,
    ]
    .repeat(2)
    {
        rig.dynamodb_proxy.set_for(TRANSACT_WRITE, fault);
        let faulted = rig.dynamodb_proxy.faulted();
        rig.post("/password-change", &body)
            .await
            .assert_unavailable(&format!("change write, {fault:?}"));
        assert!(rig.dynamodb_proxy.faulted() > faulted, "{fault:?} injected");
        rig.dynamodb_proxy.clear();
        assert_eq!(rig.stored_hash(&user.uid).await, before, "{fault:?}");
        assert!(rig.outbox_items().await.is_empty(), "no notice, {fault:?}");
    }
    rig.post("/password-change", &body)
        .await
        .assert_status(200, "change once DynamoDB is back");
    assert_eq!(rig.outbox_items().await.len(), 1, "exactly one notice");
    assert!(
        PasswordHasher::owasp()
            .verify(
                SecretString::from(STRONG),
                Some(rig.stored_hash(&user.uid).await)
            )
            .await
            .expect("verify")
    );
}

#[tokio::test]
async fn a_failed_password_write_is_a_503_changes_nothing_and_the_token_still_works() {
    let rig = Rig::start().await;
    let email = unique_address("write");
    let user = rig.add_user(&email).await;
    let token = rig.token_for(&user);
    let before = rig.stored_hash(&user.uid).await;
    for fault in [
        Fault::INTERNAL_ERROR,
        Fault::THROTTLING,
        Fault::THROUGHPUT_EXCEEDED,
        Fault::Hang,
    ] {
        // Reads work, so the token checks out and the new password is hashed; then the
        // conditional write fails.
        rig.dynamodb_proxy.set_for(TRANSACT_WRITE, fault);
        let faulted = rig.dynamodb_proxy.faulted();
        rig.confirm(&user.uid, &token, STRONG)
            .await
            .assert_unavailable(&format!("password write, {fault:?}"));
        assert!(rig.dynamodb_proxy.faulted() > faulted, "{fault:?} injected");
        rig.dynamodb_proxy.clear();
        assert_eq!(rig.stored_hash(&user.uid).await, before, "{fault:?}");
        assert!(rig.outbox_items().await.is_empty(), "no notice, {fault:?}");
        rig.verify(&user.uid, &token)
            .await
            .assert_status(200, &format!("verify after {fault:?}"));
    }
    rig.confirm(&user.uid, &token, STRONG)
        .await
        .assert_status(200, "confirm once DynamoDB is back");
    assert_eq!(rig.outbox_items().await.len(), 1, "exactly one notice");
    assert!(
        PasswordHasher::owasp()
            .verify(
                SecretString::from(STRONG),
                Some(rig.stored_hash(&user.uid).await)
            )
            .await
            .expect("verify")
    );
}

// ---------------------------------------------------------------------------------------
// A crash between hashing and the conditional write.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_between_hashing_and_the_conditional_write_loses_nothing() {
    let rig = Rig::start().await;
    let email = unique_address("crash");
    let user = rig.add_user(&email).await;
    let token = rig.token_for(&user);
    let before = rig.stored_hash(&user.uid).await;

    // Hold the password write in flight, then kill the confirm that sent it.
    rig.dynamodb_proxy.set_for(TRANSACT_WRITE, Fault::Hang);
    let api = rig.api.clone();
    let request = http::Request::builder()
        .method("POST")
        .uri("/password-reset/confirm")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"uid": user.uid.as_str(), "token": token, "new_password": STRONG}).to_string(),
        ))
        .expect("a request");
    let confirm = tokio::spawn(async move { api.oneshot(request).await });
    rig.dynamodb_proxy
        .wait_until("the password write is held", Duration::from_secs(20), |p| {
            p.held() == 1
        })
        .await;
    confirm.abort();
    assert!(
        confirm.await.is_err_and(|e| e.is_cancelled()),
        "the confirm died before it had an answer"
    );
    // The dead caller's connection closes; its write never reaches DynamoDB.
    rig.dynamodb_proxy
        .wait_until(
            "the held write is abandoned",
            Duration::from_secs(10),
            |p| p.abandoned() == 1,
        )
        .await;
    rig.dynamodb_proxy.clear();

    assert_eq!(rig.stored_hash(&user.uid).await, before, "hash unchanged");
    assert!(rig.outbox_items().await.is_empty(), "no notice written");
    assert!(
        PasswordHasher::owasp()
            .verify(SecretString::from(OLD), Some(before.clone()))
            .await
            .expect("verify"),
        "the old password still works"
    );
    rig.verify(&user.uid, &token)
        .await
        .assert_status(200, "the token still verifies");
    rig.confirm(&user.uid, &token, STRONG)
        .await
        .assert_status(200, "a fresh confirm lands");
    assert_ne!(rig.stored_hash(&user.uid).await, before);
    assert_eq!(rig.outbox_items().await.len(), 1, "exactly one notice");
    rig.confirm(&user.uid, &token, "another strong passphrase 9")
        .await
        .assert_status(400, "the token is now spent");
}

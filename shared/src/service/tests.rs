//! The use cases against the in-memory adapters.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::*;
use crate::adapters::memory::{ManualClock, MemoryRateLimiter, MemoryStore, RecordingMailer};
use crate::domain::{EmailAddress, PasswordHash, User};
use crate::mail::LinkTemplate;
use crate::ports::InsertOutcome;
use crate::token::TokenKeys;

const START: i64 = 1_800_000_000;
const STRONG: &str = "violin kettle mango quartz";

struct World {
    store: Arc<MemoryStore>,
    mailer: Arc<RecordingMailer>,
    clock: Arc<ManualClock>,
    request: RequestReset,
    deliverer: SendResetEmail,
    confirm: ConfirmReset,
}

fn world_with(limits: Limits) -> World {
    let store = Arc::new(MemoryStore::new());
    let mailer = Arc::new(RecordingMailer::new());
    let clock = Arc::new(ManualClock::at(START));
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    let links =
        LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}").expect("valid");
    World {
        request: RequestReset::new(
            store.clone(),
            Arc::new(MemoryRateLimiter::new()),
            clock.clone(),
            limits,
        ),
        deliverer: SendResetEmail::new(
            store.clone(),
            mailer.clone(),
            clock.clone(),
            signer.clone(),
            MailComposer::new("Acme", links, 3600),
        ),
        confirm: ConfirmReset::new(
            store.clone(),
            clock.clone(),
            signer,
            PasswordPolicy::default(),
            PasswordHasher::owasp(),
        ),
        store,
        mailer,
        clock,
    }
}

fn world() -> World {
    world_with(Limits {
        per_email: None,
        per_ip: None,
    })
}

impl World {
    async fn add_user(&self, email: &str, active: bool) -> User {
        let hash = PasswordHasher::owasp()
            .hash(SecretString::from("old password for tests"))
            .await
            .expect("hash");
        self.add_user_with_hash(email, active, Some(hash)).await
    }

    async fn add_user_with_hash(
        &self,
        email: &str,
        active: bool,
        hash: Option<PasswordHash>,
    ) -> User {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse(email).expect("valid"),
            password_hash: hash,
            active,
            credential_version: 0,
            locale: None,
        };
        assert_eq!(
            self.store.insert(&user).await.expect("insert"),
            InsertOutcome::Inserted
        );
        user
    }

    /// Runs every queued job, as the worker would.
    async fn drain(&self) -> Vec<Delivery> {
        let mut done = Vec::new();
        while let Some(job) = self.store.try_next_job() {
            done.push(self.deliverer.deliver(&job).await.expect("delivered"));
        }
        done
    }

    /// Requests a reset for `email`, delivers it, and returns the mailed link's uid and
    /// token.
    async fn reset_link(&self, email: &str) -> (String, String) {
        self.request.request(email, None).await.expect("accepted");
        self.drain().await;
        self.last_link()
    }

    /// The password hash stored for `user` now.
    async fn stored_hash(&self, user: &User) -> Option<PasswordHash> {
        self.store
            .find_by_uid(&user.uid)
            .await
            .expect("read")
            .expect("exists")
            .password_hash
    }

    /// The uid and token from the last mail's link.
    fn last_link(&self) -> (String, String) {
        let sent = self.mailer.sent();
        let mail = &sent.last().expect("a mail was sent").mail;
        let fragment = mail.text.split("#uid=").nth(1).expect("link in mail");
        let fragment = fragment.split_whitespace().next().expect("link");
        let (uid, token) = fragment.split_once("&token=").expect("token in link");
        (uid.to_owned(), token.to_owned())
    }
}

#[tokio::test]
async fn a_request_for_a_known_address_mails_a_working_link_to_the_stored_address() {
    let w = world();
    let user = w.add_user("Mike@Example.org", true).await;
    w.request
        .request("mike@example.ORG", None)
        .await
        .expect("accepted");
    assert_eq!(w.drain().await, vec![Delivery::Sent]);
    let sent = w.mailer.sent();
    assert_eq!(sent[0].mail.to.as_str(), "Mike@Example.org");
    let (uid, token) = w.last_link();
    assert_eq!(uid, user.uid.as_str());
    let verified = w.confirm.verify(&uid, &token).await.expect("valid");
    assert_eq!(verified.expires_at, START + 3600);
}

#[tokio::test]
async fn missing_inactive_and_unusable_accounts_are_queued_alike_and_mailed_nothing() {
    let w = world();
    w.add_user("inactive@example.org", false).await;
    w.add_user_with_hash("unusable@example.org", true, Some(PasswordHash::new("!")))
        .await;
    w.add_user_with_hash("nohash@example.org", true, None).await;
    for email in [
        "missing@example.org",
        "inactive@example.org",
        "unusable@example.org",
        "nohash@example.org",
    ] {
        w.request.request(email, None).await.expect("accepted");
    }
    // The request path did the same thing for each: one job apiece.
    assert_eq!(w.store.pending_jobs(), 4);
    assert_eq!(w.drain().await, vec![Delivery::Skipped; 4]);
    assert!(w.mailer.sent().is_empty());
}

#[tokio::test]
async fn a_look_alike_address_is_mailed_at_the_stored_address_or_not_at_all() {
    let w = world();
    w.add_user("mike@example.org", true).await;
    w.request
        .request("ＭＩＫＥ@example.org", None)
        .await
        .expect("accepted");
    w.request
        .request("m\u{131}ke@example.org", None)
        .await
        .expect("accepted");
    assert_eq!(w.drain().await, vec![Delivery::Sent, Delivery::Skipped]);
    let sent = w.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].mail.to.as_str(), "mike@example.org");
}

#[tokio::test]
async fn malformed_addresses_are_refused_before_anything_is_queued() {
    let w = world();
    for bad in ["nope", "a@b.org\r\nBcc: x@y.org", ""] {
        assert!(matches!(
            w.request.request(bad, None).await,
            Err(RequestError::InvalidEmail)
        ));
    }
    assert_eq!(w.store.pending_jobs(), 0);
}

#[tokio::test]
async fn confirm_replaces_the_hash_and_queues_the_changed_notice() {
    let w = world();
    let user = w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    w.confirm
        .confirm(&uid, &token, STRONG)
        .await
        .expect("confirmed");
    let stored = w.stored_hash(&user).await;
    assert!(
        PasswordHasher::owasp()
            .verify(SecretString::from(STRONG), stored)
            .await
            .expect("verify")
    );
    assert_eq!(w.drain().await, vec![Delivery::Sent]);
    let notice = &w.mailer.sent()[1].mail;
    assert!(notice.subject.contains("changed"));
    assert!(!notice.text.contains(&token));
}

#[tokio::test]
async fn confirm_with_a_used_token_is_rejected() {
    let w = world();
    w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    w.confirm
        .confirm(&uid, &token, STRONG)
        .await
        .expect("first use");
    let again = w
        .confirm
        .confirm(&uid, &token, "another strong passphrase here")
        .await;
    assert!(matches!(
        again,
        Err(ConfirmError::Token(TokenRejection::Invalid))
    ));
    assert!(matches!(
        w.confirm.verify(&uid, &token).await,
        Err(VerifyError::Token(TokenRejection::Invalid))
    ));
}

#[tokio::test]
async fn every_outstanding_token_dies_when_one_is_used() {
    let w = world();
    w.add_user("a@example.org", true).await;
    w.request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    w.drain().await;
    let first = w.last_link();
    w.clock.advance(Duration::from_secs(5));
    w.request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    w.drain().await;
    let second = w.last_link();
    assert_ne!(first.1, second.1);
    w.confirm
        .confirm(&second.0, &second.1, STRONG)
        .await
        .expect("confirmed");
    assert!(matches!(
        w.confirm.verify(&first.0, &first.1).await,
        Err(VerifyError::Token(TokenRejection::Invalid))
    ));
}

#[tokio::test]
async fn a_weak_password_is_refused_with_reasons_and_the_token_still_works() {
    let w = world();
    w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    match w.confirm.confirm(&uid, &token, "password").await {
        Err(ConfirmError::WeakPassword { reasons }) => assert!(!reasons.is_empty()),
        other => panic!("expected a weak password, got {other:?}"),
    }
    w.confirm
        .confirm(&uid, &token, STRONG)
        .await
        .expect("token still usable");
}

#[tokio::test]
async fn a_bad_token_with_a_weak_password_is_an_invalid_token() {
    let w = world();
    let user = w.add_user("a@example.org", true).await;
    let result = w.confirm.confirm(user.uid.as_str(), "garbage", "x").await;
    assert!(matches!(
        result,
        Err(ConfirmError::Token(TokenRejection::Invalid))
    ));
}

#[tokio::test]
async fn an_expired_token_is_expired_and_changes_nothing() {
    let w = world();
    let user = w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    w.clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        w.confirm.verify(&uid, &token).await,
        Err(VerifyError::Token(TokenRejection::Expired))
    ));
    assert!(matches!(
        w.confirm.confirm(&uid, &token, STRONG).await,
        Err(ConfirmError::Token(TokenRejection::Expired))
    ));
    assert_eq!(w.stored_hash(&user).await, user.password_hash);
}

#[tokio::test]
async fn a_token_for_one_user_is_invalid_for_another() {
    let w = world();
    w.add_user("a@example.org", true).await;
    let other = w.add_user("b@example.org", true).await;
    w.request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    w.drain().await;
    let (_, token) = w.last_link();
    assert!(matches!(
        w.confirm.verify(other.uid.as_str(), &token).await,
        Err(VerifyError::Token(TokenRejection::Invalid))
    ));
}

#[tokio::test]
async fn verify_changes_nothing_however_often_it_runs() {
    let w = world();
    let user = w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    for _ in 0..5 {
        w.confirm.verify(&uid, &token).await.expect("still valid");
    }
    assert_eq!(w.store.pending_jobs(), 0);
    assert_eq!(w.stored_hash(&user).await, user.password_hash);
    w.confirm
        .confirm(&uid, &token, STRONG)
        .await
        .expect("still usable");
}

#[tokio::test]
async fn with_events_a_confirm_queues_the_event_beside_the_notice_and_without_none() {
    for events in [false, true] {
        let mut w = world();
        if events {
            w.confirm = w.confirm.queueing_events(true);
        }
        let user = w.add_user("a@example.org", true).await;
        let (uid, token) = w.reset_link("a@example.org").await;
        w.confirm
            .confirm(&uid, &token, STRONG)
            .await
            .expect("confirmed");
        let mut jobs = Vec::new();
        while let Some(job) = w.store.try_next_job() {
            jobs.push(job);
        }
        let notice = OutboxJob::PasswordChanged {
            uid: user.uid.clone(),
            changed_at: START,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        };
        let event = OutboxJob::PasswordChangedEvent(crate::ports::PasswordChangedEvent {
            uid: user.uid.clone(),
            changed_at: START,
            credential_version: 1,
        });
        if events {
            assert_eq!(jobs, vec![notice, event]);
        } else {
            assert_eq!(jobs, vec![notice]);
        }
    }
}

#[tokio::test]
async fn of_twenty_concurrent_confirms_with_one_token_exactly_one_succeeds() {
    let w = Arc::new(world());
    w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (w, uid, token) = (w.clone(), uid.clone(), token.clone());
            tokio::spawn(async move {
                w.confirm
                    .confirm(&uid, &token, &format!("{STRONG} {i}"))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("joined") {
            Ok(()) => wins += 1,
            Err(ConfirmError::Token(TokenRejection::Invalid)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    // And exactly one notice, carrying the version the one change wrote.
    assert_eq!(w.store.pending_jobs(), 1);
    match w.store.try_next_job() {
        Some(OutboxJob::PasswordChanged {
            credential_version, ..
        }) => assert_eq!(credential_version, 1),
        other => panic!("expected the notice, got {other:?}"),
    }
    let stored = w
        .store
        .find_by_uid(&UserId::parse(&uid).expect("uid"))
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.credential_version, 1, "+1 exactly once");
}

#[tokio::test]
async fn the_per_address_limit_is_silent_and_the_same_for_missing_addresses() {
    let w = world_with(Limits {
        per_email: RateLimit::parse("3/15m").expect("valid"),
        per_ip: None,
    });
    w.add_user("a@example.org", true).await;
    for email in ["a@example.org", "missing@example.org"] {
        for _ in 0..5 {
            w.request
                .request(email, None)
                .await
                .expect("always accepted");
        }
    }
    // Every request writes its job, limited or not (the same store work, so no timing
    // oracle); the worker drops the limited ones without a word.
    assert_eq!(w.store.pending_jobs(), 10);
    let done = w.drain().await;
    assert_eq!(done.iter().filter(|d| **d == Delivery::Sent).count(), 3);
    assert_eq!(w.mailer.sent().len(), 3);
    w.clock.advance(Duration::from_secs(900));
    w.request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    assert_eq!(w.store.pending_jobs(), 1);
}

#[tokio::test]
async fn the_per_ip_limit_answers_rate_limited_with_the_seconds_to_wait() {
    let w = world_with(Limits {
        per_email: None,
        per_ip: RateLimit::parse("2/1m").expect("valid"),
    });
    let ip: IpAddr = "203.0.113.7".parse().expect("ip");
    w.request
        .request("x@example.org", Some(ip))
        .await
        .expect("1");
    w.request
        .request("y@example.org", Some(ip))
        .await
        .expect("2");
    match w.request.request("z@example.org", Some(ip)).await {
        Err(RequestError::RateLimited { retry_after_secs }) => {
            assert!((1..=60).contains(&retry_after_secs))
        }
        other => panic!("expected rate limited, got {other:?}"),
    }
    // Another client is unaffected.
    w.request
        .request("z@example.org", Some("203.0.113.8".parse().expect("ip")))
        .await
        .expect("other ip");
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64() {
    let w = world_with(Limits {
        per_email: None,
        per_ip: RateLimit::parse("1/1m").expect("valid"),
    });
    w.request
        .request(
            "x@example.org",
            Some("2001:db8:1:2::1".parse().expect("ip")),
        )
        .await
        .expect("first");
    assert!(matches!(
        w.request
            .request(
                "x@example.org",
                Some("2001:db8:1:2:ffff::9".parse().expect("ip"))
            )
            .await,
        Err(RequestError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn a_store_outage_is_an_error_not_a_missing_user() {
    let w = world();
    let user = w.add_user("a@example.org", true).await;
    let (uid, token) = w.reset_link("a@example.org").await;
    w.store.set_unavailable(true);
    assert!(matches!(
        w.request.request("a@example.org", None).await,
        Err(RequestError::Store(StoreError::Transient(_)))
    ));
    assert!(matches!(
        w.confirm.verify(&uid, &token).await,
        Err(VerifyError::Store(_))
    ));
    assert!(matches!(
        w.confirm.confirm(&uid, &token, STRONG).await,
        Err(ConfirmError::Store(_))
    ));
    w.store.set_unavailable(false);
    // Nothing was half-written: the old hash stands and the token still works.
    assert_eq!(w.stored_hash(&user).await, user.password_hash);
    w.confirm
        .confirm(&uid, &token, STRONG)
        .await
        .expect("usable after the outage");
}

#[tokio::test]
async fn a_failing_mailer_makes_the_job_retry_instead_of_vanishing() {
    let w = world();
    w.add_user("a@example.org", true).await;
    w.request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    let job = w.store.try_next_job().expect("queued");
    w.mailer.fail_next(1);
    assert!(matches!(
        w.deliverer.deliver(&job).await,
        Err(DeliveryError::Transient(_))
    ));
    assert_eq!(
        w.deliverer.deliver(&job).await.expect("second try"),
        Delivery::Sent
    );
    assert_eq!(w.mailer.sent().len(), 1);
}

#[tokio::test]
async fn the_worker_retries_until_the_mailer_recovers() {
    use crate::delivery::worker::{WorkerSettings, run_outbox_worker};
    let w = world();
    w.add_user("a@example.org", true).await;
    w.mailer.fail_next(3);
    let settings = WorkerSettings {
        pickup_delay: Duration::ZERO..Duration::ZERO,
        first_retry: Duration::from_millis(5),
        max_retry: Duration::from_millis(20),
        ..WorkerSettings::default()
    };
    let World {
        store,
        mailer,
        deliverer,
        request,
        ..
    } = w;
    let worker = tokio::spawn(run_outbox_worker(
        store.clone(),
        Arc::new(deliverer),
        settings,
    ));
    request
        .request("a@example.org", None)
        .await
        .expect("accepted");
    let mut waited = 0;
    while mailer.sent().is_empty() && waited < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    worker.abort();
    assert_eq!(mailer.sent().len(), 1);
}

/// Log lines written under `f`, as the fmt layer prints them (every level).
async fn logged_during<F: std::future::Future<Output = ()>>(f: F) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    f.await;
    drop(guard);
    let bytes = buffer.0.lock().expect("buffer").clone();
    String::from_utf8(bytes).expect("utf-8 logs")
}

#[tokio::test]
async fn requests_without_a_source_address_share_one_bucket_and_say_so_once() {
    let w = world_with(Limits {
        per_email: None,
        per_ip: RateLimit::parse("2/1m").expect("limit"),
    });
    let logs = logged_during(async {
        for i in 0..2 {
            w.request
                .request(&format!("u{i}@example.org"), None)
                .await
                .expect("accepted");
        }
        // One shared bucket: the third unknown source is limited, a known one is not.
        assert!(matches!(
            w.request.request("u2@example.org", None).await,
            Err(RequestError::RateLimited { .. })
        ));
        let known = "192.0.2.7".parse().expect("ip");
        w.request
            .request("u3@example.org", Some(known))
            .await
            .expect("accepted");
    })
    .await;
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("no_source_ip"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("WARN"), "{logs}");
}

// --- POST /password-change ---------------------------------------------------------------

const CURRENT: &str = "old password for tests";

impl World {
    /// A `ChangePassword` over this world's users and clock, with its own limiter.
    fn changer(&self, limits: ChangeLimits) -> ChangePassword {
        ChangePassword::new(
            self.store.clone(),
            Arc::new(MemoryRateLimiter::new()),
            self.clock.clone(),
            PasswordPolicy::default(),
            PasswordHasher::owasp(),
            limits,
        )
    }

    async fn stored(&self, user: &User) -> User {
        self.store
            .find_by_uid(&user.uid)
            .await
            .expect("read")
            .expect("exists")
    }
}

fn no_change_limits() -> ChangeLimits {
    ChangeLimits {
        failures: None,
        per_ip: None,
    }
}

fn attempt<'a>(email: &'a str, old: &'a str, new: &'a str) -> ChangeAttempt<'a> {
    ChangeAttempt {
        email,
        old_password: old,
        new_password: new,
        client_ip: None,
        subject: None,
        locale: crate::i18n::Locale::En,
    }
}

async fn signs_in(hash: Option<PasswordHash>, password: &str) -> bool {
    PasswordHasher::owasp()
        .verify(SecretString::from(password), hash)
        .await
        .expect("verify")
}

#[tokio::test]
async fn a_change_replaces_the_hash_moves_the_version_queues_the_notice_and_kills_links() {
    let w = world();
    let change = w.changer(no_change_limits()).queueing_events(true);
    let user = w.add_user("Ann@Example.org", true).await;
    let (uid, token) = w.reset_link("ann@example.org").await;
    change
        .change(attempt("ann@example.ORG", CURRENT, STRONG))
        .await
        .expect("changed");
    let stored = w.stored(&user).await;
    assert!(signs_in(stored.password_hash.clone(), STRONG).await);
    assert!(!signs_in(stored.password_hash, CURRENT).await);
    assert_eq!(stored.credential_version, 1);
    // The notice and the event, each carrying the version written.
    let jobs: Vec<_> = std::iter::from_fn(|| w.store.try_next_job()).collect();
    assert!(
        matches!(
            &jobs[..],
            [
                OutboxJob::PasswordChanged {
                    credential_version: 1,
                    ..
                },
                OutboxJob::PasswordChangedEvent(PasswordChangedEvent {
                    credential_version: 1,
                    ..
                })
            ]
        ),
        "{jobs:?}"
    );
    // The link mailed before the change is dead.
    assert!(matches!(
        w.confirm.verify(&uid, &token).await,
        Err(VerifyError::Token(TokenRejection::Invalid))
    ));
}

#[tokio::test]
async fn wrong_password_missing_and_inactive_accounts_are_one_refusal_and_change_nothing() {
    let w = world();
    let change = w.changer(no_change_limits());
    let active = w.add_user("ann@example.org", true).await;
    let inactive = w.add_user("ivy@example.org", false).await;
    for (email, old) in [
        ("ann@example.org", "not the password at all"),
        ("nobody@example.org", CURRENT),
        ("ivy@example.org", CURRENT),
    ] {
        assert!(
            matches!(
                change.change(attempt(email, old, STRONG)).await,
                Err(ChangeError::InvalidCredentials)
            ),
            "{email}"
        );
    }
    for user in [&active, &inactive] {
        let stored = w.stored(user).await;
        assert_eq!(stored.password_hash, user.password_hash);
        assert_eq!(stored.credential_version, 0);
    }
    assert_eq!(w.store.pending_jobs(), 0);
}

#[tokio::test]
async fn a_weak_or_unchanged_new_password_is_refused_with_reasons_and_changes_nothing() {
    let w = world();
    let change = w.changer(no_change_limits());
    let user = w.add_user("ann@example.org", true).await;
    // The current password again, also typed in a compatibility form NFKC folds to it.
    for new in [CURRENT, "\u{FF4F}ld password for tests", "123"] {
        match change
            .change(attempt("ann@example.org", CURRENT, new))
            .await
        {
            Err(ChangeError::WeakPassword { reasons }) => assert!(!reasons.is_empty()),
            other => panic!("{new:?}: expected weak_password, got {other:?}"),
        }
    }
    match change
        .change(attempt("ann@example.org", CURRENT, CURRENT))
        .await
    {
        Err(ChangeError::WeakPassword { reasons }) => {
            assert_eq!(reasons, vec![crate::policy::Reason::SameAsCurrent]);
        }
        other => panic!("expected weak_password, got {other:?}"),
    }
    assert_eq!(w.stored(&user).await.password_hash, user.password_hash);
    assert_eq!(w.store.pending_jobs(), 0);
}

#[tokio::test]
async fn failures_are_limited_per_account_alike_for_missing_ones_and_a_success_clears_them() {
    let w = world();
    let limit = RateLimit::parse("3/15m").expect("valid");
    let change = w.changer(ChangeLimits {
        failures: limit,
        per_ip: None,
    });
    w.add_user("ann@example.org", true).await;
    // One success first: it does not count.
    change
        .change(attempt("ann@example.org", CURRENT, STRONG))
        .await
        .expect("changed");
    for email in ["ann@example.org", "nobody@example.org"] {
        for _ in 0..3 {
            assert!(matches!(
                change
                    .change(attempt(email, "wrong password here", CURRENT))
                    .await,
                Err(ChangeError::InvalidCredentials)
            ));
        }
        // Past the limit even the right password is refused, with the seconds to wait.
        match change.change(attempt(email, STRONG, CURRENT)).await {
            Err(ChangeError::RateLimited { retry_after_secs }) => {
                assert!((1..=900).contains(&retry_after_secs));
            }
            other => panic!("{email}: expected rate_limited, got {other:?}"),
        }
    }
    // The next window: the right password works, and clears the count.
    w.clock.advance(Duration::from_secs(900));
    for _ in 0..2 {
        assert!(matches!(
            change
                .change(attempt("ann@example.org", "wrong password here", CURRENT))
                .await,
            Err(ChangeError::InvalidCredentials)
        ));
    }
    change
        .change(attempt("ann@example.org", STRONG, CURRENT))
        .await
        .expect("changed");
    for _ in 0..3 {
        assert!(matches!(
            change
                .change(attempt("ann@example.org", "wrong password here", STRONG))
                .await,
            Err(ChangeError::InvalidCredentials)
        ));
    }
}

#[tokio::test]
async fn failures_are_limited_per_ip_and_successes_do_not_count() {
    let w = world();
    let change = w.changer(ChangeLimits {
        failures: None,
        per_ip: RateLimit::parse("2/1m").expect("valid"),
    });
    w.add_user("ann@example.org", true).await;
    let ip: IpAddr = "192.0.2.7".parse().expect("ip");
    let from_ip = |email, old, new| ChangeAttempt {
        client_ip: Some(ip),
        ..attempt(email, old, new)
    };
    // Three successes in a row are no failures.
    for (old, new) in [(CURRENT, STRONG), (STRONG, CURRENT), (CURRENT, STRONG)] {
        change
            .change(from_ip("ann@example.org", old, new))
            .await
            .expect("changed");
    }
    for email in ["a@example.org", "b@example.org"] {
        assert!(matches!(
            change.change(from_ip(email, "wrong", STRONG)).await,
            Err(ChangeError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        change
            .change(from_ip("ann@example.org", STRONG, CURRENT))
            .await,
        Err(ChangeError::RateLimited { .. })
    ));
    // Another client is not affected.
    change
        .change(attempt("ann@example.org", STRONG, CURRENT))
        .await
        .expect("changed");
}

#[tokio::test]
async fn of_twenty_concurrent_changes_with_the_right_password_exactly_one_lands() {
    let w = Arc::new(world());
    let change = Arc::new(w.changer(ChangeLimits {
        failures: RateLimit::parse("5/15m").expect("valid"),
        per_ip: None,
    }));
    let user = w.add_user("ann@example.org", true).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let change = change.clone();
            tokio::spawn(async move {
                let new = format!("{STRONG} {i}");
                change
                    .change(attempt("ann@example.org", CURRENT, &new))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("joined") {
            Ok(()) => wins += 1,
            // Lost the race, or refused before the password was looked at.
            Err(ChangeError::InvalidCredentials | ChangeError::RateLimited { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        w.stored(&user).await.credential_version,
        1,
        "+1 exactly once"
    );
    assert_eq!(w.store.pending_jobs(), 1, "one notice");
}

#[tokio::test]
async fn with_a_checked_jwt_only_the_subjects_own_account_changes() {
    let w = world();
    let change = w.changer(no_change_limits());
    let user = w.add_user("ann@example.org", true).await;
    let someone_else = ChangeAttempt {
        subject: Some("another-user"),
        ..attempt("ann@example.org", CURRENT, STRONG)
    };
    assert!(matches!(
        change.change(someone_else).await,
        Err(ChangeError::InvalidCredentials)
    ));
    let own = ChangeAttempt {
        subject: Some(user.uid.as_str()),
        ..attempt("ann@example.org", CURRENT, STRONG)
    };
    change.change(own).await.expect("changed");
    // A key that is not URL-safe is `~…` in links; the identity provider's subject is the
    // key itself.
    let hash = PasswordHasher::owasp()
        .hash(SecretString::from(CURRENT))
        .await
        .expect("hash");
    let keyed = User {
        uid: UserId::from_key("bea.b@example.org").expect("key"),
        email: EmailAddress::parse("bea@example.org").expect("valid"),
        password_hash: Some(hash),
        active: true,
        credential_version: 0,
        locale: None,
    };
    assert!(keyed.uid.as_str().starts_with('~'));
    w.store.insert(&keyed).await.expect("insert");
    let by_key = ChangeAttempt {
        subject: Some("bea.b@example.org"),
        ..attempt("bea@example.org", CURRENT, STRONG)
    };
    change.change(by_key).await.expect("changed by the raw key");
}

#[tokio::test]
async fn a_malformed_address_is_refused_before_anything_is_counted() {
    let w = world();
    let change = w.changer(ChangeLimits {
        failures: None,
        per_ip: RateLimit::parse("1/1m").expect("valid"),
    });
    for _ in 0..3 {
        assert!(matches!(
            change
                .change(attempt("a@b.org\r\nBcc: x@y.org", CURRENT, STRONG))
                .await,
            Err(ChangeError::InvalidEmail)
        ));
    }
    assert!(matches!(
        change
            .change(attempt("nobody@example.org", CURRENT, STRONG))
            .await,
        Err(ChangeError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn the_mails_speak_the_language_the_request_asked_for_unless_the_user_has_one() {
    let w = world();
    let user = w.add_user("lena@example.org", true).await;
    w.request
        .ask(ResetAsk {
            email: "lena@example.org",
            client_ip: None,
            locale: crate::i18n::Locale::De,
            return_to: None,
        })
        .await
        .expect("accepted");
    w.drain().await;
    let reset = w.mailer.sent().last().expect("mailed").mail.clone();
    assert_eq!(reset.subject, "Ihr Acme-Passwort zurücksetzen");
    assert!(
        reset.text.contains("läuft in 1 Stunde ab"),
        "{}",
        reset.text
    );

    // The confirm's notice speaks the confirm's language.
    let (uid, token) = w.last_link();
    w.confirm
        .confirm_in(&uid, &token, STRONG, crate::i18n::Locale::Fr)
        .await
        .expect("reset");
    w.drain().await;
    let notice = w.mailer.sent().last().expect("mailed").mail.clone();
    assert!(
        notice.subject.contains("a été modifié"),
        "{}",
        notice.subject
    );

    // A language stored on the user wins over the request's.
    let stored = w
        .store
        .find_by_uid(&user.uid)
        .await
        .expect("read")
        .expect("exists");
    let spanish = User {
        uid: UserId::generate(),
        email: EmailAddress::parse("sofia@example.org").expect("valid"),
        locale: Some(crate::i18n::Locale::Es),
        ..stored
    };
    assert_eq!(
        w.store.insert(&spanish).await.expect("insert"),
        InsertOutcome::Inserted
    );
    w.request
        .ask(ResetAsk {
            email: "sofia@example.org",
            client_ip: None,
            locale: crate::i18n::Locale::De,
            return_to: None,
        })
        .await
        .expect("accepted");
    w.drain().await;
    let mail = w.mailer.sent().last().expect("mailed").mail.clone();
    assert_eq!(mail.to.as_str(), "sofia@example.org");
    assert_eq!(mail.subject, "Restablece tu contraseña de Acme");
}

#[tokio::test]
async fn a_weak_password_gives_reasons_with_stable_codes() {
    let w = world();
    w.add_user("codes@example.org", true).await;
    let (uid, token) = w.reset_link("codes@example.org").await;
    let Err(ConfirmError::WeakPassword { reasons }) =
        w.confirm.confirm(&uid, &token, "12345").await
    else {
        panic!("a weak password is refused");
    };
    let codes: Vec<&str> = reasons.iter().map(|r| r.code()).collect();
    assert_eq!(codes, ["too_short", "all_digits"]);
}

#[tokio::test]
async fn return_to_must_be_allow_listed_and_rides_in_the_link() {
    let mut w = world();
    w.request = std::mem::replace(
        &mut w.request,
        RequestReset::new(
            w.store.clone(),
            Arc::new(MemoryRateLimiter::new()),
            w.clock.clone(),
            Limits {
                per_email: None,
                per_ip: None,
            },
        ),
    )
    .allowing_return_to(vec!["https://app.example/signin".into()]);
    w.add_user("back@example.org", true).await;
    let ask = |return_to| ResetAsk {
        email: "back@example.org",
        client_ip: None,
        locale: crate::i18n::Locale::En,
        return_to,
    };
    for bad in [
        "https://evil.example/signin",
        "https://app.example/signin/",
        "https://app.example/signin?x",
        "HTTPS://APP.EXAMPLE/SIGNIN",
        "",
    ] {
        assert!(
            matches!(
                w.request.ask(ask(Some(bad))).await,
                Err(RequestError::InvalidReturnTo)
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        w.store.pending_jobs(),
        0,
        "a refused request queues nothing"
    );
    w.request
        .ask(ask(Some("https://app.example/signin")))
        .await
        .expect("accepted");
    w.drain().await;
    let mail = w.mailer.sent().last().expect("mailed").mail.clone();
    assert!(
        mail.text
            .contains("&return_to=https%3A%2F%2Fapp.example%2Fsignin"),
        "{}",
        mail.text
    );
}

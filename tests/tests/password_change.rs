//! Black-box tests of `POST /password-change` on `pwreset serve`: the real binary on a
//! random loopback port, driven over HTTP as a signed-in frontend (or an attacker) would.

use std::sync::Arc;

use pwreset_testkit::dev_server::{DevServer, Reply};
use serde_json::json;

const OLD: &str = "the old password 1";
const STRONG: &str = "violin kettle mango quartz";
const WRONG: &str = "not the password at all";
/// Failures counted, but never reached by tests that are not about the limits.
const ROOMY_LIMITS: [(&str, &str); 2] = [
    ("CHANGE_LIMIT_FAILURES", "100/15m"),
    ("CHANGE_LIMIT_PER_IP", "100/1m"),
];

#[tokio::test]
async fn a_change_replaces_the_password_mails_the_notice_and_kills_outstanding_links() {
    let server = DevServer::start(&ROOMY_LIMITS);
    let uid = server.create_user("Ann@Example.org", OLD, true).await;
    let (_, token) = server.reset_link("ann@example.org").await;

    let changed = server.change_password("ann@example.ORG", OLD, STRONG).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.text, r#"{"status":"password_changed"}"#);
    assert_eq!(changed.header("cache-control"), Some("no-store"));
    assert!(server.login("ann@example.org", STRONG).await);
    assert!(!server.login("ann@example.org", OLD).await);

    // The notice goes to the stored address and carries no token.
    let mail = server.wait_for_mail(2).await;
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[1].to, "Ann@Example.org");
    assert!(mail[1].subject.contains("changed"), "{}", mail[1].subject);
    assert!(!mail[1].text.contains(&token));
    // It says how: not "with a password-reset link", which a change was not.
    assert!(
        mail[1]
            .text
            .contains("by someone who entered the current password"),
        "{}",
        mail[1].text
    );
    assert!(!mail[1].text.contains("reset link"), "{}", mail[1].text);

    // The reset link mailed before the change is dead.
    server
        .verify(&uid, &token)
        .await
        .assert_problem(400, "invalid_token");
    server
        .confirm(&uid, &token, "another fine passphrase")
        .await
        .assert_problem(400, "invalid_token");
    assert!(server.login("ann@example.org", STRONG).await);
}

#[tokio::test]
async fn wrong_password_missing_and_inactive_accounts_get_byte_identical_401s() {
    let server = DevServer::start(&ROOMY_LIMITS);
    server.create_user("ann@example.org", OLD, true).await;
    server.create_user("ivy@example.org", OLD, false).await;
    let wrong = server
        .change_password("ann@example.org", WRONG, STRONG)
        .await;
    let missing = server
        .change_password("nobody@example.org", OLD, STRONG)
        .await;
    let inactive = server.change_password("ivy@example.org", OLD, STRONG).await;
    wrong.assert_problem(401, "invalid_credentials");
    // The addresses differ, the answers do not.
    assert_eq!(wrong.comparable(), missing.comparable());
    assert_eq!(wrong.comparable(), inactive.comparable());
    assert!(server.login("ann@example.org", OLD).await);
    server.settle().await;
    assert!(
        server.mail().await.is_empty(),
        "nothing changed, nobody mailed"
    );
}

#[tokio::test]
async fn weak_and_unchanged_new_passwords_are_422_with_reasons_and_change_nothing() {
    let server = DevServer::start(&ROOMY_LIMITS);
    server.create_user("ann@example.org", OLD, true).await;
    // Too short, the address itself, the current password, and the current password typed
    // in full-width letters (the same password once NFKC-normalised).
    let full_width_old: String = OLD
        .chars()
        .map(|c| match c {
            'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap_or(c),
            other => other,
        })
        .collect();
    for new in ["short", "ann@example.org!!", OLD, full_width_old.as_str()] {
        let reply = server.change_password("ann@example.org", OLD, new).await;
        reply.assert_problem(422, "weak_password");
        let reasons = reply.json["reasons"].as_array().expect("reasons");
        assert!(!reasons.is_empty(), "{new:?}: {}", reply.text);
    }
    let same = server.change_password("ann@example.org", OLD, OLD).await;
    assert!(
        same.json["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("different from your current")),
        "{}",
        same.text
    );
    // A wrong current password with a weak new one is a 401: nothing about the policy.
    server
        .change_password("ann@example.org", WRONG, "short")
        .await
        .assert_problem(401, "invalid_credentials");
    assert!(server.login("ann@example.org", OLD).await);
    server.settle().await;
    assert!(server.mail().await.is_empty());
}

#[tokio::test]
async fn of_twenty_concurrent_changes_with_the_right_password_exactly_one_lands() {
    let server = Arc::new(DevServer::start(&[]));
    server.create_user("ann@example.org", OLD, true).await;
    let attempts = (0..20).map(|i| {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .change_password("ann@example.org", OLD, &format!("{STRONG} {i}"))
                .await
        })
    });
    let replies: Vec<Reply> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let winners: Vec<usize> = (0..20).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        // Lost the race (the password given is no longer the current one), or counted
        // as an attempt past the account's limit before its password was looked at.
        assert!(
            ["invalid_credentials", "rate_limited"].contains(&reply.code()),
            "{}",
            reply.text
        );
    }
    let winner = format!("{STRONG} {}", winners[0]);
    assert!(server.login("ann@example.org", &winner).await);
    // Exactly one notice.
    server.settle().await;
    assert_eq!(server.mail().await.len(), 1);
}

#[tokio::test]
async fn the_failure_limit_answers_429_alike_for_existing_and_missing_accounts() {
    let server = DevServer::start(&[
        ("CHANGE_LIMIT_FAILURES", "3/15m"),
        ("CHANGE_LIMIT_PER_IP", "off"),
    ]);
    server.create_user("ann@example.org", OLD, true).await;
    let mut limited = Vec::new();
    for email in ["ann@example.org", "nobody@example.org"] {
        for _ in 0..3 {
            server
                .change_password(email, WRONG, STRONG)
                .await
                .assert_problem(401, "invalid_credentials");
        }
        // Past the limit the right password is refused too.
        let reply = server.change_password(email, OLD, STRONG).await;
        reply.assert_problem(429, "rate_limited");
        let secs: u64 = reply
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=900).contains(&secs), "{secs}");
        limited.push(reply);
    }
    assert_eq!(limited[0].text, limited[1].text);
    assert!(
        server.login("ann@example.org", OLD).await,
        "nothing changed"
    );
    // Another account is not locked by these.
    server.create_user("bob@example.org", OLD, true).await;
    let bob = server.change_password("bob@example.org", OLD, STRONG).await;
    assert_eq!(bob.status, 200, "{}", bob.text);
}

#[tokio::test]
async fn a_success_clears_the_accounts_failures() {
    let server = DevServer::start(&[
        ("CHANGE_LIMIT_FAILURES", "3/15m"),
        ("CHANGE_LIMIT_PER_IP", "off"),
    ]);
    server.create_user("ann@example.org", OLD, true).await;
    for _ in 0..2 {
        assert_eq!(
            server
                .change_password("ann@example.org", WRONG, STRONG)
                .await
                .status,
            401
        );
    }
    let changed = server.change_password("ann@example.org", OLD, STRONG).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    // Three more failures fit again: the two before the success are forgotten.
    for _ in 0..3 {
        server
            .change_password("ann@example.org", WRONG, OLD)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    server
        .change_password("ann@example.org", STRONG, OLD)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn the_per_ip_limit_counts_failures_across_addresses() {
    let server = DevServer::start(&[
        ("CHANGE_LIMIT_FAILURES", "off"),
        ("CHANGE_LIMIT_PER_IP", "3/1m"),
    ]);
    server.create_user("ann@example.org", OLD, true).await;
    // Successes are not failures.
    for (old, new) in [(OLD, STRONG), (STRONG, OLD), (OLD, STRONG), (STRONG, OLD)] {
        let reply = server.change_password("ann@example.org", old, new).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    for i in 0..3 {
        server
            .change_password(&format!("guess{i}@example.org"), WRONG, STRONG)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let limited = server.change_password("ann@example.org", OLD, STRONG).await;
    limited.assert_problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert!(server.login("ann@example.org", OLD).await);
}

#[tokio::test]
async fn bad_input_gets_its_4xx_problem_and_never_a_500() {
    let server = DevServer::start(&ROOMY_LIMITS);
    let path = "/password-change";
    server
        .post_raw(path, Some("application/json"), vec![b' '; 16 * 1024 + 1])
        .await
        .assert_problem(413, "payload_too_large");
    server
        .post_raw(path, Some("text/plain"), b"{}".to_vec())
        .await
        .assert_problem(415, "unsupported_media_type");
    for body in [
        json!({}),
        json!({"email": "ann@example.org", "old_password": OLD}),
        json!({"email": "ann@example.org", "old_password": 1, "new_password": STRONG}),
        json!(["ann@example.org", OLD, STRONG]),
    ] {
        server
            .post_json(path, &body)
            .await
            .assert_problem(400, "invalid_request");
    }
    for email in ["no at sign", "ann@example.org\r\nBcc: x@y.example", ""] {
        server
            .change_password(email, OLD, STRONG)
            .await
            .assert_problem(400, "invalid_email");
    }
    // A huge password within the body limit is a clean 401 (no account) or 422.
    server.create_user("ann@example.org", OLD, true).await;
    let huge = "x".repeat(15 * 1024);
    server
        .change_password("ann@example.org", OLD, &huge)
        .await
        .assert_problem(422, "weak_password");
    server
        .change_password("ann@example.org", &huge, STRONG)
        .await
        .assert_problem(401, "invalid_credentials");
    let reply = Reply::read(server.client.get(server.url(path))).await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[tokio::test]
async fn no_password_or_hash_appears_in_the_logs_of_a_change() {
    let server = DevServer::start(&[("RUST_LOG", "trace")]);
    server.create_user("ann@example.org", OLD, true).await;
    server
        .change_password("ann@example.org", WRONG, STRONG)
        .await
        .assert_problem(401, "invalid_credentials");
    server
        .change_password("ann@example.org", OLD, "short")
        .await
        .assert_problem(422, "weak_password");
    assert_eq!(
        server
            .change_password("ann@example.org", OLD, STRONG)
            .await
            .status,
        200
    );
    assert_eq!(server.wait_for_mail(1).await.len(), 1);
    let logs = server.stderr();
    for line in [
        "event=\"password_changed\"",
        "event=\"password_change_refused\"",
    ] {
        assert!(logs.contains(line), "{line} was logged: {logs}");
    }
    let stdout = server.stdout();
    for secret in [OLD, STRONG, WRONG, "$argon2id$"] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs");
        assert!(!stdout.contains(secret), "{secret:?} printed");
    }
}

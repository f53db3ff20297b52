//! The SES v2 adapter against moto's SES v2 and against aws-ses-v2-local (whose store we
//! read the mail back from), through the real AWS SDK. Needs `scripts/install-tools`.
#![cfg(feature = "aws")]

use std::time::{Duration, Instant};

use pwreset_core::adapters;
use pwreset_core::adapters::ses::SesMailer;
use pwreset_core::domain::EmailAddress;
use pwreset_core::ports::{MailError, Mailer, OutgoingMail};
use pwreset_testkit::aws::{Sdk, unique_name};
use pwreset_testkit::{emulators, net, ses_store};

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

const FROM: &str = "no-reply@pwreset.example";

fn mail(to: &str, subject: &str) -> OutgoingMail {
    OutgoingMail {
        to: EmailAddress::parse(to).expect("valid address"),
        subject: subject.to_owned(),
        text: "Hello,\n\nReset your password: https://app.example/reset#uid=u&token=t\nThe link expires in 60 minutes. — ünïcödé".to_owned(),
        html: Some("<p>Hello,</p><p><a href=\"https://app.example/reset#uid=u&amp;token=t\">Reset your password</a> — ünïcödé</p>".to_owned()),
    }
}

#[tokio::test]
async fn mail_reaches_aws_ses_v2_local_with_both_parts() {
    let ses = emulators::ses_local();
    let mailer = SesMailer::new(sdk().sesv2(&ses.url), FROM, None);
    let subject = unique_name("Reset your password");
    let sent = mail("Mike@Example.org", &subject);
    mailer.send(&sent).await.expect("sent");
    let mut text_only = mail("other@example.org", &format!("{subject} (text)"));
    text_only.html = None;
    mailer.send(&text_only).await.expect("sent");

    let emails = ses_store::all_mail(&reqwest::Client::new(), &ses.url)
        .await
        .expect("GET /store");
    let find = |subject: &str| {
        emails
            .iter()
            .find(|e| e["subject"] == subject)
            .unwrap_or_else(|| panic!("no mail with subject {subject:?} in {emails:?}"))
    };
    let found = find(&subject);
    assert_eq!(found["from"], FROM);
    assert_eq!(
        found["destination"]["to"],
        serde_json::json!(["Mike@Example.org"])
    );
    assert_eq!(found["body"]["text"], sent.text.as_str());
    assert_eq!(found["body"]["html"], sent.html.as_deref().expect("html"));
    let found = find(&format!("{subject} (text)"));
    assert_eq!(
        found["destination"]["to"],
        serde_json::json!(["other@example.org"])
    );
    assert_eq!(found["body"]["text"], text_only.text.as_str());
    assert!(found["body"]["html"].is_null());
}

#[tokio::test]
async fn mail_goes_through_moto_once_the_sender_is_verified() {
    let moto = emulators::moto();
    let client = sdk().sesv2(&moto.url);
    // moto refuses unverified senders as SES's sandbox does: that is a rejection.
    let unverified = SesMailer::new(client.clone(), "someone@unverified.example", None);
    let result = unverified.send(&mail("mike@example.org", "hello")).await;
    match result {
        Err(MailError::Permanent(message)) => {
            assert!(message.contains("MessageRejected"), "{message}");
            assert!(
                !message.contains("unverified.example"),
                "no addresses in errors: {message}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // Verify the sender (tests share one moto: an existing identity is fine).
    let created = client
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await;
    if let Err(err) = created {
        let exists = err
            .as_service_error()
            .is_some_and(|e| e.is_already_exists_exception());
        assert!(exists, "create identity: {err:?}");
    }
    let mailer = SesMailer::new(client, FROM, None);
    mailer
        .send(&mail("mike@example.org", "Reset your password"))
        .await
        .expect("sent");
}

#[tokio::test]
async fn an_unreachable_mail_service_is_transient_promptly() {
    let client = sdk().sesv2(&format!("http://127.0.0.1:{}", net::closed_port()));
    let mailer = SesMailer::new(client, FROM, None);
    let started = Instant::now();
    let result = mailer.send(&mail("mike@example.org", "hello")).await;
    match result {
        Err(MailError::Transient(message)) => assert!(!message.contains("mike"), "{message}"),
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hung_mail_service_times_out_as_transient() {
    let mailer = SesMailer::new(sdk().sesv2(&net::silent_endpoint()), FROM, None);
    let started = Instant::now();
    let result = mailer.send(&mail("mike@example.org", "hello")).await;
    assert!(matches!(result, Err(MailError::Transient(_))), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_internationalised_domain_arrives_in_punycode_and_a_unicode_local_part_is_rejected() {
    let ses = emulators::ses_local();
    let mailer = SesMailer::new(sdk().sesv2(&ses.url), FROM, None);
    let subject = unique_name("IDN");
    mailer
        .send(&mail("anna@bücher.example", &subject))
        .await
        .expect("sent");
    let refused = unique_name("non-ASCII local part");
    match mailer.send(&mail("jürgen@example.org", &refused)).await {
        Err(MailError::Permanent(message)) => assert!(!message.contains("jürgen"), "{message}"),
        other => panic!("expected a rejection, got {other:?}"),
    }

    let emails = ses_store::all_mail(&reqwest::Client::new(), &ses.url)
        .await
        .expect("GET /store");
    let sent = emails
        .iter()
        .find(|e| e["subject"] == subject.as_str())
        .unwrap_or_else(|| panic!("no mail with subject {subject:?} in {emails:?}"));
    assert_eq!(
        sent["destination"]["to"],
        serde_json::json!(["anna@xn--bcher-kva.example"])
    );
    assert!(
        emails.iter().all(|e| e["subject"] != refused.as_str()),
        "the rejected mail reached the service: {emails:?}"
    );
}

//! `pwreset serve --backend aws` on a team's own users table on moto: a table pwreset did
//! not create (string `id` key, a keys-only `by_email` index on the address lower-cased,
//! Django-format hashes, a session-version attribute), described by `USERS_*` and never
//! migrated. The scenarios of the dev-server tests that the table's shape can change.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use pwreset_core::adapters;
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::dev_server::{DevServer, pwreset_bin};
use pwreset_testkit::emulators;
use pwreset_testkit::interop::django_check_password;

const STRONG: &str = "violin kettle mango quartz";
/// Django 5.2.19: `make_password("the old password 1", "seasalt", "pbkdf2_sha256")`.
const DJANGO_OLD: &str =
    "pbkdf2_sha256$1000000$seasalt$jJmqp0rTZiMFcSraUq9hCAMs4vwdOHOAZ6fHtThbZRs=";
const OLD: &str = "the old password 1";

fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// pwreset's own table (made by `pwreset table create`, which leaves the team's table
/// alone) and the team's users table beside it.
struct Team {
    moto: String,
    table: String,
    users: String,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Team {
    async fn new() -> Self {
        let moto = emulators::moto().url.clone();
        let dynamodb = sdk().dynamodb(&moto);
        let users = aws::team_users_table(
            &dynamodb,
            "app-users",
            "id",
            ScalarAttributeType::S,
            "by_email",
            "email_lower",
        )
        .await;
        let team = Self {
            table: unique_name("pwreset"),
            moto,
            users,
            dynamodb,
        };
        let created = Command::new(pwreset_bin())
            .args(["table", "create"])
            .envs(team.env())
            .output()
            .expect("pwreset table create");
        let printed = String::from_utf8_lossy(&created.stdout).into_owned();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        assert!(printed.contains("left as it is"), "{printed}");
        team
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        [
            ("AWS_ENDPOINT_URL_DYNAMODB", self.moto.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("TABLE_NAME", self.table.as_str()),
            ("USERS_TABLE", self.users.as_str()),
            ("USERS_KEY_ATTRIBUTE", "id"),
            ("USERS_EMAIL_INDEX", "by_email"),
            ("USERS_EMAIL_KEY_ATTRIBUTE", "email_lower"),
            ("USERS_EMAIL_MATCH", "lower"),
            ("USERS_HASH_ATTRIBUTE", "password"),
            ("USERS_ACTIVE_ATTRIBUTE", "is_active"),
            ("USERS_CREDENTIAL_VERSION_ATTRIBUTE", "session_version"),
            ("HASH_FORMAT", "django"),
            ("RESET_LIMIT_PER_EMAIL", "off"),
            ("RESET_LIMIT_PER_IP", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
    }

    fn serve(&self) -> DevServer {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        DevServer::start_with_args(&["--backend", "aws", "--dev-routes"], &env)
    }

    /// A user as the team's app wrote it.
    async fn put(&self, id: &str, email: &str, active: bool) {
        self.dynamodb
            .put_item()
            .table_name(&self.users)
            .item("id", s(id))
            .item("email", s(email))
            .item("email_lower", s(&email.trim().to_lowercase()))
            .item("password", s(DJANGO_OLD))
            .item("is_active", AttributeValue::Bool(active))
            .item("username", s(id))
            .send()
            .await
            .expect("put");
    }

    async fn item(&self, id: &str) -> HashMap<String, AttributeValue> {
        self.dynamodb
            .get_item()
            .table_name(&self.users)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("the item")
    }

    /// Every item in pwreset's own (streamed) table.
    async fn own_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        pwreset_testkit::outbox::items_with_prefix(&self.dynamodb, &self.table, "")
            .await
            .expect("scan")
    }
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        Some(AttributeValue::N(value)) => value.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn a_django_user_in_the_team_table_resets_and_django_verifies_the_new_hash() {
    let team = Team::new().await;
    team.put("ada", "Ada@Example.org", true).await;
    let server = team.serve();
    assert!(
        server.login("ada@example.org", OLD).await,
        "the team's Django hash signs in"
    );
    // Missing address first: the stream is handled in order, so once Ada's mail is here
    // the missing one was handled too, unmailed.
    assert_eq!(server.request_reset("nobody@example.org").await.status, 202);
    let (uid, token) = server.reset_link("ADA@example.org").await;
    assert_eq!(uid, "ada", "the team's key is the uid");
    let mail = server.mail().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, "Ada@Example.org", "at the stored address");
    assert_eq!(server.verify(&uid, &token).await.status, 200);
    let confirmed = server.confirm(&uid, &token, STRONG).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);

    let item = team.item("ada").await;
    let hash = string(&item, "password");
    assert!(hash.starts_with("argon2$argon2id$"), "HASH_FORMAT=django");
    assert!(
        django_check_password(STRONG, &hash),
        "Django's check_password accepts the new hash"
    );
    assert!(!django_check_password(OLD, &hash));
    assert_eq!(string(&item, "session_version"), "1", "version +1");
    assert_eq!(
        string(&item, "username"),
        "ada",
        "the team's attributes stay"
    );
    assert!(server.login("ada@example.org", STRONG).await);
    assert!(!server.login("ada@example.org", OLD).await);
    let mail = server.wait_for_mail(2).await;
    assert!(mail[1].subject.contains("changed"), "{}", mail[1].subject);
    assert_eq!(mail[1].to, "Ada@Example.org");
    // The link is single-use: the hash it was bound to is gone.
    assert_eq!(server.confirm(&uid, &token, STRONG).await.status, 400);
    // pwreset's streamed table holds outbox items only: no user, no hash.
    for own in team.own_items().await {
        assert!(string(&own, "pk").starts_with("OUTBOX#"), "{own:?}");
        assert!(
            !format!("{own:?}").contains("argon2"),
            "a hash on the stream"
        );
    }
}

#[tokio::test]
async fn every_active_account_at_an_address_is_mailed_at_its_own_and_responses_are_alike() {
    let team = Team::new().await;
    team.put("u-1", "Shared@Example.org", true).await;
    team.put("u-2", "shared@example.org", true).await;
    team.put("u-3", "shared@example.org", false).await;
    team.put("u-4", "asleep@example.org", false).await;
    let server = team.serve();
    let existing = server.request_reset("shared@example.org").await;
    let inactive = server.request_reset("asleep@example.org").await;
    let missing = server.request_reset("nobody@example.org").await;
    for reply in [&inactive, &missing] {
        assert_eq!(reply.status, existing.status);
        assert_eq!(reply.text, existing.text);
    }
    // A marker last: once its mail is here, every earlier item has been handled.
    team.put("marker", "marker@example.org", true).await;
    assert_eq!(server.request_reset("marker@example.org").await.status, 202);
    let mut seen = 1;
    let mail = loop {
        let mail = server.wait_for_mail(seen).await;
        if mail.iter().any(|m| m.to == "marker@example.org") {
            break mail;
        }
        seen = mail.len() + 1;
    };
    let mut to: Vec<String> = mail.into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "Shared@Example.org".to_owned(),
            "marker@example.org".to_owned(),
            "shared@example.org".to_owned(),
        ],
        "both active accounts at their own stored address, nobody else"
    );
}

#[tokio::test]
async fn of_twenty_concurrent_confirms_on_the_team_table_one_wins_and_the_version_moves_once() {
    let team = Team::new().await;
    team.put("race", "race@example.org", true).await;
    let server = Arc::new(team.serve());
    let (uid, token) = server.reset_link("race@example.org").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let server = Arc::clone(&server);
        let (uid, token) = (uid.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            server
                .confirm(&uid, &token, &format!("{STRONG} {i}"))
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    assert_eq!(string(&team.item("race").await, "session_version"), "1");
}

#[tokio::test]
async fn an_address_change_between_verify_and_confirm_kills_the_link() {
    let team = Team::new().await;
    team.put("mover", "mover@example.org", true).await;
    let server = team.serve();
    let (uid, token) = server.reset_link("mover@example.org").await;
    assert_eq!(server.verify(&uid, &token).await.status, 200);
    team.dynamodb
        .update_item()
        .table_name(&team.users)
        .key("id", s("mover"))
        .update_expression("SET email = :e, email_lower = :e")
        .expression_attribute_values(":e", s("moved@example.org"))
        .send()
        .await
        .expect("the app changes the address");
    let confirmed = server.confirm(&uid, &token, STRONG).await;
    assert_eq!(confirmed.status, 400, "{}", confirmed.text);
    assert!(
        confirmed.text.contains("invalid_token"),
        "{}",
        confirmed.text
    );
    let item = team.item("mover").await;
    assert_eq!(string(&item, "password"), DJANGO_OLD, "nothing changed");
    assert!(!item.contains_key("session_version"));
}

#[tokio::test]
async fn users_added_through_the_dev_route_land_in_the_team_shape() {
    let team = Team::new().await;
    let server = team.serve();
    let uid = server
        .create_user("New.Person@Example.org", OLD, true)
        .await;
    let item = team.item(&uid).await;
    assert_eq!(string(&item, "email"), "New.Person@Example.org");
    assert_eq!(string(&item, "email_lower"), "new.person@example.org");
    assert!(string(&item, "password").starts_with("argon2$argon2id$"));
    assert_eq!(item.get("is_active"), Some(&AttributeValue::Bool(true)));
    assert!(server.login("new.person@example.org", OLD).await);
}

#[tokio::test]
async fn a_bad_mapping_stops_start_up_naming_the_variable() {
    let team = Team::new().await;
    let mut env = team.env();
    env.retain(|(k, _)| *k != "USERS_EMAIL_INDEX");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output =
        DevServer::try_start_with_args(&["--backend", "aws"], &env).expect_err("it must not start");
    assert!(output.contains("USERS_EMAIL_INDEX"), "{output}");
}

#[tokio::test]
async fn backfill_keys_writes_the_normalised_key_into_an_existing_table() {
    let team = Team::new().await;
    for i in 0..5 {
        team.dynamodb
            .put_item()
            .table_name(&team.users)
            .item("id", s(&format!("b-{i}")))
            .item("email", s(&format!("Back{i}@EXAMPLE.org")))
            .send()
            .await
            .expect("put");
    }
    let mut env = team.env();
    env.retain(|(k, _)| *k != "USERS_EMAIL_MATCH");
    let run = || {
        Command::new(pwreset_bin())
            .args(["users", "backfill-keys", "--page-size", "2"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("backfill-keys")
    };
    let first = run();
    let summary = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(summary.contains("written 5"), "{summary}");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("--resume S."),
        "progress names where to resume"
    );
    assert_eq!(
        string(&team.item("b-3").await, "email_lower"),
        "back3@example.org"
    );
    let second = String::from_utf8_lossy(&run().stdout).into_owned();
    assert!(second.contains("written 0, already right 5"), "{second}");
}

#[tokio::test]
async fn a_django_user_changes_a_known_password_and_django_verifies_the_new_hash() {
    let team = Team::new().await;
    team.put("ada", "Ada@Example.org", true).await;
    team.put("u-1", "shared@example.org", true).await;
    team.put("u-2", "Shared@Example.org", true).await;
    let server = team.serve();
    // The team's pbkdf2 hash is verified as it is; the new one is Django's argon2.
    let wrong = server
        .change_password("ada@example.org", "not the password", STRONG)
        .await;
    wrong.assert_problem(401, "invalid_credentials");
    let changed = server.change_password("ADA@example.org", OLD, STRONG).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let item = team.item("ada").await;
    let hash = string(&item, "password");
    assert!(hash.starts_with("argon2$argon2id$"), "HASH_FORMAT=django");
    assert!(django_check_password(STRONG, &hash));
    assert!(!django_check_password(OLD, &hash));
    assert_eq!(string(&item, "session_version"), "1", "version +1");
    assert_eq!(
        string(&item, "username"),
        "ada",
        "the team's attributes stay"
    );
    let mail = server.wait_for_mail(1).await;
    assert_eq!(mail[0].to, "Ada@Example.org");
    assert!(mail[0].subject.contains("changed"), "{}", mail[0].subject);
    // An address two active accounts share cannot say whose password is meant: the same
    // 401 as a wrong password, and neither account changes.
    let shared = server
        .change_password("shared@example.org", OLD, STRONG)
        .await;
    assert_eq!(shared.comparable(), wrong.comparable());
    for id in ["u-1", "u-2"] {
        assert_eq!(string(&team.item(id).await, "password"), DJANGO_OLD);
    }
}

//! Admin commands against DynamoDB (AWS, or an emulator via `AWS_ENDPOINT_URL_DYNAMODB`).

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use pwreset_core::adapters::dynamodb::table::create_table;
use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
use pwreset_core::domain::{EmailAddress, PasswordHash, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::ports::{InsertOutcome, UserRepository as _};
use secrecy::SecretString;
use serde::Deserialize;

pub fn table_name(flag: Option<String>) -> anyhow::Result<String> {
    flag.or_else(|| std::env::var("TABLE_NAME").ok())
        .filter(|t| !t.trim().is_empty())
        .context("no table: pass --table or set TABLE_NAME")
}

pub async fn table_create(table: &str) -> anyhow::Result<()> {
    let client = dynamodb_client().await;
    create_table(&client, table).await?;
    println!("table {table} is ready (users, outbox on its stream, rate limits with TTL)");
    Ok(())
}

/// Reads the password: at a terminal, typed twice without echo; otherwise from stdin (one
/// line; the trailing newline is not part of it). Either way it never appears in the shell
/// history or the process list.
fn password_from_stdin() -> anyhow::Result<SecretString> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        if first.is_empty() {
            bail!("the password is empty");
        }
        let again =
            rpassword::prompt_password("Password again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        return Ok(SecretString::from(first));
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!(
            "no password on stdin (e.g. `printf '%s' \"$PASSWORD\" | pwreset user add alice@example.org`)"
        );
    }
    Ok(SecretString::from(password.to_owned()))
}

pub async fn user_add(table: String, email: &str, inactive: bool) -> anyhow::Result<()> {
    let email =
        EmailAddress::parse(email).map_err(|e| anyhow::anyhow!("invalid e-mail address: {e}"))?;
    let password = password_from_stdin()?;
    let store = DynamoStore::new(dynamodb_client().await, table);
    let user = User {
        uid: UserId::generate(),
        email,
        password_hash: Some(
            PasswordHasher::owasp()
                // As a reset would write it, so the users the CLI adds look like the rest.
                .writing(pwreset_core::config::hash_format_from_env()?)
                .hash(password)
                .await?,
        ),
        active: !inactive,
        credential_version: 0,
    };
    match store.insert(&user).await? {
        InsertOutcome::Inserted => {
            println!("{}", user.uid);
            Ok(())
        }
        InsertOutcome::EmailTaken => bail!("a user with this e-mail address exists"),
    }
}

/// One object of `manage.py dumpdata auth.user` (or a custom user model with the same
/// fields).
#[derive(Deserialize)]
struct DumpObject {
    model: String,
    /// Django's primary key (an integer, or a string such as a UUID for a custom model):
    /// kept as the user id, so the team's other records still point at the same user.
    #[serde(default)]
    pk: serde_json::Value,
    #[serde(default)]
    fields: DumpFields,
}

#[derive(Default, Deserialize)]
struct DumpFields {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default = "default_true")]
    is_active: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    pub no_email: usize,
    pub invalid_email: usize,
    pub duplicate: usize,
    pub other_models: usize,
    /// A user object whose primary key is missing or not usable as a user id (1 to 64 of
    /// A-Z, a-z, 0-9, `-`, `_`).
    pub unusable_pk: usize,
}

fn user_id_from_pk(pk: &serde_json::Value) -> Option<UserId> {
    match pk {
        serde_json::Value::Number(n) => UserId::parse(&n.to_string()).ok(),
        serde_json::Value::String(s) => UserId::parse(s).ok(),
        _ => None,
    }
}

/// Imports users with Django's primary key as the user id, keeping their hashes as they are
/// (`pbkdf2_sha256$…`, `argon2$…`, bcrypt, or an unusable `!…`): pwreset verifies each of
/// those formats, so an imported user signs in with the old password until a reset
/// replaces it. Re-running skips existing addresses, so an interrupted import can simply
/// be run again.
pub async fn user_import_django(table: String, path: &Path) -> anyhow::Result<ImportReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let objects: Vec<DumpObject> = serde_json::from_str(&text)
        .context("expected the JSON array `manage.py dumpdata auth.user` writes")?;
    let store = DynamoStore::new(dynamodb_client().await, table);
    let mut report = ImportReport::default();
    let mut seen = HashSet::new();
    for object in objects {
        if !object.model.ends_with(".user") {
            report.other_models += 1;
            continue;
        }
        let Some(raw) = object.fields.email.filter(|e| !e.trim().is_empty()) else {
            report.no_email += 1;
            continue;
        };
        let Ok(email) = EmailAddress::parse(&raw) else {
            report.invalid_email += 1;
            continue;
        };
        let Some(uid) = user_id_from_pk(&object.pk) else {
            report.unusable_pk += 1;
            continue;
        };
        if !seen.insert(email.key()) {
            report.duplicate += 1;
            continue;
        }
        let user = User {
            uid,
            email,
            password_hash: object
                .fields
                .password
                .filter(|p| !p.is_empty())
                .map(PasswordHash::new),
            active: object.fields.is_active,
            credential_version: 0,
        };
        match store.insert(&user).await? {
            InsertOutcome::Inserted => report.imported += 1,
            InsertOutcome::EmailTaken => report.duplicate += 1,
        }
    }
    println!(
        "imported {}; skipped {} without e-mail, {} with an invalid e-mail, {} duplicate, {} other objects",
        report.imported,
        report.no_email,
        report.invalid_email,
        report.duplicate,
        report.other_models
    );
    if report.unusable_pk > 0 {
        println!(
            "skipped {} without a primary key usable as a user id (1 to 64 of A-Z, a-z, 0-9, '-', '_')",
            report.unusable_pk
        );
    }
    Ok(report)
}

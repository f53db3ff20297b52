//! Admin commands against DynamoDB (AWS, or an emulator via `AWS_ENDPOINT_URL_DYNAMODB`).

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use pwreset_core::adapters::dynamodb::table::{create_table, create_users_table};
use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
use pwreset_core::config::{UsersLayout, UsersTable};
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

/// The store over `table`, with users where `USERS_TABLE` and `USERS_*` say.
async fn store(table: String) -> anyhow::Result<DynamoStore> {
    let users = UsersTable::from_env(&table)?;
    Ok(DynamoStore::new(dynamodb_client().await, table).with_users(users))
}

/// Creates every table pwreset owns: `table` (outbox on its stream, rate limits with TTL)
/// and, unless `USERS_*` describes a team's table, its own users table. A team's table is
/// never created or changed.
pub async fn table_create(table: &str) -> anyhow::Result<()> {
    let users = UsersTable::from_env(table)?;
    let client = dynamodb_client().await;
    create_table(&client, table).await?;
    println!("table {table} is ready (outbox on its stream, rate limits with TTL)");
    match users.layout {
        UsersLayout::Own => {
            create_users_table(&client, &users.name).await?;
            println!(
                "table {} is ready (users, pwreset's own layout)",
                users.name
            );
        }
        UsersLayout::Mapped(_) => println!(
            "table {} holds the users as USERS_* describes it: left as it is",
            users.name
        ),
    }
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
    let store = store(table).await?;
    let user = User {
        uid: store.fresh_uid(),
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
        locale: None,
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
    /// A user object whose primary key is missing, not a number or string, or longer than
    /// a user id can carry (255 bytes).
    pub unusable_pk: usize,
}

fn user_id_from_pk(pk: &serde_json::Value) -> Option<UserId> {
    match pk {
        serde_json::Value::Number(n) => UserId::parse(&n.to_string()).ok(),
        serde_json::Value::String(s) => UserId::from_key(s),
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
    let store = store(table).await?;
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
            locale: None,
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
            "skipped {} without a primary key usable as a user id (a number, or a string of 1 to 255 bytes)",
            report.unusable_pk
        );
    }
    Ok(report)
}

/// `pwreset users backfill-keys`: pages through the users table, writing keys, with a
/// progress line (a bar at a terminal) on stderr and the summary on stdout. After every
/// page the position to resume from is printed, so an interrupted run loses nothing.
pub async fn users_backfill_keys(
    table: String,
    mut resume: Option<String>,
    page_size: i32,
) -> anyhow::Result<()> {
    let store = store(table).await?;
    store
        .users
        .backfill_mapping()
        .map_err(|why| anyhow::anyhow!("nothing to backfill: {why}"))?;
    let progress = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut total = pwreset_core::adapters::dynamodb::users::BackfillPage::default();
    loop {
        let page = store
            .users
            .backfill_page(&store.client, resume.as_deref(), page_size)
            .await
            .with_context(|| match &resume {
                Some(token) => format!("stopped; run again with --resume {token}"),
                None => "stopped before the first page was done; run again".to_owned(),
            })?;
        total.scanned += page.scanned;
        total.written += page.written;
        total.already_right += page.already_right;
        total.skipped_no_address += page.skipped_no_address;
        total.skipped_not_an_address += page.skipped_not_an_address;
        total.skipped_changed += page.skipped_changed;
        let line = format!(
            "scanned {}, written {}, already right {}",
            total.scanned, total.written, total.already_right
        );
        progress.set_message(line.clone());
        progress.tick();
        resume = page.next;
        match &resume {
            Some(token) if progress.is_hidden() => {
                eprintln!("{line}; resume with --resume {token}")
            }
            Some(_) => {}
            None => break,
        }
    }
    progress.finish_and_clear();
    println!(
        "scanned {}: written {}, already right {}, skipped {} (no address {}, not an address {}, address changed during the run {})",
        total.scanned,
        total.written,
        total.already_right,
        total.skipped_no_address + total.skipped_not_an_address + total.skipped_changed,
        total.skipped_no_address,
        total.skipped_not_an_address,
        total.skipped_changed,
    );
    if total.skipped_changed > 0 {
        println!("run it again to cover the users whose address changed during the run");
    }
    Ok(())
}

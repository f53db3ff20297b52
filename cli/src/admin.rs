//! Admin commands against DynamoDB (AWS, or an emulator via `AWS_ENDPOINT_URL_DYNAMODB`).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use pwreset_core::adapters::dynamodb::table::{create_table, create_users_table};
use pwreset_core::adapters::dynamodb::{DynamoStore, dynamodb_client};
use pwreset_core::config::{UsersLayout, UsersTable};
use pwreset_core::domain::{EmailAddress, EmailLookup, PasswordHash, User, UserId};
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

pub async fn user_add(
    table: String,
    email: &str,
    inactive: bool,
    language: Option<pwreset_core::i18n::Locale>,
) -> anyhow::Result<()> {
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
        locale: language,
    };
    match store.insert(&user).await? {
        InsertOutcome::Inserted => {
            println!("{}", user.uid);
            Ok(())
        }
        InsertOutcome::EmailTaken => bail!("a user with this e-mail address exists"),
    }
}

/// The account `email` (and `uid`, when several share the address) names, or why not.
async fn account(store: &DynamoStore, email: &str, uid: Option<&str>) -> anyhow::Result<User> {
    let lookup = pwreset_core::domain::EmailLookup::from_request(email)
        .map_err(|e| anyhow::anyhow!("invalid e-mail address: {e}"))?;
    let mut found = store.find_by_email(&lookup).await?;
    if let Some(uid) = uid {
        found.retain(|user| user.uid.as_str() == uid);
    }
    match found.len() {
        0 => bail!(
            "no account has this address{}",
            if uid.is_some() { " and id" } else { "" }
        ),
        1 => Ok(found.remove(0)),
        n => {
            let ids: Vec<&str> = found.iter().map(|u| u.uid.as_str()).collect();
            bail!(
                "{n} accounts share this address ({}): pass --uid",
                ids.join(", ")
            )
        }
    }
}

/// `pwreset user show`: everything but the hash itself.
pub async fn user_show(table: String, email: &str, uid: Option<&str>) -> anyhow::Result<()> {
    let store = store(table).await?;
    let user = account(&store, email, uid).await?;
    let password = user.password_hash.as_ref().map_or(
        "none (only a reset can set one)",
        pwreset_core::hashing::describe,
    );
    println!("uid:                {}", user.uid);
    println!("e-mail:             {}", user.email.as_str());
    println!(
        "active:             {}",
        if user.active { "yes" } else { "no" }
    );
    println!("password:           {password}");
    println!("credential version: {}", user.credential_version);
    println!(
        "language:           {}",
        user.locale
            .map_or("(the one each request asks for)", |l| l.tag())
    );
    Ok(())
}

/// What `pwreset user disable|enable|delete|set-email` changes.
#[derive(Debug)]
pub enum Change {
    Active(bool),
    Delete { confirmed: bool },
    Email(String),
}

pub async fn user_change(
    table: String,
    email: &str,
    uid: Option<&str>,
    change: Change,
) -> anyhow::Result<()> {
    use pwreset_core::adapters::dynamodb::users::AdminOutcome;
    let store = store(table).await?;
    let user = account(&store, email, uid).await?;
    let (outcome, done) = match change {
        Change::Active(active) => (
            store.users.set_active(&store.client, &user, active).await?,
            format!(
                "{} {}",
                user.uid,
                if active {
                    "enabled"
                } else {
                    "disabled: no reset mail, no reset or change, outstanding links dead"
                }
            ),
        ),
        Change::Delete { confirmed } => {
            if !confirmed
                && !confirm_at_terminal(&format!("Delete {} ({})?", user.email.as_str(), user.uid))?
            {
                bail!("not deleted");
            }
            (
                store.users.delete(&store.client, &user).await?,
                format!("{} deleted", user.uid),
            )
        }
        Change::Email(new) => {
            let new = EmailAddress::parse(&new)
                .map_err(|e| anyhow::anyhow!("invalid new e-mail address: {e}"))?;
            let taken = store.find_by_email(&EmailLookup::from(new.key())).await?;
            if taken.iter().any(|other| other.uid != user.uid) {
                bail!("another account has the address {}", new.as_str());
            }
            (
                store.users.set_email(&store.client, &user, &new).await?,
                format!(
                    "{} now has the address {} (links sent before no longer work)",
                    user.uid,
                    new.as_str()
                ),
            )
        }
    };
    match outcome {
        AdminOutcome::Done => {
            println!("{done}");
            Ok(())
        }
        AdminOutcome::Changed => {
            bail!("the account changed meanwhile; nothing was written: run it again")
        }
        AdminOutcome::AddressTaken => {
            bail!("another account has that address; nothing was written")
        }
    }
}

/// Asks `question` at a terminal; without one (a script), refuses: pass --yes.
fn confirm_at_terminal(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --yes to delete without asking");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
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

#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub concurrency: usize,
}

/// What an import did: every user row is exactly one of these.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    /// Already in the table with this id and address (an earlier run of the same import).
    pub already: usize,
    /// `--dry-run`: would be imported.
    pub would_import: usize,
    pub no_email: usize,
    pub invalid_email: usize,
    /// Its address normalises to one an earlier row of the file has: not merged.
    pub duplicate_in_file: usize,
    /// Another account in the table has the address (or the id).
    pub taken: usize,
    /// A user object whose primary key is missing, not a number or string, or longer than
    /// a user id can carry (255 bytes).
    pub unusable_pk: usize,
    pub other_models: usize,
}

impl ImportReport {
    /// User rows that were not imported (other models are not users: not counted).
    pub fn skipped(&self) -> usize {
        self.no_email + self.invalid_email + self.duplicate_in_file + self.taken + self.unusable_pk
    }
}

fn user_id_from_pk(pk: &serde_json::Value) -> Option<UserId> {
    match pk {
        serde_json::Value::Number(n) => UserId::parse(&n.to_string()).ok(),
        serde_json::Value::String(s) => UserId::from_key(s),
        _ => None,
    }
}

/// `pk` for a report line: the value as the file has it, cut short.
fn shown_pk(pk: &serde_json::Value) -> String {
    let text = match pk {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(40).collect()
}

/// The file's objects, one at a time, from a reading thread: the array is never held whole.
/// `Err` ends the stream when the file is not the JSON array dumpdata writes.
fn stream_objects(
    path: &Path,
) -> anyhow::Result<tokio::sync::mpsc::Receiver<anyhow::Result<DumpObject>>> {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};
    struct Each(tokio::sync::mpsc::Sender<anyhow::Result<DumpObject>>);
    impl<'de> Visitor<'de> for Each {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the JSON array `manage.py dumpdata auth.user` writes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(object) = seq.next_element::<DumpObject>()? {
                if self.0.blocking_send(Ok(object)).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(file);
        let mut json = serde_json::Deserializer::from_reader(reader);
        if let Err(err) = json.deserialize_seq(Each(sender.clone())) {
            let _ = sender.blocking_send(Err(anyhow::anyhow!(
                "expected the JSON array `manage.py dumpdata auth.user` writes (line {}, column {})",
                err.line(),
                err.column()
            )));
        }
    });
    Ok(receiver)
}

/// How one user row ended (for the report).
enum RowOutcome {
    Imported,
    Already,
    WouldImport,
    Taken,
}

/// Imports users with Django's primary key as the user id, keeping their hashes as they are
/// (`pbkdf2_sha256$…`, `argon2$…`, bcrypt, or an unusable `!…`): pwreset verifies each of
/// those formats, so an imported user signs in with the old password until a reset
/// replaces it. The file is read as a stream; users are written `concurrency` at a time;
/// every skipped row is reported with its reason (a line on stdout), and two rows whose
/// addresses normalise to one key are never merged: the later one is reported. Re-running
/// an interrupted import counts what is already there as `already`, not as a skip.
pub async fn user_import_django(
    table: String,
    path: &Path,
    options: ImportOptions,
) -> anyhow::Result<ImportReport> {
    let mut objects = stream_objects(path)?;
    let store = std::sync::Arc::new(store(table).await?);
    let progress = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut report = ImportReport::default();
    let mut seen: HashMap<pwreset_core::domain::EmailKey, (usize, String)> = HashMap::new();
    let mut writes = tokio::task::JoinSet::new();
    let mut row = 0usize;
    let skip = |row: usize, pk: &serde_json::Value, why: &str| {
        println!("row {row} (pk {}): skipped: {why}", shown_pk(pk));
    };
    while let Some(object) = objects.recv().await {
        let object = object?;
        row += 1;
        if !object.model.ends_with(".user") {
            report.other_models += 1;
            continue;
        }
        let Some(raw) = object
            .fields
            .email
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        else {
            report.no_email += 1;
            skip(row, &object.pk, "no e-mail address");
            continue;
        };
        let Ok(email) = EmailAddress::parse(raw) else {
            report.invalid_email += 1;
            skip(
                row,
                &object.pk,
                "the e-mail address is not one pwreset can mail",
            );
            continue;
        };
        let Some(uid) = user_id_from_pk(&object.pk) else {
            report.unusable_pk += 1;
            skip(
                row,
                &object.pk,
                "no primary key usable as a user id (a number, or a string of 1 to 255 bytes)",
            );
            continue;
        };
        if let Some((first_row, first_pk)) = seen.get(&email.key()) {
            report.duplicate_in_file += 1;
            skip(
                row,
                &object.pk,
                &format!(
                    "its address is the same account as row {first_row} (pk {first_pk}) once normalised: not merged"
                ),
            );
            continue;
        }
        seen.insert(email.key(), (row, shown_pk(&object.pk)));
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
        // Bounded parallelism: wait for a slot.
        while writes.len() >= options.concurrency {
            if let Some(done) = writes.join_next().await {
                tally(&mut report, done??);
            }
        }
        let store = std::sync::Arc::clone(&store);
        let pk = object.pk.clone();
        let dry_run = options.dry_run;
        writes.spawn(async move {
            write_user(&store, &user, dry_run)
                .await
                .map(|outcome| (row, pk, outcome))
        });
        progress.set_message(format!("{row} rows read"));
        progress.tick();
    }
    while let Some(done) = writes.join_next().await {
        tally(&mut report, done??);
    }
    progress.finish_and_clear();
    println!(
        "{} {}; already there {}; skipped {} (no e-mail {}, invalid e-mail {}, same address as an earlier row {}, address or id taken in the table {}, unusable primary key {}); {} other objects",
        if options.dry_run {
            "would import"
        } else {
            "imported"
        },
        if options.dry_run {
            report.would_import
        } else {
            report.imported
        },
        report.already,
        report.skipped(),
        report.no_email,
        report.invalid_email,
        report.duplicate_in_file,
        report.taken,
        report.unusable_pk,
        report.other_models
    );
    Ok(report)
}

fn tally(report: &mut ImportReport, (row, pk, outcome): (usize, serde_json::Value, RowOutcome)) {
    match outcome {
        RowOutcome::Imported => report.imported += 1,
        RowOutcome::Already => report.already += 1,
        RowOutcome::WouldImport => report.would_import += 1,
        RowOutcome::Taken => {
            report.taken += 1;
            println!(
                "row {row} (pk {}): skipped: another account in the table has this address or id",
                shown_pk(&pk)
            );
        }
    }
}

/// Writes one user (or, dry, checks whether it could be written).
async fn write_user(store: &DynamoStore, user: &User, dry_run: bool) -> anyhow::Result<RowOutcome> {
    let by_uid = store.find_by_uid(&user.uid).await?;
    if let Some(existing) = &by_uid {
        return Ok(if existing.email_key() == user.email_key() {
            RowOutcome::Already
        } else {
            RowOutcome::Taken
        });
    }
    if dry_run {
        let taken = !store
            .find_by_email(&EmailLookup::from(user.email_key()))
            .await?
            .is_empty();
        return Ok(if taken {
            RowOutcome::Taken
        } else {
            RowOutcome::WouldImport
        });
    }
    Ok(match store.insert(user).await? {
        InsertOutcome::Inserted => RowOutcome::Imported,
        InsertOutcome::EmailTaken => RowOutcome::Taken,
    })
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

//! `pwreset table create`, `user add`, `user import --django` against DynamoDB on moto,
//! and a reset that replaces an imported Django hash with argon2id.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::DynamoStore;
use pwreset_core::domain::{EmailKey, PasswordHash, User, UserId};
use pwreset_core::hashing::PasswordHasher;
use pwreset_core::policy::PasswordPolicy;
use pwreset_core::ports::{SystemClock, UserRepository as _};
use pwreset_core::service::ConfirmReset;
use pwreset_core::token::{TokenKeys, TokenSigner, TokenSubject};
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::dev_server::{DevServer, Reply, pwreset_bin};
use pwreset_testkit::emulators;
use pwreset_testkit::interop::django_check_password;
use secrecy::SecretString;

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

/// `command` pointed at moto, with test credentials and no profile from the caller.
fn on_moto<'c>(command: &'c mut Command, moto: &str) -> &'c mut Command {
    command
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
}

fn pwreset(moto: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = on_moto(Command::new(pwreset_bin()).args(args), moto)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pwreset");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("pwreset finished")
}

/// A fresh table on moto made by `pwreset table create`, named after `prefix`.
async fn created_table(moto: &str, prefix: &str) -> String {
    let table = unique_name(prefix);
    aws::warm_up_dynamodb(&sdk().dynamodb(moto)).await;
    let created = pwreset(moto, &["table", "create", "--table", &table], None);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    table
}

/// What `serve --backend aws` needs to find `table` on moto.
fn serve_env<'a>(moto: &'a str, table: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("AWS_ENDPOINT_URL_DYNAMODB", moto),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("TABLE_NAME", table),
    ]
}

fn key(email: &str) -> EmailKey {
    EmailKey::normalise(email).expect("valid")
}

/// The one user `store` finds for `email`, if any.
async fn only_user(store: &DynamoStore, email: &str) -> Option<User> {
    let mut found = store.find_by_email(&key(email).into()).await.expect("read");
    assert!(
        found.len() <= 1,
        "one account per address in pwreset's own layout"
    );
    found.pop()
}

/// Django 5.2.19: `make_password("violin kettle mango", "seasalt", "pbkdf2_sha256")`.
const DJANGO_HASH: &str =
    "pbkdf2_sha256$1000000$seasalt$XpsV61vJcCAUCZ86ck8J2nexJq43H9YLqcib5awro/4=";
const DJANGO_PASSWORD: &str = "violin kettle mango";

#[tokio::test]
async fn admin_commands_create_the_table_add_and_import_users() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "cli").await;
    // Idempotent.
    assert!(
        pwreset(&moto.url, &["table", "create", "--table", &table], None)
            .status
            .success()
    );

    let store = DynamoStore::new(sdk().dynamodb(&moto.url), table.clone());

    // user add: password from stdin, never from the command line.
    let added = pwreset(
        &moto.url,
        &["user", "add", "Carol@Example.org", "--table", &table],
        Some("carol's old password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let uid = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    let carol = store
        .find_by_uid(&UserId::parse(&uid).expect("uid printed"))
        .await
        .expect("read")
        .expect("carol");
    assert_eq!(carol.email.as_str(), "Carol@Example.org");
    assert!(
        PasswordHasher::owasp()
            .verify(
                SecretString::from("carol's old password"),
                carol.password_hash
            )
            .await
            .expect("verify"),
        "the trailing newline is not part of the password"
    );
    let again = pwreset(
        &moto.url,
        &["user", "add", "carol@example.org", "--table", &table],
        Some("x\n"),
    );
    assert!(
        !again.status.success(),
        "a second user with the same address is refused"
    );

    // user import --django
    let dump = serde_json::json!([
        {"model": "auth.user", "pk": 1, "fields": {"username": "dave", "email": "Dave@Example.org", "password": DJANGO_HASH, "is_active": true}},
        {"model": "auth.user", "pk": 2, "fields": {"username": "erin", "email": "erin@example.org", "password": "!unusable", "is_active": true}},
        {"model": "auth.user", "pk": 3, "fields": {"username": "frank", "email": "frank@example.org", "password": DJANGO_HASH, "is_active": false}},
        {"model": "auth.user", "pk": 4, "fields": {"username": "nomail", "email": "", "password": DJANGO_HASH}},
        {"model": "auth.user", "pk": 5, "fields": {"username": "dave2", "email": "DAVE@example.org", "password": DJANGO_HASH}},
        {"model": "auth.user", "pk": 6, "fields": {"username": "bad", "email": "not an address", "password": DJANGO_HASH}},
        {"model": "auth.user", "pk": null, "fields": {"username": "gina", "email": "gina@example.org", "password": DJANGO_HASH}},
        {"model": "auth.user", "pk": "hal/9000", "fields": {"username": "hal", "email": "hal@example.org", "password": DJANGO_HASH}},
        {"model": "auth.group", "pk": 1, "fields": {"name": "staff"}}
    ]);
    let path = std::env::temp_dir().join(format!("{table}-dumpdata.json"));
    std::fs::write(&path, dump.to_string()).expect("write dump");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "user",
            "import",
            "--django",
            path.to_str().expect("utf-8 path"),
            "--table",
            &table,
        ];
        args.extend_from_slice(extra);
        let output = pwreset(&moto.url, &args, None);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    // A dry run reports, writes nothing, and fails like the real run: rows are skipped.
    let (ok, report) = import(&["--dry-run"]);
    assert!(!ok, "skipped rows make the exit status non-zero");
    assert!(
        report.contains("would import 4; already there 0; skipped 4"),
        "{report}"
    );
    assert!(
        only_user(&store, "dave@example.org").await.is_none(),
        "a dry run writes nothing"
    );

    let (ok, summary) = import(&["--concurrency", "3"]);
    assert!(!ok, "{summary}");
    assert!(
        summary.contains(
            "imported 4; already there 0; skipped 4 (no e-mail 1, invalid e-mail 1, same address \
             as an earlier row 1, address or id taken in the table 0, unusable primary key 1); \
             1 other objects"
        ),
        "{summary}"
    );
    // Every skipped row, and why; two addresses that are one account are never merged.
    for line in [
        "row 4 (pk 4): skipped: no e-mail address",
        "row 5 (pk 5): skipped: its address is the same account as row 1 (pk 1) once normalised: not merged",
        "row 6 (pk 6): skipped: the e-mail address is not one pwreset can mail",
        "row 7 (pk null): skipped: no primary key usable as a user id",
    ] {
        assert!(summary.contains(line), "{line}\n{summary}");
    }
    // Run again (an interrupted import, say): what is there is counted, not duplicated.
    let (_, again) = import(&[]);
    assert!(
        again.contains("imported 0; already there 4; skipped 4"),
        "{again}"
    );
    let dave = only_user(&store, "dave@example.org").await.expect("dave");
    // A primary key that is not URL-safe is kept all the same, carried encoded in links.
    let hal = only_user(&store, "hal@example.org").await.expect("hal");
    assert_eq!(hal.uid.key_value(), "hal/9000");
    assert!(hal.uid.as_str().starts_with('~'), "{}", hal.uid);
    assert_eq!(dave.email.as_str(), "Dave@Example.org");
    assert_eq!(
        dave.password_hash.as_ref().map(|h| h.as_str()),
        Some(DJANGO_HASH),
        "kept as it is"
    );
    assert_eq!(
        dave.uid.as_str(),
        "1",
        "Django's primary key is the user id"
    );
    let hasher = PasswordHasher::owasp();
    let verifies = |password: &'static str, hash: Option<PasswordHash>| {
        hasher.verify(SecretString::from(password), hash)
    };
    assert!(
        verifies(DJANGO_PASSWORD, dave.password_hash.clone())
            .await
            .expect("verify"),
        "an imported user signs in with the old password until a reset"
    );
    let frank = only_user(&store, "frank@example.org").await.expect("frank");
    assert!(!frank.active);
    let erin = only_user(&store, "erin@example.org").await.expect("erin");
    assert!(
        erin.resettable_hash().is_none(),
        "an unusable Django password takes no part in resets"
    );

    // A reset replaces the imported hash with argon2id.
    let signer = TokenSigner::new(TokenKeys::generate(), 3600);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = signer.sign(
        TokenSubject {
            uid: &dave.uid,
            email: &dave.email,
            password_hash: dave.password_hash.as_ref().expect("hash"),
        },
        now,
    );
    let store = Arc::new(store);
    let confirm = ConfirmReset::new(
        store.clone(),
        Arc::new(SystemClock),
        signer,
        PasswordPolicy::default(),
        PasswordHasher::owasp(),
    );
    confirm
        .confirm(
            dave.uid.as_str(),
            token.as_str(),
            "violin kettle mango quartz",
        )
        .await
        .expect("reset lands");
    let dave = store
        .find_by_uid(&dave.uid)
        .await
        .expect("read")
        .expect("dave");
    assert!(
        dave.password_hash
            .as_ref()
            .is_some_and(|h| h.as_str().starts_with("$argon2id$"))
    );
    assert!(
        !verifies(DJANGO_PASSWORD, dave.password_hash.clone())
            .await
            .expect("verify"),
        "after the reset the old password no longer signs in"
    );
}

#[test]
fn admin_commands_say_how_to_name_the_table() {
    let output = Command::new(pwreset_bin())
        .args(["table", "create"])
        .env_remove("TABLE_NAME")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("TABLE_NAME"));
}

#[tokio::test]
async fn operator_commands_show_disable_enable_move_and_delete_an_account() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "ops").await;
    let store = DynamoStore::new(sdk().dynamodb(&moto.url), table.clone());
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--table", &table]);
        let output = pwreset(&moto.url, &all, None);
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let added = pwreset(
        &moto.url,
        &[
            "user",
            "add",
            "Olga@Example.org",
            "--language",
            "de",
            "--table",
            &table,
        ],
        Some("olga's old password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let olga = only_user(&store, "olga@example.org").await.expect("olga");

    // show: everything but the hash.
    let (ok, shown) = run(&["user", "show", "OLGA@example.org"]);
    assert!(ok, "{shown}");
    assert!(
        shown.contains(&format!("uid:                {}", olga.uid)),
        "{shown}"
    );
    assert!(
        shown.contains("e-mail:             Olga@Example.org"),
        "{shown}"
    );
    assert!(shown.contains("active:             yes"), "{shown}");
    assert!(
        shown.contains("password:           argon2id (PHC)"),
        "{shown}"
    );
    assert!(shown.contains("language:           de"), "{shown}");
    let hash = olga
        .password_hash
        .as_ref()
        .expect("hash")
        .as_str()
        .to_owned();
    assert!(
        !shown.contains(&hash) && !shown.contains("$argon2id$"),
        "never the hash"
    );

    // disable / enable.
    let (ok, out) = run(&["user", "disable", "olga@example.org"]);
    assert!(ok, "{out}");
    assert!(
        !only_user(&store, "olga@example.org")
            .await
            .expect("olga")
            .active
    );
    assert!(
        run(&["user", "show", "olga@example.org"])
            .1
            .contains("active:             no")
    );
    let (ok, out) = run(&["user", "enable", "olga@example.org"]);
    assert!(ok, "{out}");
    assert!(
        only_user(&store, "olga@example.org")
            .await
            .expect("olga")
            .active
    );

    // set-email moves the lookup: the old address finds nobody, the new one Olga.
    let (ok, out) = run(&[
        "user",
        "set-email",
        "olga@example.org",
        "olga.new@example.org",
    ]);
    assert!(ok, "{out}");
    assert!(only_user(&store, "olga@example.org").await.is_none());
    let moved = only_user(&store, "olga.new@example.org")
        .await
        .expect("moved");
    assert_eq!(
        (moved.uid.clone(), moved.email.as_str()),
        (olga.uid.clone(), "olga.new@example.org")
    );
    assert_eq!(
        moved.password_hash, olga.password_hash,
        "the password stays"
    );
    // Onto an address another account has: refused, nothing changes.
    assert!(
        pwreset(
            &moto.url,
            &["user", "add", "taken@example.org", "--table", &table],
            Some("x password here\n")
        )
        .status
        .success()
    );
    let (ok, out) = run(&[
        "user",
        "set-email",
        "olga.new@example.org",
        "TAKEN@example.org",
    ]);
    assert!(!ok && out.contains("another account has"), "{out}");
    assert!(only_user(&store, "olga.new@example.org").await.is_some());

    // delete: refused without a terminal or --yes, then gone with its lookup.
    let (ok, out) = run(&["user", "delete", "olga.new@example.org"]);
    assert!(!ok && out.contains("--yes"), "{out}");
    assert!(only_user(&store, "olga.new@example.org").await.is_some());
    let (ok, out) = run(&["user", "delete", "olga.new@example.org", "--yes"]);
    assert!(ok, "{out}");
    assert!(only_user(&store, "olga.new@example.org").await.is_none());
    assert!(store.find_by_uid(&olga.uid).await.expect("read").is_none());
    let (ok, out) = run(&["user", "show", "olga.new@example.org"]);
    assert!(!ok && out.contains("no account has this address"), "{out}");

    // Every command documents every argument, and the table comes from TABLE_NAME too.
    for command in [
        "show",
        "disable",
        "enable",
        "delete",
        "set-email",
        "import",
        "add",
    ] {
        let help = pwreset(&moto.url, &["user", command, "--help"], None);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            text.contains("--table") && text.contains("[env: TABLE_NAME="),
            "{command}: {text}"
        );
    }
    let by_env = on_moto(
        Command::new(pwreset_bin()).args(["user", "show", "taken@example.org"]),
        &moto.url,
    )
    .env("TABLE_NAME", &table)
    .output()
    .expect("run");
    assert!(
        by_env.status.success(),
        "{}",
        String::from_utf8_lossy(&by_env.stderr)
    );
}

#[tokio::test]
async fn serve_backend_aws_serves_dev_routes_only_with_dev_routes() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "devroutes").await;
    let env = serve_env(&moto.url, &table);
    let user = serde_json::json!({"email": "dev@example.org", "password": "a dev password"});
    let without = DevServer::start_with_args(&["--backend", "aws"], &env);
    without
        .post_json("/_dev/users", &user)
        .await
        .assert_problem(404, "not_found");
    without
        .post_json("/_dev/login", &user)
        .await
        .assert_problem(404, "not_found");
    Reply::read(without.client.get(without.url("/_dev/mail")))
        .await
        .assert_problem(404, "not_found");
    // The API is there all the same.
    assert_eq!(without.request_reset("dev@example.org").await.status, 202);
    drop(without);

    let with = DevServer::start_with_args(&["--backend", "aws", "--dev-routes"], &env);
    assert_eq!(with.post_json("/_dev/users", &user).await.status, 201);
    assert!(with.login("dev@example.org", "a dev password").await);
}

/// `HASH_FORMAT=django` end to end: the hash a reset writes into DynamoDB passes Django's
/// own `check_password`, and the dev login reads it back.
#[tokio::test]
async fn a_reset_with_hash_format_django_writes_what_django_verifies() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "djangofmt").await;
    let encoded_keys = "dGhpcyBpcyBhIHRlc3Qga2V5IG9mIDMyIGJ5dGVzISE=";
    let keys = TokenKeys::parse(encoded_keys).expect("key");
    let mut env = serve_env(&moto.url, &table);
    env.extend([("TOKEN_KEYS", encoded_keys), ("HASH_FORMAT", "django")]);
    let server = DevServer::start_with_args(&["--backend", "aws", "--dev-routes"], &env);
    let uid = server
        .create_user("django@example.org", "the old password 1", true)
        .await;
    let store = DynamoStore::new(sdk().dynamodb(&moto.url), table);
    let read = |uid: String| {
        let store = &store;
        async move {
            store
                .find_by_uid(&UserId::parse(&uid).expect("uid"))
                .await
                .expect("read")
                .expect("user")
        }
    };
    let before = read(uid.clone()).await;
    let token = TokenSigner::new(keys, 3600).sign(
        TokenSubject {
            uid: &before.uid,
            email: &before.email,
            password_hash: before.password_hash.as_ref().expect("hash"),
        },
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let new_password = "\u{FB01}ddle violin kettle quartz";
    assert_eq!(
        server
            .confirm(&uid, token.as_str(), new_password)
            .await
            .status,
        200
    );
    let after = read(uid).await;
    let stored = after.password_hash.expect("hash");
    assert!(
        stored
            .as_str()
            .starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
        "Django's argon2 encoding"
    );
    // The NFKC form, as the integration guide tells a sign-in to normalise.
    assert!(django_check_password(
        "fiddle violin kettle quartz",
        stored.as_str()
    ));
    assert!(!django_check_password(
        "the old password 1",
        stored.as_str()
    ));
    assert!(server.login("django@example.org", new_password).await);
    assert!(
        !server
            .login("django@example.org", "the old password 1")
            .await
    );
}

/// `serve --backend aws` delivers as the deployed stack does: the table's stream, read
/// through the DynamoDB Streams API, goes through send-reset-email's batch code; with the
/// default `--mail console` the messages land in `/_dev/mail`.
#[tokio::test]
async fn serve_backend_aws_mails_from_the_table_stream() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "awsmail").await;
    let env = serve_env(&moto.url, &table);
    let server = DevServer::start_with_args(&["--backend", "aws", "--dev-routes"], &env);
    server
        .create_user("stream@example.org", "the old password 1", true)
        .await;
    // A missing address first: the stream is read in order, so once the existing
    // address's mail is here, the missing one's item has been handled, unmailed.
    assert_eq!(server.request_reset("nobody@example.org").await.status, 202);
    let (uid, token) = server.reset_link("Stream@Example.org").await;
    let mail = server.mail().await;
    assert_eq!(mail.len(), 1, "only the account is mailed");
    assert_eq!(mail[0].to, "stream@example.org", "at the stored address");
    assert_eq!(
        server
            .confirm(&uid, &token, "violin kettle mango quartz")
            .await
            .status,
        200
    );
    let mail = server.wait_for_mail(2).await;
    assert_eq!(mail.len(), 2, "the password-changed notice");
    assert!(mail[1].subject.contains("changed"), "{}", mail[1].subject);
    assert!(
        server
            .login("stream@example.org", "violin kettle mango quartz")
            .await
    );
}

/// Runs `pwreset user add` on a pseudo-terminal (Python's `pty`), typing `first` and `again`
/// at the two prompts; returns the exit status and everything the terminal showed.
fn user_add_at_a_terminal(
    moto: &str,
    table: &str,
    email: &str,
    first: &str,
    again: &str,
) -> (i32, String) {
    let script = r#"
import os, pty, signal, sys, termios, time
bin, email, table, first, again = sys.argv[1:6]
signal.alarm(30)  # a pwreset that never prompts fails the test instead of hanging it
pid, fd = pty.fork()
if pid == 0:
    os.execv(bin, [bin, "user", "add", email, "--table", table])
seen = b""
def read_until(marker):
    global seen
    while marker not in seen:
        chunk = os.read(fd, 1024)
        if not chunk:
            return False
        seen += chunk
    return True
def type_when_echo_is_off(text):
    # As a person would: after the prompt has switched echo off (it prints first).
    deadline = time.monotonic() + 10
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            sys.exit("echo never went off")
        time.sleep(0.005)
    os.write(fd, text.encode() + b"\n")
if read_until(b"Password: "):
    type_when_echo_is_off(first)
    if read_until(b"again: "):
        type_when_echo_is_off(again)
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let output = on_moto(
        Command::new("python3")
            .args(["-c", script])
            .arg(pwreset_bin())
            .args([email, table, first, again]),
        moto,
    )
    .output()
    .expect("python3 with pty");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn user_add_at_a_terminal_asks_twice_without_echo() {
    let moto = emulators::moto();
    let table = created_table(&moto.url, "tty").await;
    let password = "a typed secret 42";
    let (status, screen) =
        user_add_at_a_terminal(&moto.url, &table, "tty@example.org", password, password);
    assert_eq!(status, 0, "{screen}");
    assert!(
        screen.contains("Password: ") && screen.contains("Password again: "),
        "{screen}"
    );
    assert!(
        !screen.contains(password),
        "the password was echoed: {screen}"
    );
    let store = DynamoStore::new(sdk().dynamodb(&moto.url), table.clone());
    let user = only_user(&store, "tty@example.org")
        .await
        .expect("the user was added");
    assert!(
        PasswordHasher::owasp()
            .verify(SecretString::from(password), user.password_hash)
            .await
            .expect("verify")
    );

    let (status, screen) = user_add_at_a_terminal(
        &moto.url,
        &table,
        "typo@example.org",
        password,
        "a typed secret 43",
    );
    assert_ne!(status, 0, "{screen}");
    assert!(screen.contains("differ"), "{screen}");
    assert!(
        only_user(&store, "typo@example.org").await.is_none(),
        "nothing was added"
    );
}

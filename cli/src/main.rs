//! `pwreset`: the dev server (the embedded default a newcomer runs first) and admin commands.

#[cfg(feature = "aws")]
mod admin;
mod dev;
mod pages;
#[cfg(feature = "aws")]
mod redrive;
mod serve;
#[cfg(feature = "aws")]
mod stream_reader;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::serve::{Backend, MailOutput};

#[derive(Debug, Parser)]
#[command(
    name = "pwreset",
    version,
    about = "Self-service password reset: dev server and admin commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the whole API, an in-process mail outbox and a reference web page.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        #[arg(long, value_enum, default_value_t = Backend::Memory)]
        backend: Backend,
        /// Do not create the demo user (--backend memory only: it is never written into a
        /// DynamoDB table).
        #[arg(long)]
        no_demo: bool,
        /// With --backend aws, also serve the /_dev/* routes (user creation, a password
        /// check, the local mailbox). They are on by default only with --backend memory, and
        /// in either case only on a loopback address for a loopback Host.
        #[arg(long)]
        dev_routes: bool,
        /// With --backend aws, where the mail the table's stream asks for goes: printed
        /// here and kept for /_dev/mail (console), or sent through SES v2 (ses;
        /// AWS_ENDPOINT_URL_SESV2 for an emulator). --backend memory always prints it.
        #[arg(long, value_enum, default_value_t = MailOutput::Console)]
        mail: MailOutput,
    },
    /// Manage the DynamoDB table (needs the `aws` feature).
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Manage users in the DynamoDB table (needs the `aws` feature).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Chores over a whole users table (needs the `aws` feature).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Recovery of the outbox in pwreset's table (needs the `aws` feature).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Deliver again, as send-reset-email does (SES v2; the configuration send-reset-email
    /// reads: TOKEN_KEYS or TOKEN_KEYS_SECRET_ID, RESET_LINK_TEMPLATE, MAIL_FROM, …), the jobs
    /// that never went out: those the stream's failure destination recorded (--queue-url),
    /// or every outbox item of a past window not marked delivered (--since). Each job is
    /// claimed before it is sent, so running it twice sends nothing twice. Exits non-zero
    /// when a job failed again or a failure record was left in the queue.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["queue_url", "since"])))]
    Redrive {
        /// pwreset's table (default: $TABLE_NAME).
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
        /// The SQS queue the stream mapping sends failed batches to (the stack's
        /// DeliveryFailureQueueUrl output); each of its records names a range of the stream,
        /// which keeps records for 24 hours.
        #[arg(long, value_name = "URL")]
        queue_url: Option<String>,
        /// Undelivered jobs written in this window (e.g. 6h, 2d; the outbox keeps a week),
        /// leaving the last hour to the stream mapping's own retries.
        #[arg(long, value_name = "WINDOW", value_parser = parse_since)]
        since: Option<std::time::Duration>,
        /// Count what would be delivered; send nothing, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[cfg(feature = "aws")]
fn parse_since(raw: &str) -> Result<std::time::Duration, String> {
    redrive::parse_window(raw)
}

#[cfg(not(feature = "aws"))]
fn parse_since(_raw: &str) -> Result<std::time::Duration, String> {
    Err(NEEDS_AWS.to_owned())
}

fn parse_language(raw: &str) -> Result<pwreset_core::i18n::Locale, String> {
    pwreset_core::i18n::Locale::from_tag(raw)
        .ok_or_else(|| format!("expected one of en, de, fr, es, got {raw:?}"))
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Write pwreset's normalised e-mail key into USERS_EMAIL_KEY_ATTRIBUTE of every user
    /// in a team's table (USERS_EMAIL_MATCH=key), each write conditional on the address it
    /// was computed from. Safe to run again; interrupted, it resumes where it stopped.
    BackfillKeys {
        /// pwreset's table; the users table is USERS_TABLE.
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
        /// Start after this position (printed after every page and on interruption).
        #[arg(long, value_name = "TOKEN")]
        resume: Option<String>,
        /// Items read per page.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Create the table (idempotent): keys, stream, TTL.
    Create {
        /// pwreset's table (its users table beside it unless USERS_* describes yours).
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
    },
}

/// Which account a user command means, and where it lives.
#[derive(Debug, clap::Args)]
struct Account {
    /// The account's address (matched as a reset matches it: NFKC, case folded, trimmed).
    email: String,
    /// The account's id, when several accounts of a team's table share the address.
    #[arg(long)]
    uid: Option<String>,
    /// pwreset's table; the users table is USERS_TABLE (default <table>-users).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from stdin (at a terminal: typed twice, not shown).
    Add {
        /// The new user's address, stored as given (mail goes there).
        email: String,
        /// Create the user inactive (gets no reset mail).
        #[arg(long)]
        inactive: bool,
        /// The user's language (en, de, fr, es): their mail speaks it whatever a request
        /// asks for. Unset: the language of each request.
        #[arg(long, value_parser = parse_language)]
        language: Option<pwreset_core::i18n::Locale>,
        /// pwreset's table; the users table is USERS_TABLE (default <table>-users).
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
    },
    /// Show an account: id, stored address, active flag, the kind of password hash (never
    /// the hash), credential version, language.
    Show {
        #[command(flatten)]
        account: Account,
    },
    /// Disable an account: no reset mail, no reset or change, every outstanding link dead.
    Disable {
        #[command(flatten)]
        account: Account,
    },
    /// Enable a disabled account again.
    Enable {
        #[command(flatten)]
        account: Account,
    },
    /// Delete an account (pwreset's own users table only), after asking at a terminal.
    Delete {
        #[command(flatten)]
        account: Account,
        /// Delete without asking (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Change an account's address: mail goes to the new one, outstanding links die, and in
    /// pwreset's own layout the lookup moves in the same transaction.
    SetEmail {
        #[command(flatten)]
        account: Account,
        /// The new address.
        new_email: String,
    },
    /// Import users from `manage.py dumpdata auth.user` output, keeping their hashes and
    /// Django's primary key as the id. Reads the file as a stream, writes with bounded
    /// parallelism, reports every skipped row and why, and exits non-zero when any was.
    Import {
        /// The dumpdata JSON file (an array of objects; other models are passed over).
        #[arg(long, value_name = "DUMPDATA_JSON")]
        django: PathBuf,
        /// Check every row (against the table too) and report; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Users written at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// pwreset's table; the users table is USERS_TABLE (default <table>-users).
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Dependencies never log above DEBUG, whatever RUST_LOG says (see log_event_allowed);
    // metric events are for CloudWatch (the Lambda functions' EMF lines), not this console.
    let dependencies_capped = tracing_subscriber::filter::filter_fn(|meta| {
        pwreset_core::log_event_allowed(meta.target(), meta.level())
            && meta.target() != pwreset_core::metrics::METRIC_TARGET
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .finish()
        .with(dependencies_capped)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve {
            addr,
            backend,
            no_demo,
            dev_routes,
            mail,
        } => serve::run(addr, backend, !no_demo, dev_routes, mail).await,
        Command::Table { command } => table(command).await,
        Command::User { command } => user(command).await,
        Command::Users { command } => users(command).await,
        Command::Outbox { command } => outbox(command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pwreset: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "aws"))]
pub(crate) const NEEDS_AWS: &str =
    "this build has no AWS support: rebuild with `cargo run -p pwreset --features aws -- …`";

#[cfg(feature = "aws")]
async fn table(command: TableCommand) -> anyhow::Result<()> {
    match command {
        TableCommand::Create { table } => admin::table_create(&admin::table_name(table)?).await,
    }
}

#[cfg(feature = "aws")]
async fn user(command: UserCommand) -> anyhow::Result<()> {
    use admin::Change;
    match command {
        UserCommand::Add {
            email,
            inactive,
            language,
            table,
        } => admin::user_add(admin::table_name(table)?, &email, inactive, language).await,
        UserCommand::Show { account } => {
            admin::user_show(
                admin::table_name(account.table)?,
                &account.email,
                account.uid.as_deref(),
            )
            .await
        }
        UserCommand::Disable { account } => {
            let table = admin::table_name(account.table)?;
            admin::user_change(
                table,
                &account.email,
                account.uid.as_deref(),
                Change::Active(false),
            )
            .await
        }
        UserCommand::Enable { account } => {
            let table = admin::table_name(account.table)?;
            admin::user_change(
                table,
                &account.email,
                account.uid.as_deref(),
                Change::Active(true),
            )
            .await
        }
        UserCommand::Delete { account, yes } => {
            let table = admin::table_name(account.table)?;
            admin::user_change(
                table,
                &account.email,
                account.uid.as_deref(),
                Change::Delete { confirmed: yes },
            )
            .await
        }
        UserCommand::SetEmail { account, new_email } => {
            let table = admin::table_name(account.table)?;
            admin::user_change(
                table,
                &account.email,
                account.uid.as_deref(),
                Change::Email(new_email),
            )
            .await
        }
        UserCommand::Import {
            django,
            dry_run,
            concurrency,
            table,
        } => {
            let report = admin::user_import_django(
                admin::table_name(table)?,
                &django,
                admin::ImportOptions {
                    dry_run,
                    concurrency: usize::from(concurrency),
                },
            )
            .await?;
            if report.skipped() > 0 {
                anyhow::bail!("{} rows were skipped (listed above)", report.skipped());
            }
            Ok(())
        }
    }
}

#[cfg(feature = "aws")]
async fn users(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::BackfillKeys {
            table,
            resume,
            page_size,
        } => admin::users_backfill_keys(admin::table_name(table)?, resume, page_size).await,
    }
}

#[cfg(feature = "aws")]
async fn outbox(command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::Redrive {
            table,
            queue_url,
            since,
            dry_run,
        } => {
            let source = match (queue_url, since) {
                (Some(url), _) => redrive::Source::Queue(url),
                (None, Some(window)) => redrive::Source::Since(window),
                (None, None) => anyhow::bail!("give --queue-url or --since"),
            };
            let summary = redrive::run(admin::table_name(table)?, source, dry_run).await?;
            println!("{summary}");
            if !summary.is_clean() {
                anyhow::bail!("some jobs are still undelivered: run it again later");
            }
            Ok(())
        }
    }
}

#[cfg(not(feature = "aws"))]
async fn outbox(_command: OutboxCommand) -> anyhow::Result<()> {
    anyhow::bail!(NEEDS_AWS)
}

#[cfg(not(feature = "aws"))]
async fn users(_command: UsersCommand) -> anyhow::Result<()> {
    anyhow::bail!(NEEDS_AWS)
}

#[cfg(not(feature = "aws"))]
async fn table(_command: TableCommand) -> anyhow::Result<()> {
    anyhow::bail!(NEEDS_AWS)
}

#[cfg(not(feature = "aws"))]
async fn user(_command: UserCommand) -> anyhow::Result<()> {
    anyhow::bail!(NEEDS_AWS)
}

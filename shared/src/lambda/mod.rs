//! What every Lambda `main` shares: JSON logs and EMF metrics, the AWS adapters wired
//! from configuration. Each function's `main.rs` stays a few lines of wiring.

use std::sync::Arc;

use crate::adapters::LambdaEnvironment;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::secrets::config_from_env;
use crate::config::{self, Config, ConfigError, LambdaNeeds, Mode, UsersTable};

mod output;

pub use output::{INVOKE_SPAN, LambdaOutput};

use tracing_subscriber::filter::{FilterFn, LevelFilter, Targets};

use crate::metrics::METRIC_TARGET;

/// The functions' logs and metrics on stdout ([`LambdaOutput`]: Powertools-shaped JSON log
/// lines and EMF metric lines), filtered by [`lambda_filter`] from `AWS_LAMBDA_LOG_LEVEL`
/// (what Lambda's logging configuration sets) or else `RUST_LOG`.
pub fn init_tracing() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let service = env("POWERTOOLS_SERVICE_NAME").unwrap_or_else(|| "pwreset".to_owned());
    let function_name = env("AWS_LAMBDA_FUNCTION_NAME")
        .or_else(|| {
            std::env::current_exe().ok().and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_default();
    let filter = lambda_filter(
        env("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        env("RUST_LOG").as_deref(),
    );
    tracing_subscriber::registry()
        .with(LambdaOutput::new(service, function_name, std::io::stdout).with_filter(filter))
        .init();
}

/// What [`LambdaOutput`] sees: every metric; the invocation span (whatever the level, so
/// each line knows its request id); and the log events the level allows.
///
/// The level is `AWS_LAMBDA_LOG_LEVEL` when set (`TRACE` … `ERROR`; `FATAL` reads as
/// `ERROR`), else the `RUST_LOG` directives (`target=level`, as `tracing_subscriber`'s
/// `Targets` reads them: no regex engine in the zips), else `INFO`. Dependencies are capped
/// at `DEBUG` on top of it ([`crate::log_event_allowed`]).
pub fn lambda_filter(
    aws_lambda_log_level: Option<&str>,
    rust_log: Option<&str>,
) -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool + Clone + use<>> {
    let lambda_level =
        aws_lambda_log_level.and_then(|raw| match raw.trim().to_ascii_uppercase().as_str() {
            "FATAL" => Some(LevelFilter::ERROR),
            other => other.parse::<LevelFilter>().ok(),
        });
    let targets = match lambda_level {
        Some(level) => Targets::new().with_default(level),
        None => rust_log
            .and_then(|directives| directives.parse::<Targets>().ok())
            .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO)),
    };
    tracing_subscriber::filter::filter_fn(move |meta| {
        if meta.is_span() {
            meta.name() == INVOKE_SPAN
        } else if meta.target() == METRIC_TARGET {
            true
        } else {
            targets.would_enable(meta.target(), meta.level())
                && crate::log_event_allowed(meta.target(), meta.level())
        }
    })
}

/// What every function reads at start-up: its configuration, its table, and the AWS
/// region and credentials the Lambda service provides.
#[derive(Debug)]
pub struct Startup {
    pub config: Config,
    pub table: String,
    /// `USERS_TABLE` and the `USERS_*` mapping.
    pub users: UsersTable,
    pub aws: LambdaEnvironment,
}

impl Startup {
    /// Reads it all, failing fast with a message that names the variable. With
    /// `TOKEN_KEYS_SECRET_ID` (and a function that uses the keys) the keys come from that
    /// Secrets Manager secret, read here once for the life of the execution environment.
    pub async fn load(needs: LambdaNeeds) -> Result<Self, ConfigError> {
        let loaded = Self::read(needs).await;
        if let Err(err) = &loaded {
            // One JSON line CloudWatch can search for, before the process exits (Lambda
            // reports the exit as Runtime.ExitError).
            tracing::error!(event = "startup_failed", "{err}");
        }
        loaded
    }

    async fn read(needs: LambdaNeeds) -> Result<Self, ConfigError> {
        let table = config::required("TABLE_NAME")?;
        let aws = LambdaEnvironment::from_env()?;
        let config = config_from_env(&Mode::Lambda(needs), || aws.secretsmanager_client()).await?;
        Ok(Self {
            config,
            users: UsersTable::from_env(&table)?,
            table,
            aws,
        })
    }

    /// The tables' adapter, with its SDK client built once for the life of the execution
    /// environment (connections and TLS sessions survive warm invocations).
    pub fn store(&self) -> Arc<DynamoStore> {
        Arc::new(
            DynamoStore::new(self.aws.dynamodb_client(), self.table.clone())
                .with_users(self.users.clone()),
        )
    }
}

//! What every Lambda `main` shares: JSON logs, the HTTP runner, the AWS adapters wired
//! from configuration. Each function's `main.rs` stays a few lines of wiring.

use std::sync::Arc;

use crate::adapters::LambdaEnvironment;
use crate::adapters::dynamodb::DynamoStore;
use crate::config::{self, Config, ConfigError, LambdaNeeds, Mode, UsersTable};

/// JSON lines (CloudWatch Logs Insights reads the fields), filtered by `RUST_LOG`
/// (`info` when unset or unreadable). The filter is `target=level` directives
/// (`info,pwreset_core=debug`): `tracing_subscriber`'s `Targets`, which needs no regex
/// engine, keeping the Lambda zips smaller than `EnvFilter` would. Dependencies are capped
/// at `DEBUG` on top of it ([`crate::log_event_allowed`]).
pub fn init_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let dependencies_capped = tracing_subscriber::filter::filter_fn(|meta| {
        crate::log_event_allowed(meta.target(), meta.level())
    });
    tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .finish()
        .with(filter)
        .with(dependencies_capped)
        .init();
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
    /// Reads it all, failing fast with a message that names the variable.
    pub fn load(needs: LambdaNeeds) -> Result<Self, ConfigError> {
        let table = config::required("TABLE_NAME")?;
        Ok(Self {
            config: Config::from_env(&Mode::Lambda(needs))?,
            users: UsersTable::from_env(&table)?,
            table,
            aws: LambdaEnvironment::from_env()?,
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

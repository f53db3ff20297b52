//! Secrets Manager: the one `GetSecretValue` a function makes at start-up when its token
//! keys live in a secret (`TOKEN_KEYS_SECRET_ID`) rather than in its environment, where
//! anyone allowed `lambda:GetFunctionConfiguration` could read them.

use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret as _, SecretString};

use super::aws::{Failure, classify_sdk_error};
use crate::config::{Config, ConfigError, Mode, TOKEN_KEYS_SECRET_ID};

/// Codes worth trying again (at the next cold start: a function that cannot read its keys
/// does not start).
const TRANSIENT_CODES: &[&str] = &["InternalServiceError", "Throttling"];

/// A Secrets Manager client from the environment with our timeouts and retries (the CLI's
/// way, see [`crate::adapters::aws_sdk_config`]).
pub async fn secretsmanager_client() -> Client {
    Client::new(&super::aws_sdk_config().await)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Unreachable, throttled, timed out: the next attempt may work.
    #[error("{0}")]
    Transient(String),
    /// Not found, not allowed, scheduled for deletion, or a binary secret.
    #[error("{0}")]
    Permanent(String),
}

/// The current string value of `secret_id` (a name or an ARN). Errors carry the service's
/// code and status, never the value or the service's free text.
pub async fn read_secret_string(
    client: &Client,
    secret_id: &str,
) -> Result<SecretString, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| {
            match classify_sdk_error("Secrets Manager GetSecretValue", &err, TRANSIENT_CODES) {
                Failure::Transient(message) => SecretError::Transient(message),
                Failure::Permanent(message) => SecretError::Permanent(message),
            }
        })?;
    output
        .secret_string()
        .map(|value| SecretString::from(value.to_owned()))
        .ok_or_else(|| {
            SecretError::Permanent(
                "Secrets Manager GetSecretValue: the secret has no string value (a binary \
                 secret?)"
                    .into(),
            )
        })
}

/// [`Config::from_env`], except that with `TOKEN_KEYS_SECRET_ID` set (and `TOKEN_KEYS` not)
/// the keys are that secret's value, read once here through `client()` and checked like
/// `TOKEN_KEYS`. A Lambda function that uses no keys (`request-reset`, `change-password`)
/// reads no secret. Errors name `TOKEN_KEYS_SECRET_ID` and never quote the value.
pub async fn config_from_env(
    mode: &Mode,
    client: impl FnOnce() -> Client,
) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let uses_keys = match mode {
        Mode::Lambda(needs) => needs.token_keys,
        Mode::DevServer { .. } => true,
    };
    let from_secret = match env(TOKEN_KEYS_SECRET_ID) {
        Some(id) if uses_keys && env("TOKEN_KEYS").is_none() => Some(
            read_secret_string(&client(), id.trim())
                .await
                .map_err(|err| ConfigError {
                    variable: TOKEN_KEYS_SECRET_ID,
                    problem: format!("could not read the secret: {err}"),
                })?,
        ),
        _ => None,
    };
    // The secret's value stands where TOKEN_KEYS would, and is checked the same way.
    let lookup = |name: &str| match (name, &from_secret) {
        ("TOKEN_KEYS", Some(value)) => Some(value.expose_secret().to_owned()),
        (TOKEN_KEYS_SECRET_ID, Some(_)) => None,
        _ => std::env::var(name).ok(),
    };
    Config::from_lookup(mode, lookup).map_err(|err| match (err.variable, &from_secret) {
        ("TOKEN_KEYS", Some(_)) => ConfigError {
            variable: TOKEN_KEYS_SECRET_ID,
            problem: format!(
                "the secret's value is not a TOKEN_KEYS value: {}",
                err.problem
            ),
        },
        _ => err,
    })
}

//! Configuration from the environment, validated once at start-up. A bad value stops
//! the process with a message that names the variable; secrets are wrapped so they never
//! print.

use std::fmt;

use crate::hashing::HashFormat;
use crate::mail::LinkTemplate;
use crate::policy::{DEFAULT_MIN_LENGTH, MAX_MIN_LENGTH};
use crate::ports::RateLimit;
use crate::service::Limits;
use crate::token::TokenKeys;

pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
/// Django's three days is too long for a link sitting in a mailbox; a day is the ceiling.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
pub const DEFAULT_LIMIT_PER_EMAIL: &str = "3/15m";
pub const DEFAULT_LIMIT_PER_IP: &str = "20/1m";
pub const DEFAULT_PRODUCT_NAME: &str = "pwreset";

/// Where the process runs decides which variables have defaults.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `pwreset serve`: everything has a default; links point at this server.
    DevServer { base_url: String },
    /// A Lambda function: what it needs is required, what it does not need is neither
    /// required nor used (least privilege: `request-reset` never holds the token keys).
    Lambda(LambdaNeeds),
}

/// Which secrets and mail settings a Lambda function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LambdaNeeds {
    /// `TOKEN_KEYS` (signing or verifying tokens).
    pub token_keys: bool,
    /// `RESET_LINK_TEMPLATE` and `MAIL_FROM` (sending mail).
    pub mail: bool,
}

impl LambdaNeeds {
    pub const ALL: Self = Self {
        token_keys: true,
        mail: true,
    };
}

/// Stands in for a setting a function does not use; never rendered or sent.
const UNUSED_LINK_TEMPLATE: &str = "https://unused.invalid/{uid}/{token}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuration error in {}: {}",
            self.variable, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

#[derive(Clone)]
pub struct Config {
    pub token_lifetime_secs: u64,
    pub link_template: LinkTemplate,
    pub token_keys: TokenKeys,
    /// True when `TOKEN_KEYS` was not set and a random per-process key is in use.
    pub token_keys_generated: bool,
    pub min_password_length: usize,
    pub limits: Limits,
    pub mail_from: String,
    pub product_name: String,
    /// `HASH_FORMAT`: how a reset spells the new hash.
    pub hash_format: HashFormat,
    /// `EVENT_BUS_NAME`: where `PasswordChanged` events go (a name or an ARN); none are sent
    /// when unset.
    pub event_bus: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("link_template", &self.link_template)
            .field("token_keys", &self.token_keys)
            .field("min_password_length", &self.min_password_length)
            .field("limits", &self.limits)
            .field("mail_from", &self.mail_from)
            .field("product_name", &self.product_name)
            .field("hash_format", &self.hash_format)
            .field("event_bus", &self.event_bus)
            .finish()
    }
}

impl Config {
    pub fn from_env(mode: &Mode) -> Result<Self, ConfigError> {
        Self::from_lookup(mode, |name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (the environment, or a map in tests). Empty counts as unset.
    pub fn from_lookup(
        mode: &Mode,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let needs = match mode {
            Mode::DevServer { .. } => None,
            Mode::Lambda(needs) => Some(*needs),
        };

        let token_lifetime_secs = match get("PASSWORD_RESET_TIMEOUT") {
            None => DEFAULT_TIMEOUT_SECS,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => secs,
                _ => {
                    return Err(error(
                        "PASSWORD_RESET_TIMEOUT",
                        format!("expected whole seconds from 1 to {MAX_TIMEOUT_SECS}, got {raw:?}"),
                    ));
                }
            },
        };

        let link_template = match (get("RESET_LINK_TEMPLATE"), mode) {
            (Some(raw), _) => LinkTemplate::parse(&raw)
                .map_err(|e| error("RESET_LINK_TEMPLATE", e.to_string()))?,
            (None, Mode::DevServer { base_url }) => LinkTemplate::parse(&format!(
                "{}/reset#uid={{uid}}&token={{token}}",
                base_url.trim_end_matches('/')
            ))
            .map_err(|e| error("RESET_LINK_TEMPLATE", e.to_string()))?,
            (None, Mode::Lambda(needs)) if needs.mail => {
                return Err(error(
                    "RESET_LINK_TEMPLATE",
                    "is required, e.g. https://app.example/reset#uid={uid}&token={token}",
                ));
            }
            (None, Mode::Lambda(_)) => LinkTemplate::parse(UNUSED_LINK_TEMPLATE)
                .map_err(|e| error("RESET_LINK_TEMPLATE", e.to_string()))?,
        };

        // Never echo the value of a secret in an error.
        let (token_keys, token_keys_generated) = match get("TOKEN_KEYS") {
            Some(raw) => (
                TokenKeys::parse(&raw).map_err(|e| error("TOKEN_KEYS", e.to_string()))?,
                false,
            ),
            None if needs.is_some_and(|n| n.token_keys) => {
                return Err(error(
                    "TOKEN_KEYS",
                    "is required: comma-separated base64 keys of at least 32 bytes (e.g. `openssl rand -base64 32`)",
                ));
            }
            None => (TokenKeys::generate(), true),
        };

        let min_password_length = match get("PASSWORD_MIN_LENGTH") {
            None => DEFAULT_MIN_LENGTH,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (8..=MAX_MIN_LENGTH).contains(&n) => n,
                _ => {
                    return Err(error(
                        "PASSWORD_MIN_LENGTH",
                        format!("expected a number from 8 to {MAX_MIN_LENGTH}, got {raw:?}"),
                    ));
                }
            },
        };

        let limit = |name: &'static str, default: &str| -> Result<Option<RateLimit>, ConfigError> {
            let raw = get(name).unwrap_or_else(|| default.to_owned());
            RateLimit::parse(&raw).map_err(|e| error(name, format!("{e}, got {raw:?}")))
        };
        let limits = Limits {
            per_email: limit("RESET_LIMIT_PER_EMAIL", DEFAULT_LIMIT_PER_EMAIL)?,
            per_ip: limit("RESET_LIMIT_PER_IP", DEFAULT_LIMIT_PER_IP)?,
        };

        let mail_from = match get("MAIL_FROM") {
            Some(raw) => {
                let raw = raw.trim().to_owned();
                if raw.chars().any(char::is_control) || !raw.contains('@') {
                    return Err(error(
                        "MAIL_FROM",
                        format!("expected an e-mail address, got {raw:?}"),
                    ));
                }
                raw
            }
            None if needs.is_some_and(|n| n.mail) => {
                return Err(error(
                    "MAIL_FROM",
                    "is required: the SES-verified sender address",
                ));
            }
            // The dev server's sender; in a function that sends nothing, never used.
            None => "no-reply@localhost".to_owned(),
        };

        let product_name = match get("PRODUCT_NAME") {
            Some(raw) if raw.chars().any(char::is_control) || raw.len() > 100 => {
                return Err(error(
                    "PRODUCT_NAME",
                    "expected one line of at most 100 bytes",
                ));
            }
            Some(raw) => raw.trim().to_owned(),
            None => DEFAULT_PRODUCT_NAME.to_owned(),
        };

        let hash_format = hash_format(get("HASH_FORMAT"))?;

        let event_bus = match get("EVENT_BUS_NAME") {
            Some(raw) => {
                let bus = raw.trim();
                let valid = bus.len() <= 1600
                    && bus
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
                if !valid {
                    return Err(error(
                        "EVENT_BUS_NAME",
                        "expected an event bus name or ARN (letters, digits, . _ - / :)",
                    ));
                }
                Some(bus.to_owned())
            }
            None => None,
        };

        Ok(Self {
            token_lifetime_secs,
            link_template,
            token_keys,
            token_keys_generated,
            min_password_length,
            limits,
            mail_from,
            product_name,
            hash_format,
            event_bus,
        })
    }
}

/// `HASH_FORMAT` alone, for the admin commands that write hashes but need nothing else
/// ([`Config`] reads it the same way).
pub fn hash_format_from_env() -> Result<HashFormat, ConfigError> {
    hash_format(
        std::env::var("HASH_FORMAT")
            .ok()
            .filter(|v| !v.trim().is_empty()),
    )
}

fn hash_format(raw: Option<String>) -> Result<HashFormat, ConfigError> {
    match raw {
        Some(raw) => raw
            .parse()
            .map_err(|e: crate::hashing::HashFormatSyntax| error("HASH_FORMAT", e.to_string())),
        None => Ok(HashFormat::default()),
    }
}

/// Reads a required plain variable (e.g. `TABLE_NAME`).
pub fn required(variable: &'static str) -> Result<String, ConfigError> {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| error(variable, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn dev() -> Mode {
        Mode::DevServer {
            base_url: "http://127.0.0.1:3000".into(),
        }
    }

    fn load(mode: &Mode, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(mode, |name| map.get(name).cloned())
    }

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn the_dev_server_needs_nothing() {
        let config = load(&dev(), &[]).expect("defaults");
        assert_eq!(config.token_lifetime_secs, 3600);
        assert_eq!(config.min_password_length, 12);
        assert_eq!(
            config.link_template.as_str(),
            "http://127.0.0.1:3000/reset#uid={uid}&token={token}"
        );
        assert!(config.token_keys_generated);
        assert_eq!(
            config.limits.per_email,
            Some(RateLimit {
                max: 3,
                window: Duration::from_secs(900)
            })
        );
        assert_eq!(
            config.limits.per_ip,
            Some(RateLimit {
                max: 20,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(config.mail_from, "no-reply@localhost");
    }

    #[test]
    fn lambda_mode_names_each_missing_required_variable() {
        let err = load(&Mode::Lambda(LambdaNeeds::ALL), &[]).expect_err("must fail");
        assert_eq!(err.variable, "RESET_LINK_TEMPLATE");
        let err = load(
            &Mode::Lambda(LambdaNeeds::ALL),
            &[("RESET_LINK_TEMPLATE", "https://a.example/#{uid}/{token}")],
        )
        .expect_err("must fail");
        assert_eq!(err.variable, "TOKEN_KEYS");
        let err = load(
            &Mode::Lambda(LambdaNeeds::ALL),
            &[
                ("RESET_LINK_TEMPLATE", "https://a.example/#{uid}/{token}"),
                ("TOKEN_KEYS", KEY),
            ],
        )
        .expect_err("must fail");
        assert_eq!(err.variable, "MAIL_FROM");
        assert!(
            load(
                &Mode::Lambda(LambdaNeeds::ALL),
                &[
                    ("RESET_LINK_TEMPLATE", "https://a.example/#{uid}/{token}"),
                    ("TOKEN_KEYS", KEY),
                    ("MAIL_FROM", "a@b.org")
                ],
            )
            .is_ok()
        );
    }

    #[test]
    fn a_function_is_not_asked_for_what_it_does_not_use() {
        let request_only = Mode::Lambda(LambdaNeeds {
            token_keys: false,
            mail: false,
        });
        assert!(load(&request_only, &[]).is_ok());
        let confirm = Mode::Lambda(LambdaNeeds {
            token_keys: true,
            mail: false,
        });
        assert_eq!(
            load(&confirm, &[]).expect_err("keys").variable,
            "TOKEN_KEYS"
        );
        assert!(load(&confirm, &[("TOKEN_KEYS", KEY)]).is_ok());
    }

    #[test]
    fn bad_values_stop_start_up_with_the_variable_named() {
        for (name, value) in [
            ("PASSWORD_RESET_TIMEOUT", "soon"),
            ("PASSWORD_RESET_TIMEOUT", "0"),
            ("PASSWORD_RESET_TIMEOUT", "259200"),
            ("PASSWORD_MIN_LENGTH", "4"),
            ("PASSWORD_MIN_LENGTH", "65"),
            ("RESET_LIMIT_PER_EMAIL", "lots"),
            ("RESET_LIMIT_PER_IP", "20/1d"),
            ("RESET_LINK_TEMPLATE", "https://a.example/{uid}"),
            ("TOKEN_KEYS", "c2hvcnQ="),
            ("MAIL_FROM", "nobody"),
            ("HASH_FORMAT", "bcrypt"),
            ("EVENT_BUS_NAME", "my bus"),
        ] {
            let err = load(&dev(), &[(name, value)])
                .err()
                .unwrap_or_else(|| panic!("{name}={value} must fail"));
            assert_eq!(err.variable, name);
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn a_bad_key_is_not_echoed_in_the_error() {
        let err = load(&dev(), &[("TOKEN_KEYS", "c2VjcmV0LXNob3J0")]).expect_err("must fail");
        assert!(!err.to_string().contains("c2VjcmV0LXNob3J0"));
    }

    #[test]
    fn limits_can_be_switched_off() {
        let config = load(
            &dev(),
            &[
                ("RESET_LIMIT_PER_EMAIL", "off"),
                ("RESET_LIMIT_PER_IP", "off"),
            ],
        )
        .expect("valid");
        assert_eq!(
            config.limits,
            Limits {
                per_email: None,
                per_ip: None
            }
        );
    }
}

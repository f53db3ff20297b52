//! Configuration from the environment, validated once at start-up. A bad value stops
//! the process with a message that names the variable; secrets are wrapped so they never
//! print.

use std::fmt;

use crate::hashing::HashFormat;
use crate::mail::LinkTemplate;
use crate::policy::{DEFAULT_MIN_LENGTH, MAX_MIN_LENGTH};
use crate::ports::RateLimit;
use crate::service::{ChangeLimits, Limits};
use crate::token::TokenKeys;

pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
/// Django's three days is too long for a link sitting in a mailbox; a day is the ceiling.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
pub const DEFAULT_LIMIT_PER_EMAIL: &str = "3/15m";
pub const DEFAULT_LIMIT_PER_IP: &str = "20/1m";
pub const DEFAULT_CHANGE_LIMIT_FAILURES: &str = "5/15m";
pub const DEFAULT_CHANGE_LIMIT_PER_IP: &str = "20/1m";
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

/// A Secrets Manager secret (name or ARN) whose string value is what `TOKEN_KEYS` would
/// hold; the Lambda functions read it once per execution environment
/// ([`crate::lambda::Startup::load`]).
pub const TOKEN_KEYS_SECRET_ID: &str = "TOKEN_KEYS_SECRET_ID";

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

/// Comma-separated origins, each `http://` or `https://` and a host with an optional port,
/// nothing after it; `*` is refused (name the frontends).
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = authority.is_some_and(|authority| {
            !authority.is_empty()
                && authority
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
        if !valid {
            return Err(format!(
                "expected comma-separated origins such as https://app.example.com or \
                 http://localhost:5173 (scheme, host, optional port; no path, no *), got {origin:?}"
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}

/// Comma-separated absolute `http(s)://` URLs, each with a host, no whitespace, quotes or
/// angle brackets (they end up in a link and an `href`).
fn parse_return_urls(raw: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for url in raw.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let valid = rest.is_some_and(|rest| {
            !rest.is_empty()
                && !rest.starts_with(['/', '?', '#'])
                && !url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "\"'<>`\\".contains(c))
        });
        if !valid {
            return Err(format!(
                "expected comma-separated absolute URLs such as https://app.example.com/signin, got {url:?}"
            ));
        }
        urls.push(url.to_owned());
    }
    Ok(urls)
}

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
    /// `CHANGE_LIMIT_FAILURES` / `CHANGE_LIMIT_PER_IP`: failed `POST /password-change`
    /// attempts per account and per client address.
    pub change_limits: ChangeLimits,
    pub mail_from: String,
    pub product_name: String,
    /// `HASH_FORMAT`: how a reset spells the new hash.
    pub hash_format: HashFormat,
    /// `EVENT_BUS_NAME`: where `PasswordChanged` events go (a name or an ARN); none are sent
    /// when unset.
    pub event_bus: Option<String>,
    /// `CORS_ALLOW_ORIGINS`: origins (`scheme://host[:port]`) a browser may call the API
    /// from; the dev server answers their preflights. Empty: no CORS headers at all.
    pub cors_allow_origins: Vec<String>,
    /// `RESET_RETURN_URLS`: the only `return_to` values `POST /password-reset` accepts
    /// (compared exactly). Empty: none.
    pub return_urls: Vec<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("link_template", &self.link_template)
            .field("token_keys", &self.token_keys)
            .field("min_password_length", &self.min_password_length)
            .field("limits", &self.limits)
            .field("change_limits", &self.change_limits)
            .field("mail_from", &self.mail_from)
            .field("product_name", &self.product_name)
            .field("hash_format", &self.hash_format)
            .field("event_bus", &self.event_bus)
            .field("cors_allow_origins", &self.cors_allow_origins)
            .field("return_urls", &self.return_urls)
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
        if get("TOKEN_KEYS").is_some() && get(TOKEN_KEYS_SECRET_ID).is_some() {
            return Err(error(
                TOKEN_KEYS_SECRET_ID,
                "is set together with TOKEN_KEYS: set one of the two (the secret in AWS, \
                 TOKEN_KEYS for local runs)",
            ));
        }
        // Read by the Lambda functions and `serve --backend aws`, which put its value in
        // TOKEN_KEYS' place before this runs ([`crate::adapters::secrets::config_from_env`]);
        // anywhere else it would silently be ignored.
        if get(TOKEN_KEYS_SECRET_ID).is_some() && !matches!(mode, Mode::Lambda(_)) {
            return Err(error(
                TOKEN_KEYS_SECRET_ID,
                "is read by the Lambda functions and pwreset serve --backend aws: give this \
                 one TOKEN_KEYS",
            ));
        }
        let (token_keys, token_keys_generated) = match get("TOKEN_KEYS") {
            Some(raw) => (
                TokenKeys::parse(&raw).map_err(|e| error("TOKEN_KEYS", e.to_string()))?,
                false,
            ),
            None if needs.is_some_and(|n| n.token_keys) => {
                return Err(error(
                    "TOKEN_KEYS",
                    "or TOKEN_KEYS_SECRET_ID is required: comma-separated base64 keys of at \
                     least 32 bytes (e.g. `openssl rand -base64 32`), or the name or ARN of a \
                     Secrets Manager secret holding them",
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
        let change_limits = ChangeLimits {
            failures: limit("CHANGE_LIMIT_FAILURES", DEFAULT_CHANGE_LIMIT_FAILURES)?,
            per_ip: limit("CHANGE_LIMIT_PER_IP", DEFAULT_CHANGE_LIMIT_PER_IP)?,
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

        let cors_allow_origins = match get("CORS_ALLOW_ORIGINS") {
            Some(raw) => {
                parse_origins(&raw).map_err(|problem| error("CORS_ALLOW_ORIGINS", problem))?
            }
            None => Vec::new(),
        };

        let return_urls = match get("RESET_RETURN_URLS") {
            Some(raw) => {
                parse_return_urls(&raw).map_err(|problem| error("RESET_RETURN_URLS", problem))?
            }
            None => Vec::new(),
        };

        Ok(Self {
            token_lifetime_secs,
            link_template,
            token_keys,
            token_keys_generated,
            min_password_length,
            limits,
            change_limits,
            mail_from,
            product_name,
            hash_format,
            event_bus,
            cors_allow_origins,
            return_urls,
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

/// `USERS_EMAIL_MATCH`: what the e-mail index's key attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailMatch {
    /// pwreset's normalised key ([`crate::domain::EmailKey`]).
    Key,
    /// The address trimmed and lower-cased ([`crate::domain::EmailLower`]).
    Lower,
}

/// The DynamoDB type of a team table's partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    S,
    N,
}

/// A team's users table, described by `USERS_*` (see the README's integration guide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMapping {
    pub key_attribute: String,
    /// `USERS_KEY_TYPE`; unset, pwreset learns it from the table's first answer.
    pub key_type: Option<KeyType>,
    pub email_index: String,
    pub email_attribute: String,
    pub email_key_attribute: String,
    pub email_match: EmailMatch,
    pub hash_attribute: String,
    pub active_attribute: Option<String>,
    pub credential_version_attribute: Option<String>,
    /// `USERS_LOCALE_ATTRIBUTE`: S, a language tag (`de`, `fr-CA`); it wins over the
    /// request's `Accept-Language` for the user's mail.
    pub locale_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersLayout {
    /// pwreset's own: `USER#<uid>` items and one `EMAIL#<key>` lookup item per address.
    Own,
    Mapped(UserMapping),
}

/// Where users live: `USERS_TABLE` (default `<TABLE_NAME>-users`, pwreset's own layout)
/// and how its items look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersTable {
    pub name: String,
    pub layout: UsersLayout,
}

/// The variables that describe a team's table; each needs `USERS_KEY_ATTRIBUTE`.
const MAPPING_VARIABLES: &[&str] = &[
    "USERS_EMAIL_INDEX",
    "USERS_EMAIL_ATTRIBUTE",
    "USERS_EMAIL_KEY_ATTRIBUTE",
    "USERS_EMAIL_MATCH",
    "USERS_HASH_ATTRIBUTE",
    "USERS_ACTIVE_ATTRIBUTE",
    "USERS_CREDENTIAL_VERSION_ATTRIBUTE",
    "USERS_LOCALE_ATTRIBUTE",
    "USERS_KEY_TYPE",
];

impl UsersTable {
    /// pwreset's own users table beside `table`.
    pub fn own_beside(table: &str) -> Self {
        Self {
            name: format!("{table}-users"),
            layout: UsersLayout::Own,
        }
    }

    pub fn from_env(table: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(table, |name| std::env::var(name).ok())
    }

    /// Reads `USERS_*` through `lookup`; a bad or incomplete description stops start-up
    /// naming the variable. Empty counts as unset.
    pub fn from_lookup(
        table: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let name = match get("USERS_TABLE") {
            Some(name) => {
                let valid = (3..=1024).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
                if !valid {
                    return Err(error(
                        "USERS_TABLE",
                        "expected a DynamoDB table name or ARN (3 to 255 of A-Z a-z 0-9 . _ -)",
                    ));
                }
                name
            }
            None => Self::own_beside(table).name,
        };
        let attribute = |variable: &'static str| -> Result<Option<String>, ConfigError> {
            match get(variable) {
                Some(name) if name.len() > 255 || name.chars().any(char::is_control) => Err(error(
                    variable,
                    "expected an attribute name of 1 to 255 bytes",
                )),
                other => Ok(other),
            }
        };
        let Some(key_attribute) = attribute("USERS_KEY_ATTRIBUTE")? else {
            if let Some(variable) = MAPPING_VARIABLES.iter().find(|v| get(v).is_some()) {
                return Err(error(
                    variable,
                    "describes a team's users table: set USERS_KEY_ATTRIBUTE (its partition \
                     key) too, or unset it for pwreset's own layout",
                ));
            }
            return Ok(Self {
                name,
                layout: UsersLayout::Own,
            });
        };
        let email_index = attribute("USERS_EMAIL_INDEX")?.ok_or_else(|| {
            error(
                "USERS_EMAIL_INDEX",
                "is required with USERS_KEY_ATTRIBUTE: the global secondary index whose \
                 partition key is USERS_EMAIL_KEY_ATTRIBUTE",
            )
        })?;
        let email_attribute = attribute("USERS_EMAIL_ATTRIBUTE")?.unwrap_or_else(|| "email".into());
        let email_key_attribute =
            attribute("USERS_EMAIL_KEY_ATTRIBUTE")?.unwrap_or_else(|| email_attribute.clone());
        let email_match = match get("USERS_EMAIL_MATCH").map(|v| v.to_ascii_lowercase()) {
            None => EmailMatch::Key,
            Some(v) if v == "key" => EmailMatch::Key,
            Some(v) if v == "lower" => EmailMatch::Lower,
            Some(v) => {
                return Err(error(
                    "USERS_EMAIL_MATCH",
                    format!("expected key or lower, got {v:?}"),
                ));
            }
        };
        let key_type = match get("USERS_KEY_TYPE").map(|v| v.to_ascii_uppercase()) {
            None => None,
            Some(v) if v == "S" => Some(KeyType::S),
            Some(v) if v == "N" => Some(KeyType::N),
            Some(v) => {
                return Err(error(
                    "USERS_KEY_TYPE",
                    format!("expected S or N, got {v:?}"),
                ));
            }
        };
        let hash_attribute =
            attribute("USERS_HASH_ATTRIBUTE")?.unwrap_or_else(|| "password_hash".into());
        let active_attribute = attribute("USERS_ACTIVE_ATTRIBUTE")?;
        let credential_version_attribute = attribute("USERS_CREDENTIAL_VERSION_ATTRIBUTE")?;
        let locale_attribute = attribute("USERS_LOCALE_ATTRIBUTE")?;
        // One attribute, one meaning: only the address may double as the index's key.
        let mut seen: Vec<(&'static str, &str)> = vec![("USERS_KEY_ATTRIBUTE", &key_attribute)];
        let named = [
            ("USERS_EMAIL_ATTRIBUTE", Some(email_attribute.as_str())),
            ("USERS_HASH_ATTRIBUTE", Some(hash_attribute.as_str())),
            ("USERS_ACTIVE_ATTRIBUTE", active_attribute.as_deref()),
            (
                "USERS_CREDENTIAL_VERSION_ATTRIBUTE",
                credential_version_attribute.as_deref(),
            ),
            ("USERS_LOCALE_ATTRIBUTE", locale_attribute.as_deref()),
        ];
        for (variable, value) in named {
            let Some(value) = value else { continue };
            if let Some((other, _)) = seen.iter().find(|(_, v)| *v == value) {
                return Err(error(
                    variable,
                    format!("names the same attribute as {other} ({value:?})"),
                ));
            }
            seen.push((variable, value));
        }
        if let Some((other, _)) = seen
            .iter()
            .find(|(v, name)| *v != "USERS_EMAIL_ATTRIBUTE" && *name == email_key_attribute)
        {
            return Err(error(
                "USERS_EMAIL_KEY_ATTRIBUTE",
                format!("names the same attribute as {other} ({email_key_attribute:?})"),
            ));
        }
        Ok(Self {
            name,
            layout: UsersLayout::Mapped(UserMapping {
                key_attribute,
                key_type,
                email_index,
                email_attribute,
                email_key_attribute,
                email_match,
                hash_attribute,
                active_attribute,
                credential_version_attribute,
                locale_attribute,
            }),
        })
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

    fn users(vars: &[(&str, &str)]) -> Result<UsersTable, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        UsersTable::from_lookup("pwreset", |name| map.get(name).cloned())
    }

    #[test]
    fn users_live_beside_the_table_in_the_own_layout_by_default() {
        assert_eq!(users(&[]), Ok(UsersTable::own_beside("pwreset")));
        assert_eq!(
            users(&[("USERS_TABLE", "people")]).map(|u| (u.name, u.layout)),
            Ok(("people".to_owned(), UsersLayout::Own))
        );
    }

    #[test]
    fn a_team_table_is_described_with_defaults_for_what_is_left_out() {
        let table = users(&[
            ("USERS_TABLE", "app-users"),
            ("USERS_KEY_ATTRIBUTE", "id"),
            ("USERS_EMAIL_INDEX", "by_email"),
            ("USERS_EMAIL_MATCH", "lower"),
            ("USERS_CREDENTIAL_VERSION_ATTRIBUTE", "session_version"),
        ])
        .expect("valid");
        assert_eq!(
            table.layout,
            UsersLayout::Mapped(UserMapping {
                key_attribute: "id".into(),
                key_type: None,
                email_index: "by_email".into(),
                email_attribute: "email".into(),
                email_key_attribute: "email".into(),
                email_match: EmailMatch::Lower,
                hash_attribute: "password_hash".into(),
                active_attribute: None,
                credential_version_attribute: Some("session_version".into()),
                locale_attribute: None,
            })
        );
    }

    #[test]
    fn a_bad_or_incomplete_description_names_the_variable() {
        let base = [
            ("USERS_KEY_ATTRIBUTE", "id"),
            ("USERS_EMAIL_INDEX", "by_email"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = base.to_vec();
            vars.push(extra);
            users(&vars).map(|_| ()).map_err(|e| e.variable)
        };
        assert_eq!(
            users(&[("USERS_EMAIL_INDEX", "by_email")]).map_err(|e| e.variable),
            Err("USERS_EMAIL_INDEX")
        );
        assert_eq!(
            users(&[("USERS_HASH_ATTRIBUTE", "pw")]).map_err(|e| e.variable),
            Err("USERS_HASH_ATTRIBUTE")
        );
        assert_eq!(
            users(&[("USERS_KEY_ATTRIBUTE", "id")]).map_err(|e| e.variable),
            Err("USERS_EMAIL_INDEX")
        );
        assert_eq!(
            with(("USERS_EMAIL_MATCH", "exact")),
            Err("USERS_EMAIL_MATCH")
        );
        assert_eq!(with(("USERS_KEY_TYPE", "B")), Err("USERS_KEY_TYPE"));
        assert_eq!(
            with(("USERS_HASH_ATTRIBUTE", "id")),
            Err("USERS_HASH_ATTRIBUTE")
        );
        assert_eq!(
            with(("USERS_ACTIVE_ATTRIBUTE", "password_hash")),
            Err("USERS_ACTIVE_ATTRIBUTE")
        );
        assert_eq!(
            with(("USERS_EMAIL_KEY_ATTRIBUTE", "password_hash")),
            Err("USERS_EMAIL_KEY_ATTRIBUTE")
        );
        assert_eq!(with(("USERS_TABLE", "a b")), Err("USERS_TABLE"));
        assert_eq!(with(("USERS_KEY_TYPE", "n")), Ok(()));
        assert_eq!(with(("USERS_EMAIL_KEY_ATTRIBUTE", "email_key")), Ok(()));
    }
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
        assert_eq!(
            config.change_limits,
            ChangeLimits {
                failures: Some(RateLimit {
                    max: 5,
                    window: Duration::from_secs(900)
                }),
                per_ip: Some(RateLimit {
                    max: 20,
                    window: Duration::from_secs(60)
                }),
            }
        );
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
            ("CHANGE_LIMIT_FAILURES", "5"),
            ("CORS_ALLOW_ORIGINS", "*"),
            ("CORS_ALLOW_ORIGINS", "https://app.example.com/"),
            ("CORS_ALLOW_ORIGINS", "app.example.com"),
            ("RESET_RETURN_URLS", "/signin"),
            (
                "RESET_RETURN_URLS",
                "https://app.example.com/ok,javascript:alert(1)",
            ),
            ("RESET_RETURN_URLS", "https://app.example.com/\"><script>"),
            ("CHANGE_LIMIT_PER_IP", "0/1m"),
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
    fn cors_origins_are_a_trimmed_list_and_none_by_default() {
        assert!(
            load(&dev(), &[])
                .expect("defaults")
                .cors_allow_origins
                .is_empty()
        );
        let config = load(
            &dev(),
            &[(
                "CORS_ALLOW_ORIGINS",
                " http://localhost:5173, https://app.example.com ,,https://[::1]:8443",
            )],
        )
        .expect("valid");
        assert_eq!(
            config.cors_allow_origins,
            [
                "http://localhost:5173",
                "https://app.example.com",
                "https://[::1]:8443"
            ]
        );
    }

    #[test]
    fn token_keys_come_from_one_place_only() {
        let confirm = Mode::Lambda(LambdaNeeds {
            token_keys: true,
            mail: false,
        });
        let err = load(&confirm, &[]).expect_err("keys");
        assert!(err.problem.contains("TOKEN_KEYS_SECRET_ID"), "{err}");
        let both = [
            ("TOKEN_KEYS", KEY),
            ("TOKEN_KEYS_SECRET_ID", "pwreset/token-keys"),
        ];
        assert_eq!(
            load(&confirm, &both).expect_err("both").variable,
            TOKEN_KEYS_SECRET_ID
        );
        assert!(
            !load(&confirm, &both)
                .expect_err("both")
                .to_string()
                .contains(KEY)
        );
        // Read only where the secrets loader runs (Lambda, `serve --backend aws`), which
        // puts the value in TOKEN_KEYS' place first; a plain read refuses it.
        assert_eq!(
            load(&dev(), &[("TOKEN_KEYS_SECRET_ID", "pwreset/token-keys")])
                .expect_err("dev")
                .variable,
            TOKEN_KEYS_SECRET_ID
        );
    }

    proptest::proptest! {
        /// The template's generated secret: 44 letters and digits (CloudFormation's
        /// `GenerateSecretString` with `ExcludePunctuation`), which is 33 bytes of base64.
        #[test]
        fn a_generated_secret_of_44_letters_and_digits_is_a_key(value in "[A-Za-z0-9]{44}") {
            let keys = TokenKeys::parse(&value).expect("a key");
            proptest::prop_assert_eq!(keys.len(), 1);
        }
    }

    /// `.env.example` (for `cargo lambda watch --env-file`) is a configuration every
    /// function starts with.
    #[test]
    fn the_env_file_example_configures_every_function() {
        let vars: HashMap<String, String> = include_str!("../../.env.example")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (name, value) = line.split_once('=').expect("NAME=value");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let config = Config::from_lookup(&Mode::Lambda(LambdaNeeds::ALL), |name| {
            vars.get(name).cloned()
        })
        .expect("a valid configuration");
        assert!(!config.token_keys_generated);
        let table = vars.get("TABLE_NAME").expect("TABLE_NAME");
        assert!(UsersTable::from_lookup(table, |name| vars.get(name).cloned()).is_ok());
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
                ("CHANGE_LIMIT_FAILURES", "off"),
                ("CHANGE_LIMIT_PER_IP", "OFF"),
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
        assert_eq!(
            config.change_limits,
            ChangeLimits {
                failures: None,
                per_ip: None
            }
        );
    }
}

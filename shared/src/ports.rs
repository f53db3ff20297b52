//! The ports the service talks through. Adapters: [`crate::adapters::memory`] here; the
//! DynamoDB and SES ones implement the same traits.
//!
//! "No such user" is a value (`Ok(None)`), never an error; an error always means the
//! infrastructure failed, and is never mistaken for a missing account.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{EmailAddress, EmailKey, EmailLookup, EmailLower, PasswordHash, User, UserId};
use crate::i18n::Locale;

/// A dependency failed. Store, mail and delivery errors share one split: `Transient` is
/// worth retrying (throttling, timeouts, a store that is down), `Permanent` is not (a
/// malformed call, an item we cannot read back).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Transient(String),
    #[error("store call failed on our side: {0}")]
    Permanent(String),
}

/// Work for the mail worker, written by the request path and by a successful confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxJob {
    /// Someone asked for a reset link for this lookup key; the account may not exist.
    ResetRequested {
        email_key: EmailKey,
        /// The address as typed, trimmed and lower-cased, for tables indexed on that
        /// spelling; absent when it is the key itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email_lower: Option<EmailLower>,
        requested_at: i64,
        /// Over the per-address limit: written all the same, so a limited request does the
        /// store work an accepted one does (no timing oracle), and dropped by the worker.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        suppressed: bool,
        /// The language the request asked for (`Accept-Language`); absent: English.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<Locale>,
        /// One of `RESET_RETURN_URLS`, checked when the request came in: the link carries
        /// it, and the page sends the user there after the reset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_to: Option<String>,
    },
    /// A reset or a change landed: tell the owner. `credential_version` is the one the change wrote
    /// (0 on items queued before versions were kept).
    PasswordChanged {
        uid: UserId,
        changed_at: i64,
        #[serde(default)]
        credential_version: u64,
        /// What changed it, for the notice's wording (absent: a reset).
        #[serde(default, skip_serializing_if = "ChangedVia::is_reset")]
        via: ChangedVia,
        /// The language of the request that changed it; absent: English.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<Locale>,
    },
    /// A reset landed: tell the rest of the system ([`EventPublisher`]). A job of its own,
    /// beside the notice, so a failed put is retried without mailing the owner twice.
    PasswordChangedEvent(PasswordChangedEvent),
}

/// How a password was replaced: through a reset link, or by someone who gave the current
/// password (`POST /password-change`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedVia {
    #[default]
    Reset,
    Change,
}

impl ChangedVia {
    pub fn is_reset(&self) -> bool {
        *self == Self::Reset
    }
}

/// A `PasswordChanged` event: who, when (Unix seconds) and the credential version the
/// change wrote, so a consumer can end every session issued before it. No address, no hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChangedEvent {
    pub uid: UserId,
    pub changed_at: i64,
    pub credential_version: u64,
}

impl OutboxJob {
    /// The same job, to be written in `locale` (a reset request's or a notice's).
    pub fn in_locale(mut self, locale: Locale) -> Self {
        let wanted = (locale != Locale::En).then_some(locale);
        match &mut self {
            Self::ResetRequested { locale, .. } | Self::PasswordChanged { locale, .. } => {
                *locale = wanted;
            }
            Self::PasswordChangedEvent(_) => {}
        }
        self
    }

    /// The same reset request, its link to carry `url` (already allow-listed).
    pub fn returning_to(mut self, url: Option<String>) -> Self {
        if let Self::ResetRequested { return_to, .. } = &mut self {
            *return_to = url;
        }
        self
    }

    /// The job for a reset request looked up by `lookup`.
    pub fn reset_requested(lookup: EmailLookup, requested_at: i64, suppressed: bool) -> Self {
        let email_lower = (lookup.lower.as_str() != lookup.key.as_str()).then_some(lookup.lower);
        Self::ResetRequested {
            email_key: lookup.key,
            email_lower,
            requested_at,
            suppressed,
            locale: None,
            return_to: None,
        }
    }
}

/// What a queued reset request looks users up by.
pub fn reset_lookup(email_key: &EmailKey, email_lower: Option<&EmailLower>) -> EmailLookup {
    match email_lower {
        Some(lower) => EmailLookup {
            key: email_key.clone(),
            lower: lower.clone(),
        },
        None => EmailLookup::from(email_key.clone()),
    }
}

impl PasswordChangedEvent {
    pub const SOURCE: &'static str = "pwreset";
    pub const DETAIL_TYPE: &'static str = "PasswordChanged";

    /// The event's `detail`: `{"uid", "changed_at" (RFC 3339, UTC), "credential_version"}`.
    pub fn detail_json(&self) -> String {
        let changed_at = OffsetDateTime::from_unix_timestamp(self.changed_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        serde_json::json!({
            "uid": self.uid.as_str(),
            "changed_at": changed_at,
            "credential_version": self.credential_version,
        })
        .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Worth retrying: throttled, timed out, the event service is down.
    #[error("event service unavailable: {0}")]
    Transient(String),
    /// Retrying will not help: the bus is missing or the put was refused for what it is.
    #[error("event refused: {0}")]
    Permanent(String),
}

/// Where `PasswordChanged` events go (EventBridge in AWS).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &PasswordChangedEvent) -> Result<(), PublishError>;
}

/// A password replacement that lands only if the account is still active with the hash and
/// address it was checked with (`expected`, `expected_email`), together
/// with the notice it triggers (one transaction: both or neither).
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub uid: UserId,
    pub expected: PasswordHash,
    /// The stored address the token was checked against: a change of address in between
    /// (or the account going inactive) makes the change stale, as a new hash does.
    pub expected_email: EmailAddress,
    /// The credential version verify saw; the change writes it plus one.
    pub expected_version: u64,
    pub new: PasswordHash,
    pub notice: OutboxJob,
    /// The event job, written in the same transaction when events are sent.
    pub event: Option<OutboxJob>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Applied,
    /// The hash changed since the token was checked (another confirm won): nothing written.
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    EmailTaken,
}

#[async_trait]
pub trait UserRepository: Send + Sync {
    async fn find_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError>;
    /// Every user whose stored address has `lookup.key` (a team's table may hold several;
    /// each is mailed at its own address). Inactive ones included: the caller decides.
    async fn find_by_email(&self, lookup: &EmailLookup) -> Result<Vec<User>, StoreError>;
    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError>;
    /// An id for a new user that this store's key can hold.
    fn fresh_uid(&self) -> UserId {
        UserId::generate()
    }
    async fn commit_password_change(
        &self,
        change: &PasswordChange,
    ) -> Result<ChangeOutcome, StoreError>;
}

/// The user calls a confirm makes, and no others: a function holding a `dyn UserRepository`
/// links every method's code through the vtable, called or not (a confirm would carry the
/// e-mail index query). Every [`UserRepository`] is one.
#[async_trait]
pub trait ConfirmUsers: Send + Sync {
    async fn user_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError>;
    async fn replace_password(&self, change: &PasswordChange) -> Result<ChangeOutcome, StoreError>;
}

#[async_trait]
impl<T: UserRepository> ConfirmUsers for T {
    async fn user_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError> {
        self.find_by_uid(uid).await
    }
    async fn replace_password(&self, change: &PasswordChange) -> Result<ChangeOutcome, StoreError> {
        self.commit_password_change(change).await
    }
}

/// The user calls a password change makes, and no others (see [`ConfirmUsers`]).
#[async_trait]
pub trait ChangeUsers: Send + Sync {
    async fn users_by_email(&self, lookup: &EmailLookup) -> Result<Vec<User>, StoreError>;
    async fn replace_password(&self, change: &PasswordChange) -> Result<ChangeOutcome, StoreError>;
}

#[async_trait]
impl<T: UserRepository> ChangeUsers for T {
    async fn users_by_email(&self, lookup: &EmailLookup) -> Result<Vec<User>, StoreError> {
        self.find_by_email(lookup).await
    }
    async fn replace_password(&self, change: &PasswordChange) -> Result<ChangeOutcome, StoreError> {
        self.commit_password_change(change).await
    }
}

#[async_trait]
pub trait Outbox: Send + Sync {
    async fn enqueue(&self, job: OutboxJob) -> Result<(), StoreError>;
}

/// Which outbox items were handled. The stream consumer marks each job it delivered (or
/// found nothing to send for), so that a redrive (`pwreset outbox redrive`) re-sends only
/// what never went out. `item_key` is the outbox item's key as the stream record names it.
#[async_trait]
pub trait DeliveryLedger: Send + Sync {
    /// Marks the item delivered at `at`; an item that is gone (expired) is no error.
    async fn mark_delivered(&self, item_key: &str, at: i64) -> Result<(), StoreError>;
}

/// A message ready to send. Its bodies hold a live token: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: throttled, timed out, the mail service is down.
    #[error("mail service unavailable: {0}")]
    Transient(String),
    /// Retrying will not help: the address or the message was refused.
    #[error("mail refused: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

/// `N` hits per window, counted in fixed windows aligned to the epoch (the same in memory
/// and in DynamoDB, where each window is one counter item that expires by TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected N/<seconds>s, N/<minutes>m, N/<hours>h or off, e.g. 3/15m")]
pub struct RateLimitSyntax;

impl RateLimit {
    /// Parses `N/<n>s|m|h`, or `off` (`None`).
    pub fn parse(raw: &str) -> Result<Option<Self>, RateLimitSyntax> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (count, window) = raw.split_once('/').ok_or(RateLimitSyntax)?;
        let max: u32 = count.trim().parse().map_err(|_| RateLimitSyntax)?;
        let window = window.trim();
        let unit = window.chars().last().ok_or(RateLimitSyntax)?;
        let amount: u64 = window[..window.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| RateLimitSyntax)?;
        let seconds = match unit {
            's' => Some(amount),
            'm' => amount.checked_mul(60),
            'h' => amount.checked_mul(3600),
            _ => None,
        }
        .ok_or(RateLimitSyntax)?;
        if max == 0 || seconds == 0 || seconds > 7 * 24 * 3600 {
            return Err(RateLimitSyntax);
        }
        Ok(Some(Self {
            max,
            window: Duration::from_secs(seconds),
        }))
    }

    pub fn window_secs(&self) -> i64 {
        i64::try_from(self.window.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The window `now` falls in, and the seconds until it ends (at least 1).
    pub fn window_at(&self, now: i64) -> (i64, u64) {
        let size = self.window_secs();
        let index = now.div_euclid(size);
        let ends = (index + 1) * size;
        (index, u64::try_from(ends - now).unwrap_or(1).max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after_secs: u64 },
}

/// Which hits [`RateLimiter::forgive`] takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgive {
    /// The one this attempt counted (it turned out not to be a failure).
    One,
    /// Every hit in the window (a success clears an account's failures).
    All,
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit on `bucket` and says whether it is within `limit`.
    async fn hit(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
    ) -> Result<RateDecision, StoreError>;

    /// Takes hits back from the window `now` falls in (pass the `now` the hit was counted
    /// at). A limit that counts failures counts every attempt first, so concurrent guesses
    /// cannot slip past it, and forgives the attempts that turn out not to be failures.
    async fn forgive(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
        hits: Forgive,
    ) -> Result<(), StoreError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;

    fn unix_now(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_in_every_unit_and_off() {
        let parse = |s: &str| RateLimit::parse(s).expect("valid");
        assert_eq!(
            parse("3/15m"),
            Some(RateLimit {
                max: 3,
                window: Duration::from_secs(900)
            })
        );
        assert_eq!(
            parse("20/1m"),
            Some(RateLimit {
                max: 20,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(
            parse("5/30s"),
            Some(RateLimit {
                max: 5,
                window: Duration::from_secs(30)
            })
        );
        assert_eq!(
            parse("100/2h"),
            Some(RateLimit {
                max: 100,
                window: Duration::from_secs(7200)
            })
        );
        assert_eq!(parse("off"), None);
        assert_eq!(parse("OFF"), None);
    }

    #[test]
    fn malformed_limits_are_refused() {
        for bad in [
            "", "3", "3/", "/15m", "0/1m", "3/0m", "3/15", "3/15d", "-1/1m", "three/1m", "3/1é",
            "3/99999h",
        ] {
            assert_eq!(RateLimit::parse(bad), Err(RateLimitSyntax), "{bad:?}");
        }
    }

    #[test]
    fn windows_are_aligned_and_retry_after_counts_to_the_end() {
        let limit = RateLimit {
            max: 1,
            window: Duration::from_secs(60),
        };
        assert_eq!(limit.window_at(120), (2, 60));
        assert_eq!(limit.window_at(179), (2, 1));
        assert_eq!(limit.window_at(180), (3, 60));
    }

    #[test]
    fn the_event_detail_names_the_user_the_time_and_the_version_only() {
        let event = PasswordChangedEvent {
            uid: UserId::parse("u-1").expect("uid"),
            changed_at: 1_800_000_000,
            credential_version: 4,
        };
        let detail: serde_json::Value = serde_json::from_str(&event.detail_json()).expect("json");
        assert_eq!(
            detail,
            serde_json::json!({"uid": "u-1", "changed_at": "2027-01-15T08:00:00Z", "credential_version": 4})
        );
        let job = OutboxJob::PasswordChangedEvent(event);
        let json = serde_json::to_string(&job).expect("json");
        assert_eq!(
            json,
            r#"{"kind":"password_changed_event","uid":"u-1","changed_at":1800000000,"credential_version":4}"#
        );
        assert_eq!(
            serde_json::from_str::<OutboxJob>(&json).expect("parse"),
            job
        );
    }

    #[test]
    fn outbox_jobs_round_trip_through_json() {
        let job = OutboxJob::ResetRequested {
            email_key: EmailKey::normalise("a@b.org").expect("valid"),
            email_lower: None,
            requested_at: 7,
            suppressed: false,
            locale: None,
            return_to: None,
        };
        let json = serde_json::to_string(&job).expect("json");
        assert_eq!(
            json,
            r#"{"kind":"reset_requested","email_key":"a@b.org","requested_at":7}"#
        );
        assert_eq!(
            serde_json::from_str::<OutboxJob>(&json).expect("parse"),
            job
        );
        let suppressed = OutboxJob::ResetRequested {
            email_key: EmailKey::normalise("a@b.org").expect("valid"),
            email_lower: None,
            requested_at: 7,
            suppressed: true,
            locale: None,
            return_to: None,
        };
        let json = serde_json::to_string(&suppressed).expect("json");
        assert_eq!(
            json,
            r#"{"kind":"reset_requested","email_key":"a@b.org","requested_at":7,"suppressed":true}"#
        );
        assert_eq!(
            serde_json::from_str::<OutboxJob>(&json).expect("parse"),
            suppressed
        );
        // A key that is not normal is refused on the way back in.
        assert!(
            serde_json::from_str::<OutboxJob>(
                r#"{"kind":"reset_requested","email_key":"A@b.org","requested_at":7}"#
            )
            .is_err()
        );
    }
}

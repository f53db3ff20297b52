//! [`ChangePassword`]: `POST /password-change`, the signed-in half of Django's password
//! views. Limits → look up → verify the current password (a dummy hash when there is no
//! single active account, so every failure costs the same) → policy → hash → the same
//! conditional write, notice and event as a reset.

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::SecretString;

use super::{NewPassword, email_bucket, ip_bucket, judged};
use crate::config::Config;
use crate::domain::{CandidatePassword, EmailLookup, User};
use crate::hashing::{HashError, PasswordHasher};
use crate::i18n::Locale;
use crate::metrics::{self, Metric};
use crate::policy::{PasswordPolicy, Reason};
use crate::ports::{
    ChangeOutcome, ChangeUsers, ChangedVia, Clock, Forgive, RateDecision, RateLimit, RateLimiter,
    StoreError,
};

/// The two limits on failed changes; `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLimits {
    /// Per account (a digest of the e-mail key, whether or not the account exists).
    pub failures: Option<RateLimit>,
    pub per_ip: Option<RateLimit>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the e-mail address is malformed")]
    InvalidEmail,
    /// Wrong password, no such account, an inactive one: one answer for all.
    #[error("the e-mail address or the current password is wrong")]
    InvalidCredentials,
    #[error("the new password does not meet the policy")]
    WeakPassword { reasons: Vec<Reason> },
    #[error("too many failed attempts")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("the password check did not finish: {0}")]
    PolicyTask(String),
}

/// One `POST /password-change`.
pub struct ChangeAttempt<'a> {
    pub email: &'a str,
    pub old_password: &'a str,
    pub new_password: &'a str,
    pub client_ip: Option<IpAddr>,
    /// The `sub` of a JWT the API's authorizer checked, when it has one: the account must
    /// be that user's.
    pub subject: Option<&'a str>,
    /// The language the notice is written in (unless the account has one of its own).
    pub locale: Locale,
}

impl std::fmt::Debug for ChangeAttempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the address or either password.
        f.debug_struct("ChangeAttempt")
            .field("client_ip", &self.client_ip)
            .field("subject", &self.subject.is_some())
            .finish_non_exhaustive()
    }
}

/// The counted hits of one attempt, taken back when it turns out not to be a failure.
struct Counted<'a> {
    account: Option<(String, &'a RateLimit)>,
    ip: Option<(String, &'a RateLimit)>,
    now: i64,
}

/// `POST /password-change`.
pub struct ChangePassword {
    users: Arc<dyn ChangeUsers>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
    hasher: PasswordHasher,
    limits: ChangeLimits,
    /// Queue a `PasswordChanged` event job with every landed change.
    events: bool,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ChangePassword {
    pub fn new(
        users: Arc<dyn ChangeUsers>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
        hasher: PasswordHasher,
        limits: ChangeLimits,
    ) -> Self {
        Self {
            users,
            limiter,
            clock,
            policy,
            hasher,
            limits,
            events: false,
        }
    }

    /// As configured: the policy at `PASSWORD_MIN_LENGTH`, `CHANGE_LIMIT_*`, new hashes by
    /// `hasher` (shared with whatever else hashes in the process, so they share its pool).
    pub fn configured(
        config: &Config,
        users: Arc<dyn ChangeUsers>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
    ) -> Self {
        Self::new(
            users,
            limiter,
            clock,
            PasswordPolicy::new(config.min_password_length),
            hasher,
            config.change_limits,
        )
    }

    /// With `queue` set, every landed change also queues a `PasswordChanged` event job.
    pub fn queueing_events(self, queue: bool) -> Self {
        Self {
            events: queue,
            ..self
        }
    }

    /// One attempt, counted in the metrics by its outcome.
    pub async fn change(&self, attempt: ChangeAttempt<'_>) -> Result<(), ChangeError> {
        let result = self.attempt(attempt).await;
        let metric = match &result {
            Ok(()) => Some(Metric::PasswordChanged),
            Err(ChangeError::InvalidCredentials) => Some(Metric::InvalidCredentials),
            Err(ChangeError::WeakPassword { .. }) => Some(Metric::WeakPasswordRefused),
            Err(ChangeError::RateLimited { .. }) => Some(Metric::ChangeLimited),
            Err(_) => None,
        };
        if let Some(metric) = metric {
            metrics::count(metric);
        }
        result
    }

    async fn attempt(&self, attempt: ChangeAttempt<'_>) -> Result<(), ChangeError> {
        let lookup =
            EmailLookup::from_request(attempt.email).map_err(|_| ChangeError::InvalidEmail)?;
        let counted = self.count_attempt(&lookup, attempt.client_ip).await?;
        let outcome = self.change_counted(&lookup, &attempt).await;
        match &outcome {
            // A failure stays counted.
            Err(ChangeError::InvalidCredentials) => {}
            // The account is the user's: its failures are forgotten.
            Ok(()) => self.forgive(&counted, Forgive::All).await?,
            // Right password, refused new one (or a dependency failed): not a guess.
            Err(_) => self.forgive(&counted, Forgive::One).await?,
        }
        outcome
    }

    /// Every attempt counts against both limits before its password is looked at, so
    /// concurrent guesses cannot get past them; attempts that are no failure are forgiven.
    async fn count_attempt(
        &self,
        lookup: &EmailLookup,
        client_ip: Option<IpAddr>,
    ) -> Result<Counted<'_>, ChangeError> {
        let now = self.clock.unix_now();
        let mut counted = Counted {
            account: None,
            ip: None,
            now,
        };
        if let Some(limit) = &self.limits.per_ip {
            let bucket = format!("change#{}", ip_bucket(client_ip));
            let decision = self.limiter.hit(&bucket, limit, now).await?;
            counted.ip = Some((bucket, limit));
            if let RateDecision::Limited { retry_after_secs } = decision {
                return Err(ChangeError::RateLimited { retry_after_secs });
            }
        }
        if let Some(limit) = &self.limits.failures {
            let bucket = format!("change#{}", email_bucket(&lookup.key));
            if let RateDecision::Limited { retry_after_secs } =
                self.limiter.hit(&bucket, limit, now).await?
            {
                // Refused before any guess: the address's lock-out is no failure of this
                // client's.
                self.forgive(&counted, Forgive::One).await?;
                tracing::info!(event = "password_change_limited");
                return Err(ChangeError::RateLimited { retry_after_secs });
            }
            counted.account = Some((bucket, limit));
        }
        Ok(counted)
    }

    /// `Forgive::All` clears the account's failures and takes back this attempt's IP hit.
    async fn forgive(&self, counted: &Counted<'_>, account: Forgive) -> Result<(), StoreError> {
        if let Some((bucket, limit)) = &counted.account {
            self.limiter
                .forgive(bucket, limit, counted.now, account)
                .await?;
        }
        if let Some((bucket, limit)) = &counted.ip {
            self.limiter
                .forgive(bucket, limit, counted.now, Forgive::One)
                .await?;
        }
        Ok(())
    }

    async fn change_counted(
        &self,
        lookup: &EmailLookup,
        attempt: &ChangeAttempt<'_>,
    ) -> Result<(), ChangeError> {
        let user = self.single_active_user(lookup, attempt.subject).await?;
        let old = SecretString::from(attempt.old_password);
        let stored = user.as_ref().and_then(|u| u.resettable_hash().cloned());
        // One hash whatever the account: a dummy one when there is none to check.
        let verified = self.hasher.verify(old, stored.clone()).await?;
        let (Some(user), Some(expected), true) = (user, stored, verified) else {
            tracing::info!(event = "password_change_refused");
            return Err(ChangeError::InvalidCredentials);
        };
        let policy = self.policy;
        let email = user.email.clone();
        let candidate = CandidatePassword::new(attempt.new_password);
        let current = CandidatePassword::new(attempt.old_password);
        let accepted = judged(move || policy.check_change(candidate, &current, &email))
            .await
            .map_err(ChangeError::PolicyTask)?
            .map_err(|weak| ChangeError::WeakPassword {
                reasons: weak.reasons,
            })?;
        let change = NewPassword {
            clock: self.clock.as_ref(),
            hasher: &self.hasher,
            events: self.events,
            via: ChangedVia::Change,
            locale: attempt.locale,
        }
        .change(&user, expected, accepted)
        .await?;
        match self.users.replace_password(&change).await? {
            ChangeOutcome::Applied => {
                tracing::info!(event = "password_changed");
                Ok(())
            }
            // Another change (or a reset, an address change, a deactivation) landed since
            // the password was checked: the password given is no longer the current one.
            ChangeOutcome::Stale => Err(ChangeError::InvalidCredentials),
        }
    }

    /// The one active account with a usable password at this address (and, with a
    /// checked JWT, the subject's). None when there is none, or several: an address
    /// several accounts share cannot say whose password is meant (a reset mails each).
    async fn single_active_user(
        &self,
        lookup: &EmailLookup,
        subject: Option<&str>,
    ) -> Result<Option<User>, StoreError> {
        let mut active = self
            .users
            .users_by_email(lookup)
            .await?
            .into_iter()
            .filter(|user| user.resettable_hash().is_some())
            // The subject is the uid, or the key it stands for (a key that is not URL-safe
            // travels as `~…` in links, but an identity provider knows it as it is).
            .filter(|user| {
                subject.is_none_or(|sub| sub == user.uid.as_str() || sub == user.uid.key_value())
            });
        let first = active.next();
        Ok(match active.next() {
            None => first,
            Some(_) => None,
        })
    }
}

//! The reset use cases. Each is a small struct holding only the ports it needs, so each
//! Lambda function is wired (and granted IAM rights) for exactly its own calls:
//!
//! - [`RequestReset`]: validate → rate limits → enqueue; the same work whether or not the
//!   account exists, so nothing about the account reaches the response.
//! - [`SendResetEmail`]: the outbox worker: look up → skip inactive/unusable → sign → send.
//! - [`ConfirmReset`]: verify (no side effect) and confirm (verify → policy → hash →
//!   conditional replace + notice).
//! - [`ChangePassword`]: a known password replaced (limits → verify → policy → hash → the
//!   same conditional replace + notice).

mod change;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::domain::{CandidatePassword, EmailKey, EmailLookup, PasswordHash, User, UserId};
use crate::hashing::{HashError, PasswordHasher};
use crate::i18n::Locale;
use crate::mail::MailComposer;
use crate::metrics::{self, Metric};
use crate::policy::{AcceptedPassword, PasswordPolicy, Reason, WeakPassword};
use crate::ports::{
    ChangeOutcome, ChangedVia, Clock, ConfirmUsers, EventPublisher, MailError, Mailer, Outbox,
    OutboxJob, PasswordChange, PasswordChangedEvent, PublishError, RateDecision, RateLimit,
    RateLimiter, StoreError, UserRepository, reset_lookup,
};
use crate::token::{ParsedToken, TokenRejection, TokenSigner, TokenSubject};

pub use change::{ChangeAttempt, ChangeError, ChangeLimits, ChangePassword};

/// The two request-path limits; `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_email: Option<RateLimit>,
    pub per_ip: Option<RateLimit>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the e-mail address is malformed")]
    InvalidEmail,
    /// `return_to` is not one of `RESET_RETURN_URLS`.
    #[error("return_to is not an allowed URL")]
    InvalidReturnTo,
    #[error("too many requests from this client")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One `POST /password-reset`.
#[derive(Debug, Clone, Copy)]
pub struct ResetAsk<'a> {
    pub email: &'a str,
    pub client_ip: Option<IpAddr>,
    /// The language of the mail (`Accept-Language`).
    pub locale: Locale,
    /// Where the page sends the user after a reset: one of `RESET_RETURN_URLS`.
    pub return_to: Option<&'a str>,
}

/// `POST /password-reset`.
pub struct RequestReset {
    outbox: Arc<dyn Outbox>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// `RESET_RETURN_URLS`: the only `return_to` values accepted.
    return_urls: Vec<String>,
    /// Set by the first request without a source address while a per-IP limit is on (it is
    /// warned about once).
    warned_no_source_ip: AtomicBool,
}

impl std::fmt::Debug for RequestReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestReset")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// IPv6 clients usually own a whole /64: count them per /64 so rotating addresses within
/// it does not reset the limit.
fn ip_bucket(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => format!("ip#{v4}"),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip#{v4}"),
            None => {
                let s = v6.segments();
                format!("ip#{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        // No known source address: everyone unknown shares one bucket rather than none.
        None => "ip#unknown".to_owned(),
    }
}

/// Limit buckets never hold the address itself, only a digest of its lookup key.
fn email_bucket(key: &EmailKey) -> String {
    let digest = Sha256::digest(key.as_str().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("email#{hex}")
}

impl RequestReset {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self {
            outbox,
            limiter,
            clock,
            limits,
            return_urls: Vec::new(),
            warned_no_source_ip: AtomicBool::new(false),
        }
    }

    /// Accepts these `return_to` URLs (`RESET_RETURN_URLS`), compared exactly.
    pub fn allowing_return_to(self, urls: Vec<String>) -> Self {
        Self {
            return_urls: urls,
            ..self
        }
    }

    /// A request in English without `return_to`: [`Self::ask`].
    pub async fn request(
        &self,
        raw_email: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), RequestError> {
        self.ask(ResetAsk {
            email: raw_email,
            client_ip,
            locale: Locale::En,
            return_to: None,
        })
        .await
    }

    /// Never looks the account up: the request path does the same work for every address.
    /// The mail will speak the ask's language (unless the account has one of its own), and
    /// its link carries `return_to` when the allow-list has it.
    pub async fn ask(&self, ask: ResetAsk<'_>) -> Result<(), RequestError> {
        let ResetAsk {
            email: raw_email,
            client_ip,
            locale,
            return_to,
        } = ask;
        let lookup =
            EmailLookup::from_request(raw_email).map_err(|_| RequestError::InvalidEmail)?;
        // Exactly one of the configured URLs, or nothing: never an open redirect.
        let return_to = match return_to {
            None => None,
            Some(url) => Some(
                self.return_urls
                    .iter()
                    .find(|allowed| allowed.as_str() == url)
                    .cloned()
                    .ok_or(RequestError::InvalidReturnTo)?,
            ),
        };
        let now = self.clock.unix_now();
        if let Some(limit) = &self.limits.per_ip {
            if client_ip.is_none() && !self.warned_no_source_ip.swap(true, Ordering::Relaxed) {
                // A deployment problem, not a client's: say it once per process, loudly
                // enough to be seen, not once per request.
                tracing::warn!(
                    event = "no_source_ip",
                    "a request arrived without a source address: all such requests share one \
                     per-IP limit bucket (behind a proxy, pass the client address through)"
                );
            }
            if let RateDecision::Limited { retry_after_secs } =
                self.limiter.hit(&ip_bucket(client_ip), limit, now).await?
            {
                metrics::count(Metric::ResetRequestLimited);
                return Err(RequestError::RateLimited { retry_after_secs });
            }
        }
        let mut suppressed = false;
        if let Some(limit) = &self.limits.per_email {
            if let RateDecision::Limited { .. } = self
                .limiter
                .hit(&email_bucket(&lookup.key), limit, now)
                .await?
            {
                // Silently: the answer is the same 202, and the job is written all the same
                // (the worker drops it), so neither the answer nor its timing is an oracle.
                tracing::info!(
                    event = "reset_request_suppressed",
                    reason = "per_email_limit"
                );
                suppressed = true;
            }
        }
        self.outbox
            .enqueue(
                OutboxJob::reset_requested(lookup, now, suppressed)
                    .in_locale(locale)
                    .returning_to(return_to),
            )
            .await?;
        metrics::count(if suppressed {
            Metric::ResetRequestSuppressed
        } else {
            Metric::ResetRequestAccepted
        });
        Ok(())
    }
}

/// What the worker did with a job (for logs and tests; never reaches a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// A `PasswordChanged` event went to the event bus.
    Published,
    /// No such account, inactive, or no usable password: nobody is mailed.
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Try the job again later.
    #[error("delivery should be retried: {0}")]
    Transient(String),
    /// Retrying cannot help (the message was refused); the job is dropped and logged.
    #[error("delivery failed for good: {0}")]
    Permanent(String),
}

impl From<StoreError> for DeliveryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Transient(msg) => Self::Transient(msg),
            StoreError::Permanent(msg) => Self::Permanent(msg),
        }
    }
}

impl From<PublishError> for DeliveryError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Transient(msg) => Self::Transient(msg),
            PublishError::Permanent(msg) => Self::Permanent(msg),
        }
    }
}

impl From<MailError> for DeliveryError {
    fn from(err: MailError) -> Self {
        match err {
            MailError::Transient(msg) => Self::Transient(msg),
            MailError::Permanent(msg) => Self::Permanent(msg),
        }
    }
}

/// The outbox worker's use case.
pub struct SendResetEmail {
    users: Arc<dyn UserRepository>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    signer: TokenSigner,
    composer: MailComposer,
    events: Option<Arc<dyn EventPublisher>>,
}

impl std::fmt::Debug for SendResetEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendResetEmail").finish_non_exhaustive()
    }
}

impl SendResetEmail {
    pub fn new(
        users: Arc<dyn UserRepository>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        signer: TokenSigner,
        composer: MailComposer,
    ) -> Self {
        Self {
            users,
            mailer,
            clock,
            signer,
            composer,
            events: None,
        }
    }

    /// As configured: links from `RESET_LINK_TEMPLATE` signed with `TOKEN_KEYS` for
    /// `PASSWORD_RESET_TIMEOUT`, mail in `PRODUCT_NAME`'s name.
    pub fn configured(
        config: &Config,
        users: Arc<dyn UserRepository>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let signer = TokenSigner::new(config.token_keys.clone(), config.token_lifetime_secs);
        let composer = MailComposer::new(
            config.product_name.clone(),
            config.link_template.clone(),
            signer.lifetime_secs(),
        );
        Self::new(users, mailer, clock, signer, composer)
    }

    /// Publishes the `PasswordChanged` event jobs a confirm queued (`EVENT_BUS_NAME`).
    pub fn with_events(self, events: Arc<dyn EventPublisher>) -> Self {
        Self {
            events: Some(events),
            ..self
        }
    }

    /// Delivers one job, counting what became of it (sent, published, to be retried,
    /// failed for good).
    pub async fn deliver(&self, job: &OutboxJob) -> Result<Delivery, DeliveryError> {
        let result = self.deliver_job(job).await;
        let is_event = matches!(job, OutboxJob::PasswordChangedEvent(_));
        match (&result, is_event) {
            (Err(DeliveryError::Transient(_)), false) => metrics::count(Metric::MailRetried),
            (Err(DeliveryError::Transient(_)), true) => metrics::count(Metric::EventRetried),
            (Err(DeliveryError::Permanent(_)), false) => metrics::count(Metric::MailFailed),
            (Err(DeliveryError::Permanent(_)), true) => metrics::count(Metric::EventFailed),
            (Ok(_), _) => {}
        }
        result
    }

    async fn deliver_job(&self, job: &OutboxJob) -> Result<Delivery, DeliveryError> {
        match job {
            OutboxJob::ResetRequested {
                suppressed: true, ..
            } => Ok(Delivery::Skipped),
            OutboxJob::ResetRequested {
                email_key,
                email_lower,
                locale,
                return_to,
                ..
            } => {
                let lookup = reset_lookup(email_key, email_lower.as_ref());
                let mut delivery = Delivery::Skipped;
                // Every active match, each at its own stored address (as Django's form
                // mails every user with that address); usually there is one.
                for user in self.users.find_by_email(&lookup).await? {
                    let Some(hash) = user.resettable_hash() else {
                        continue;
                    };
                    let token = self.signer.sign(
                        TokenSubject {
                            uid: &user.uid,
                            email: &user.email,
                            password_hash: hash,
                        },
                        self.clock.unix_now(),
                    );
                    // To the stored address, never to what was typed in the request.
                    let locale = user.locale.or(*locale).unwrap_or_default();
                    let mail = self.composer.reset_link_in(
                        locale,
                        &user.email,
                        &user.uid,
                        &token,
                        return_to.as_deref(),
                    );
                    self.mailer.send(&mail).await?;
                    metrics::count(Metric::MailSent);
                    tracing::info!(event = "mail_sent", kind = "reset_link");
                    delivery = Delivery::Sent;
                }
                Ok(delivery)
            }
            OutboxJob::PasswordChanged {
                uid, via, locale, ..
            } => {
                let Some(user) = self.users.find_by_uid(uid).await? else {
                    return Ok(Delivery::Skipped);
                };
                if !user.active {
                    return Ok(Delivery::Skipped);
                }
                let locale = user.locale.or(*locale).unwrap_or_default();
                let mail = self.composer.password_changed_in(locale, &user.email, *via);
                self.mailer.send(&mail).await?;
                metrics::count(Metric::MailSent);
                tracing::info!(event = "mail_sent", kind = "password_changed");
                Ok(Delivery::Sent)
            }
            OutboxJob::PasswordChangedEvent(event) => {
                let Some(events) = &self.events else {
                    // The confirm was told to queue events and this sender has no bus: a
                    // deployment fault worth a failure the redrive can replay once fixed.
                    return Err(DeliveryError::Permanent(
                        "a PasswordChanged event is queued but EVENT_BUS_NAME is not set here"
                            .into(),
                    ));
                };
                events.publish(event).await?;
                metrics::count(Metric::EventPublished);
                tracing::info!(event = "event_published", kind = "password_changed");
                Ok(Delivery::Published)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenRejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Token(#[from] TokenRejection),
    #[error("the new password does not meet the policy")]
    WeakPassword { reasons: Vec<Reason> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("the password check did not finish: {0}")]
    PolicyTask(String),
}

impl From<VerifyError> for ConfirmError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Token(t) => Self::Token(t),
            VerifyError::Store(s) => Self::Store(s),
        }
    }
}

/// A token that checked out, with the user it belongs to.
#[derive(Debug)]
pub struct VerifiedToken {
    pub user: User,
    pub expires_at: i64,
}

/// `POST /password-reset/verify` and `POST /password-reset/confirm`.
pub struct ConfirmReset {
    users: Arc<dyn ConfirmUsers>,
    clock: Arc<dyn Clock>,
    signer: TokenSigner,
    policy: PasswordPolicy,
    hasher: PasswordHasher,
    /// Queue a `PasswordChanged` event job with every landed change.
    events: bool,
}

impl std::fmt::Debug for ConfirmReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmReset")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ConfirmReset {
    pub fn new(
        users: Arc<dyn ConfirmUsers>,
        clock: Arc<dyn Clock>,
        signer: TokenSigner,
        policy: PasswordPolicy,
        hasher: PasswordHasher,
    ) -> Self {
        Self {
            users,
            clock,
            signer,
            policy,
            hasher,
            events: false,
        }
    }

    /// As configured: tokens checked with `TOKEN_KEYS` for `PASSWORD_RESET_TIMEOUT`, the
    /// policy at `PASSWORD_MIN_LENGTH`, new hashes by `hasher` (shared with whatever else
    /// verifies, so they share its memory pool).
    pub fn configured(
        config: &Config,
        users: Arc<dyn ConfirmUsers>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
    ) -> Self {
        Self::new(
            users,
            clock,
            TokenSigner::new(config.token_keys.clone(), config.token_lifetime_secs),
            PasswordPolicy::new(config.min_password_length),
            hasher,
        )
    }

    /// With `queue` set, every landed change also queues a `PasswordChanged` event job, in
    /// the same transaction, for `send-reset-email` to publish.
    pub fn queueing_events(self, queue: bool) -> Self {
        Self {
            events: queue,
            ..self
        }
    }

    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Checks a link without changing anything, so a mail scanner that prefetches it
    /// cannot burn it.
    pub async fn verify(
        &self,
        raw_uid: &str,
        raw_token: &str,
    ) -> Result<VerifiedToken, VerifyError> {
        let result = self.check_link(raw_uid, raw_token).await;
        if let Err(VerifyError::Token(rejection)) = &result {
            count_rejection(*rejection);
        }
        result
    }

    async fn check_link(
        &self,
        raw_uid: &str,
        raw_token: &str,
    ) -> Result<VerifiedToken, VerifyError> {
        let token = ParsedToken::parse(raw_token)?;
        let Ok(uid) = UserId::parse(raw_uid) else {
            self.signer.verify_against_nothing(&token);
            return Err(TokenRejection::Invalid.into());
        };
        let user = self.users.user_by_uid(&uid).await?;
        let Some(user) = user else {
            self.signer.verify_against_nothing(&token);
            return Err(TokenRejection::Invalid.into());
        };
        let Some(hash) = user.resettable_hash() else {
            self.signer.verify_against_nothing(&token);
            return Err(TokenRejection::Invalid.into());
        };
        let expires_at = self.signer.verify(
            TokenSubject {
                uid: &user.uid,
                email: &user.email,
                password_hash: hash,
            },
            &token,
            self.clock.unix_now(),
        )?;
        Ok(VerifiedToken { user, expires_at })
    }

    /// Verify → policy → hash → replace the hash only if it is still the one the token was
    /// bound to. Of N concurrent confirms with one token, exactly one lands; the rest find
    /// the hash changed and get `invalid_token`. A refused password leaves the token usable.
    pub async fn confirm(
        &self,
        raw_uid: &str,
        raw_token: &str,
        raw_password: &str,
    ) -> Result<(), ConfirmError> {
        self.confirm_in(raw_uid, raw_token, raw_password, Locale::En)
            .await
    }

    /// [`Self::confirm`], the notice to be written in `locale` (unless the account has a
    /// language of its own).
    pub async fn confirm_in(
        &self,
        raw_uid: &str,
        raw_token: &str,
        raw_password: &str,
        locale: Locale,
    ) -> Result<(), ConfirmError> {
        let VerifiedToken { user, .. } = self.verify(raw_uid, raw_token).await?;
        let policy = self.policy;
        let email = user.email.clone();
        let candidate = CandidatePassword::new(raw_password);
        let accepted = judged(move || policy.check(candidate, &email))
            .await
            .map_err(ConfirmError::PolicyTask)?
            .map_err(|weak| {
                metrics::count(Metric::WeakPasswordRefused);
                ConfirmError::WeakPassword {
                    reasons: weak.reasons,
                }
            })?;
        let Some(expected) = user.resettable_hash().cloned() else {
            return Err(TokenRejection::Invalid.into());
        };
        let change = NewPassword {
            clock: self.clock.as_ref(),
            hasher: &self.hasher,
            events: self.events,
            via: ChangedVia::Reset,
            locale,
        }
        .change(&user, expected, accepted)
        .await?;
        match self.users.replace_password(&change).await? {
            ChangeOutcome::Applied => {
                metrics::count(Metric::ResetCompleted);
                tracing::info!(event = "password_reset");
                Ok(())
            }
            ChangeOutcome::Stale => {
                count_rejection(TokenRejection::Invalid);
                Err(TokenRejection::Invalid.into())
            }
        }
    }
}

fn count_rejection(rejection: TokenRejection) {
    metrics::count(match rejection {
        TokenRejection::Invalid => Metric::InvalidToken,
        TokenRejection::Expired => Metric::ExpiredToken,
    });
}

/// A password a policy accepted, as the one write every new password is: hashed, to go in
/// place of `expected` on condition that the hash, address, active flag and version are
/// still what was checked, with the version + 1, the notice, and (with `events`) the event
/// job, all in one transaction. Shared by a confirm and a change.
struct NewPassword<'a> {
    clock: &'a dyn Clock,
    hasher: &'a PasswordHasher,
    events: bool,
    via: ChangedVia,
    /// The language of the request that changed it, for the notice.
    locale: Locale,
}

impl NewPassword<'_> {
    async fn change(
        &self,
        user: &User,
        expected: PasswordHash,
        accepted: AcceptedPassword,
    ) -> Result<PasswordChange, HashError> {
        let new = self.hasher.hash(accepted.into_secret()).await?;
        let changed_at = self.clock.unix_now();
        let credential_version = user.credential_version.saturating_add(1);
        let change = PasswordChange {
            uid: user.uid.clone(),
            expected,
            expected_email: user.email.clone(),
            expected_version: user.credential_version,
            new,
            notice: OutboxJob::PasswordChanged {
                uid: user.uid.clone(),
                changed_at,
                credential_version,
                via: self.via,
                locale: None,
            }
            .in_locale(self.locale),
            event: self.events.then(|| {
                OutboxJob::PasswordChangedEvent(PasswordChangedEvent {
                    uid: user.uid.clone(),
                    changed_at,
                    credential_version,
                })
            }),
        };
        Ok(change)
    }
}

/// The policy's verdict, computed off the executor: the estimator costs milliseconds on
/// long inputs, like the hash. `Err` only when the blocking task itself failed.
async fn judged(
    check: impl FnOnce() -> Result<AcceptedPassword, WeakPassword> + Send + 'static,
) -> Result<Result<AcceptedPassword, WeakPassword>, String> {
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

//! In-memory adapters: the embedded default of `pwreset serve`, and the doubles the core's
//! tests run against. One [`MemoryStore`] holds users and the outbox, as the one DynamoDB
//! table does, so a password change and its notice land together.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::domain::{EmailKey, EmailLookup, User, UserId};
use crate::ports::{
    ChangeOutcome, Forgive, InsertOutcome, MailError, Mailer, Outbox, OutboxJob, OutgoingMail,
    PasswordChange, RateDecision, RateLimit, RateLimiter, StoreError,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still consistent for us.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<UserId, User>,
    uid_by_key: HashMap<EmailKey, UserId>,
    outbox: VecDeque<OutboxJob>,
}

/// Users and outbox in one lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    job_ready: Notify,
    #[cfg(test)]
    unavailable: std::sync::atomic::AtomicBool,
    /// Jobs queued and not yet finished by the worker (queued, waiting out the pickup
    /// delay, or retrying): zero means the outbox is idle.
    unfinished: AtomicUsize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail as a store outage would (for tests of the failure paths).
    #[cfg(test)]
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn check_available(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Transient("memory store switched off".into()));
        }
        Ok(())
    }

    /// Takes the oldest job, waiting for one.
    pub async fn next_job(&self) -> OutboxJob {
        loop {
            let notified = self.job_ready.notified();
            if let Some(job) = lock(&self.tables).outbox.pop_front() {
                return job;
            }
            notified.await;
        }
    }

    /// Takes the oldest job if there is one.
    pub fn try_next_job(&self) -> Option<OutboxJob> {
        lock(&self.tables).outbox.pop_front()
    }

    pub fn pending_jobs(&self) -> usize {
        lock(&self.tables).outbox.len()
    }

    /// Jobs queued that [`crate::delivery::worker::run_outbox_worker`] has not finished
    /// with (delivered, skipped or given up on): `/_dev/mail` reports it so tests wait for
    /// an idle outbox, not a timer.
    pub fn unfinished_jobs(&self) -> usize {
        self.unfinished.load(Ordering::SeqCst)
    }

    /// Marks one job taken by [`MemoryStore::next_job`] as done with.
    pub fn job_finished(&self) {
        let _ = self
            .unfinished
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    fn push_job(&self, tables: &mut Tables, job: OutboxJob) {
        self.unfinished.fetch_add(1, Ordering::SeqCst);
        tables.outbox.push_back(job);
    }
}

#[async_trait]
impl crate::ports::UserRepository for MemoryStore {
    async fn find_by_uid(&self, uid: &UserId) -> Result<Option<User>, StoreError> {
        self.check_available()?;
        Ok(lock(&self.tables).users.get(uid).cloned())
    }

    async fn find_by_email(&self, lookup: &EmailLookup) -> Result<Vec<User>, StoreError> {
        self.check_available()?;
        let tables = lock(&self.tables);
        Ok(tables
            .uid_by_key
            .get(&lookup.key)
            .and_then(|uid| tables.users.get(uid))
            .cloned()
            .into_iter()
            .collect())
    }

    async fn insert(&self, user: &User) -> Result<InsertOutcome, StoreError> {
        self.check_available()?;
        let mut tables = lock(&self.tables);
        let key = user.email_key();
        if tables.uid_by_key.contains_key(&key) || tables.users.contains_key(&user.uid) {
            return Ok(InsertOutcome::EmailTaken);
        }
        tables.uid_by_key.insert(key, user.uid.clone());
        tables.users.insert(user.uid.clone(), user.clone());
        Ok(InsertOutcome::Inserted)
    }

    async fn commit_password_change(
        &self,
        change: &PasswordChange,
    ) -> Result<ChangeOutcome, StoreError> {
        self.check_available()?;
        let mut tables = lock(&self.tables);
        let Some(user) = tables.users.get_mut(&change.uid) else {
            return Ok(ChangeOutcome::Stale);
        };
        if user.password_hash.as_ref() != Some(&change.expected)
            || user.email != change.expected_email
            || !user.active
            || user.credential_version != change.expected_version
        {
            return Ok(ChangeOutcome::Stale);
        }
        user.password_hash = Some(change.new.clone());
        user.credential_version = change.expected_version.saturating_add(1);
        self.push_job(&mut tables, change.notice.clone());
        if let Some(event) = &change.event {
            self.push_job(&mut tables, event.clone());
        }
        drop(tables);
        self.job_ready.notify_one();
        Ok(ChangeOutcome::Applied)
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn enqueue(&self, job: OutboxJob) -> Result<(), StoreError> {
        self.check_available()?;
        self.push_job(&mut lock(&self.tables), job);
        self.job_ready.notify_one();
        Ok(())
    }
}

/// Fixed-window counters, pruned as windows end.
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    counters: Mutex<HashMap<(String, i64), (u32, i64)>>,
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

const PRUNE_ABOVE: usize = 10_000;

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
    ) -> Result<RateDecision, StoreError> {
        let (window, retry_after_secs) = limit.window_at(now);
        let mut counters = lock(&self.counters);
        if counters.len() > PRUNE_ABOVE {
            counters.retain(|_, (_, ends)| *ends > now);
        }
        let ends = now.saturating_add(i64::try_from(retry_after_secs).unwrap_or(i64::MAX));
        let entry = counters
            .entry((bucket.to_owned(), window))
            .or_insert((0, ends));
        entry.0 = entry.0.saturating_add(1);
        if entry.0 > limit.max {
            Ok(RateDecision::Limited { retry_after_secs })
        } else {
            Ok(RateDecision::Allowed)
        }
    }

    async fn forgive(
        &self,
        bucket: &str,
        limit: &RateLimit,
        now: i64,
        hits: Forgive,
    ) -> Result<(), StoreError> {
        let (window, _) = limit.window_at(now);
        let mut counters = lock(&self.counters);
        let key = (bucket.to_owned(), window);
        match hits {
            Forgive::All => {
                counters.remove(&key);
            }
            Forgive::One => {
                if let Some(entry) = counters.get_mut(&key) {
                    entry.0 = entry.0.saturating_sub(1);
                }
            }
        }
        Ok(())
    }
}

/// A sent message and when.
#[derive(Debug, Clone)]
pub struct SentMail {
    pub mail: OutgoingMail,
    pub sent_at: OffsetDateTime,
}

/// The next `n` calls fail: the retry paths' switch, in the core's own tests only.
#[cfg(test)]
#[derive(Debug, Default)]
struct FailNext(AtomicUsize);

#[cfg(test)]
impl FailNext {
    fn set(&self, n: usize) {
        self.0.store(n, Ordering::SeqCst);
    }

    /// Whether this call is one of those told to fail (counting it off).
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Keeps every message (oldest first); in the core's own tests it can be told to fail, for
/// the retry paths.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<SentMail>>,
    #[cfg(test)]
    transient_failures: FailNext,
}

impl RecordingMailer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<SentMail> {
        lock(&self.sent).clone()
    }

    /// The next `n` sends fail as if the mail service were down.
    #[cfg(test)]
    pub fn fail_next(&self, n: usize) {
        self.transient_failures.set(n);
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        #[cfg(test)]
        if self.transient_failures.take() {
            return Err(MailError::Transient("mailer told to fail".into()));
        }
        lock(&self.sent).push(SentMail {
            mail: mail.clone(),
            sent_at: OffsetDateTime::now_utc(),
        });
        Ok(())
    }
}

/// Keeps every published event; the next `n` publishes can be told to fail. Only the
/// core's tests use it (`pwreset serve` sends no events).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    published: Mutex<Vec<crate::ports::PasswordChangedEvent>>,
    transient_failures: FailNext,
}

#[cfg(test)]
impl RecordingPublisher {
    pub fn published(&self) -> Vec<crate::ports::PasswordChangedEvent> {
        lock(&self.published).clone()
    }

    pub fn fail_next(&self, n: usize) {
        self.transient_failures.set(n);
    }
}

#[cfg(test)]
#[async_trait]
impl crate::ports::EventPublisher for RecordingPublisher {
    async fn publish(
        &self,
        event: &crate::ports::PasswordChangedEvent,
    ) -> Result<(), crate::ports::PublishError> {
        if self.transient_failures.take() {
            return Err(crate::ports::PublishError::Transient(
                "publisher told to fail".into(),
            ));
        }
        lock(&self.published).push(event.clone());
        Ok(())
    }
}

/// A clock tests move by hand.
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

#[cfg(test)]
impl ManualClock {
    pub fn at(unix: i64) -> Self {
        Self(Mutex::new(
            OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        ))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = lock(&self.0);
        *now += by;
    }
}

#[cfg(test)]
impl crate::ports::Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }
}

//! The dev server's stand-in for the DynamoDB stream and the `send-reset-email` function:
//! a task that drains a [`MemoryStore`]'s outbox, each job after a short random pickup
//! delay (as the stream's is) and retried with backoff while delivery says `Transient`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Semaphore;

use crate::adapters::memory::MemoryStore;
use crate::ports::OutboxJob;
use crate::service::{DeliveryError, SendResetEmail};

/// How the in-process worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Each job waits a random time in this range before it is looked at, so the lookup
    /// never competes with the response still being written (a timing oracle on 2 cores).
    pub pickup_delay: std::ops::Range<Duration>,
    pub first_retry: Duration,
    pub max_retry: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            pickup_delay: Duration::from_millis(20)..Duration::from_millis(60),
            first_retry: Duration::from_millis(200),
            max_retry: Duration::from_secs(30),
            max_attempts: 30,
            concurrency: 8,
        }
    }
}

/// Drains the store's outbox forever: the dev server's stand-in for the DynamoDB stream and
/// the `send-reset-email` function. Abort the task to stop it.
pub async fn run_outbox_worker(
    store: Arc<MemoryStore>,
    deliverer: Arc<SendResetEmail>,
    settings: WorkerSettings,
) {
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    loop {
        let job = store.next_job().await;
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let deliverer = Arc::clone(&deliverer);
        let settings = settings.clone();
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let _permit = permit;
            let delay = if settings.pickup_delay.is_empty() {
                settings.pickup_delay.start
            } else {
                rand::rng().random_range(settings.pickup_delay.clone())
            };
            tokio::time::sleep(delay).await;
            deliver_with_retries(&deliverer, &job, &settings).await;
            store.job_finished();
        });
    }
}

async fn deliver_with_retries(
    deliverer: &SendResetEmail,
    job: &OutboxJob,
    settings: &WorkerSettings,
) {
    let mut backoff = settings.first_retry;
    for attempt in 1..=settings.max_attempts {
        match deliverer.deliver(job).await {
            Ok(outcome) => {
                tracing::debug!(event = "outbox_job_done", ?outcome, attempt);
                return;
            }
            Err(DeliveryError::Transient(reason)) => {
                tracing::warn!(event = "outbox_job_retry", attempt, %reason);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.max_retry);
            }
            Err(DeliveryError::Permanent(reason)) => {
                tracing::error!(event = "outbox_job_failed", %reason);
                return;
            }
        }
    }
    tracing::error!(
        event = "outbox_job_abandoned",
        attempts = settings.max_attempts
    );
}

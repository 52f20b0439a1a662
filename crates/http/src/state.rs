use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memlayer_app::MemLayer;
use memlayer_app::ports::HealthCheck;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;
use crate::generation::Generations;

/// What every handler shares: the application, the readiness probe and the bcrypt gate.
pub struct ApiState {
    /// The use cases.
    pub(crate) app: MemLayer,
    /// Checks that the database answers, for `/health/ready`.
    pub(crate) health: Arc<dyn HealthCheck>,
    /// Admits the requests that hash or check a password (bcrypt).
    pub(crate) bcrypt: BcryptGate,
    /// The replies generating on this instance.
    pub(crate) generations: Arc<Generations>,
}

impl ApiState {
    /// The use cases.
    pub fn app(&self) -> &MemLayer {
        &self.app
    }

    /// The state over `app`, probing readiness with `health`, admitting bcrypt work
    /// through `bcrypt`, running replies in `generations`.
    pub fn new(
        app: MemLayer,
        health: Arc<dyn HealthCheck>,
        bcrypt: BcryptGate,
        generations: Arc<Generations>,
    ) -> Self {
        Self {
            app,
            health,
            bcrypt,
            generations,
        }
    }
}

/// How many password hashes and checks (bcrypt) run at once, and how many may wait.
///
/// The others wait without holding a thread, so a login storm cannot take the threads
/// and CPUs that chat traffic needs. The wait is bounded: when `max_waiting` requests
/// already wait, a new one is refused at once, and one that waited `max_wait` gives up;
/// both get 503 with `Retry-After`, rather than a queue a person would give up on.
pub struct BcryptGate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// A turn at bcrypt; the slot is free again when it is dropped.
pub struct BcryptTurn<'a>(#[expect(dead_code, reason = "held for its Drop")] SemaphorePermit<'a>);

impl BcryptGate {
    /// `concurrency` at once; at most `max_waiting` waiting, each at most `max_wait`.
    pub fn new(concurrency: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            slots: Semaphore::new(concurrency),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Waits for a turn, or refuses with [`ApiError::Busy`].
    pub async fn admit(&self) -> Result<BcryptTurn<'_>, ApiError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(BcryptTurn(permit));
        }
        let retry_after = self.max_wait.as_secs().max(1);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("memlayer_bcrypt_queue_refused_total").increment(1);
            return Err(ApiError::Busy(retry_after));
        }
        self.report_queue();
        let waited = tokio::time::timeout(self.max_wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.report_queue();
        match waited {
            Ok(Ok(permit)) => Ok(BcryptTurn(permit)),
            Ok(Err(closed)) => Err(ApiError::App(memlayer_app::AppError::Internal(
                closed.into(),
            ))),
            Err(_elapsed) => Err(ApiError::Busy(retry_after)),
        }
    }
}

impl BcryptGate {
    /// Sets the queue-length gauge (every gate in the process reports to the same one;
    /// a service has one gate).
    fn report_queue(&self) {
        let waiting = u32::try_from(self.waiting.load(Ordering::Acquire)).unwrap_or(u32::MAX);
        metrics::gauge!("memlayer_bcrypt_queue_length").set(waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn past_the_queue_bound_a_turn_is_refused_at_once() {
        let gate = BcryptGate::new(1, 1, Duration::from_secs(3600));
        let _running = gate.admit().await.unwrap();
        let waiting = gate.admit();
        let mut waiting = std::pin::pin!(waiting);
        // Start the waiter, so it takes the only place in the queue.
        assert!(futures_util::FutureExt::now_or_never(waiting.as_mut()).is_none());

        let refused = gate.admit().await.err().unwrap();

        assert!(matches!(refused, ApiError::Busy(3600)), "{refused:?}");
    }

    #[actix_web::test]
    async fn a_turn_that_waits_too_long_is_refused() {
        let gate = BcryptGate::new(1, 8, Duration::from_millis(1));
        let _running = gate.admit().await.unwrap();

        let refused = gate.admit().await.err().unwrap();

        assert!(matches!(refused, ApiError::Busy(1)), "{refused:?}");
    }

    #[actix_web::test]
    async fn a_freed_slot_admits_the_next() {
        let gate = BcryptGate::new(1, 8, Duration::from_secs(60));
        drop(gate.admit().await.unwrap());

        assert!(gate.admit().await.is_ok());
    }
}

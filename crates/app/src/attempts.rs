//! The rate limit of the credential routes: a budget of attempts per client, kept in
//! storage (the [`AttemptBudget`] port), so that every instance of the service spends
//! from the same budget and the limit does not multiply with the instance count.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;
use memlayer_ports::{AttemptBudget, AttemptRate, Clock, Spent};

use crate::AppError;

/// How often (in attempts on one instance) the budgets that are full again are
/// forgotten, so storage stays bounded.
pub const FORGET_EVERY: u64 = 4_096;

/// A budget of `per_minute` attempts a minute per client, refilled continuously (one
/// attempt every minute ÷ `per_minute`), all of which may be spent at once.
pub struct AttemptLimit {
    budget: Arc<dyn AttemptBudget>,
    clock: Arc<dyn Clock>,
    rate: AttemptRate,
    spent: AtomicU64,
}

impl AttemptLimit {
    /// `per_minute` attempts a minute per client, kept in `budget`, timed by `clock`.
    pub fn per_minute(
        per_minute: NonZeroU32,
        budget: Arc<dyn AttemptBudget>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let per_minute = i64::from(per_minute.get());
        // In whole microseconds (what storage keeps), so that `burst` is exactly
        // `per_minute` intervals and that many attempts fit, however it rounds.
        let interval = 60_000_000 / per_minute;
        Self {
            budget,
            clock,
            rate: AttemptRate {
                interval: TimeDelta::microseconds(interval),
                burst: TimeDelta::microseconds(interval * per_minute),
            },
            spent: AtomicU64::new(0),
        }
    }

    /// How the budgets refill.
    pub fn rate(&self) -> AttemptRate {
        self.rate
    }

    /// Spends one of `client`'s attempts (`client` is opaque: whatever names a client
    /// to the caller), or refuses with [`AppError::TooManyAttempts`] and how long to
    /// wait. Blocks on storage: run it off the request threads.
    pub fn spend(&self, client: &str) -> Result<(), AppError> {
        let now = self.clock.now();
        if self
            .spent
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(FORGET_EVERY)
        {
            self.budget.forget_refilled(now)?;
        }
        match self.budget.spend(client, now, self.rate)? {
            Spent::Admitted => Ok(()),
            Spent::Refused { until } => Err(AppError::TooManyAttempts {
                retry_after: (until - now).to_std().unwrap_or_default(),
            }),
        }
    }

    /// Gives back an attempt of `client`'s that [`AttemptLimit::spend`] admitted, for a
    /// request refused afterwards without doing any work (the password hasher was too
    /// busy to take it). Blocks on storage.
    pub fn refund(&self, client: &str) -> Result<(), AppError> {
        Ok(self.budget.refund(client, self.rate)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;
    use memlayer_ports::{MockAttemptBudget, MockClock, RepositoryError};
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::testing::NOW;

    fn limit(per_minute: u32, budget: MockAttemptBudget) -> AttemptLimit {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(NOW);
        AttemptLimit::per_minute(
            NonZeroU32::new(per_minute).unwrap(),
            Arc::new(budget),
            Arc::new(clock),
        )
    }

    #[test]
    fn the_rate_is_one_attempt_per_share_of_the_minute_and_a_minute_of_burst() {
        let twenty = limit(20, MockAttemptBudget::new()).rate();
        let seven = limit(7, MockAttemptBudget::new()).rate();

        assert_eq!(twenty.interval, TimeDelta::seconds(3));
        assert_eq!(twenty.burst, TimeDelta::seconds(60));
        assert_eq!(seven.interval, TimeDelta::microseconds(8_571_428));
        assert_eq!(seven.burst, seven.interval * 7, "exactly seven fit");
    }

    #[test]
    fn an_attempt_within_the_budget_is_admitted_and_the_first_forgets_refilled_budgets() {
        let mut budget = MockAttemptBudget::new();
        budget
            .expect_forget_refilled()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(3));
        budget
            .expect_spend()
            .withf(|client, now, rate| {
                client == "198.51.100.9" && *now == NOW && rate.interval == TimeDelta::seconds(3)
            })
            .times(2)
            .returning(|_, _, _| Ok(Spent::Admitted));
        let limit = limit(20, budget);

        assert!(limit.spend("198.51.100.9").is_ok());
        assert!(
            limit.spend("198.51.100.9").is_ok(),
            "forgets only now and then"
        );
    }

    #[test]
    fn a_refused_attempt_says_how_long_to_wait() {
        let mut budget = MockAttemptBudget::new();
        budget.expect_forget_refilled().returning(|_| Ok(0));
        budget
            .expect_spend()
            .with(eq("2001:db8::/64"), always(), always())
            .returning(|_, now, _| {
                Ok(Spent::Refused {
                    until: now + TimeDelta::milliseconds(2_500),
                })
            });

        let refused = limit(20, budget).spend("2001:db8::/64").unwrap_err();

        assert!(
            matches!(refused, AppError::TooManyAttempts { retry_after } if retry_after == Duration::from_millis(2_500)),
            "{refused:?}"
        );
    }

    #[test]
    fn a_refund_gives_the_attempt_back_to_its_client_at_the_limits_rate() {
        let mut budget = MockAttemptBudget::new();
        budget
            .expect_refund()
            .withf(|client, rate| {
                client == "198.51.100.9" && rate.interval == TimeDelta::seconds(3)
            })
            .times(1)
            .returning(|_, _| Ok(()));

        assert!(limit(20, budget).refund("198.51.100.9").is_ok());
    }

    #[test]
    fn storage_down_is_unavailable_not_a_refusal() {
        let mut budget = MockAttemptBudget::new();
        budget.expect_forget_refilled().returning(|_| Ok(0));
        budget
            .expect_spend()
            .returning(|_, _, _| Err(RepositoryError::Unavailable("down".into())));

        let error = limit(20, budget).spend("198.51.100.9").unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }
}

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::RepositoryError;

/// How a budget of attempts refills, as the generic cell rate algorithm (GCRA) has it:
/// one attempt every `interval`, and at most `burst` of credit ahead of now (a full
/// budget holds `burst / interval` attempts, which may all come at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRate {
    /// The time one attempt costs: the budget gains one attempt per interval.
    pub interval: TimeDelta,
    /// How far ahead of now the budget may be spent; at least `interval`.
    pub burst: TimeDelta,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The attempt was within its budget, and is spent.
    Admitted,
    /// The budget is used up; nothing was spent. The next attempt is admitted from
    /// `until` on (if no other is admitted meanwhile).
    Refused {
        /// The earliest time the next attempt is admitted.
        until: DateTime<Utc>,
    },
}

/// Budgets of attempts, one per client, kept where every instance of the service sees
/// them: spending from one instance counts on all.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait AttemptBudget: Send + Sync {
    /// Spends one attempt of `client`'s budget at `now`, or refuses it, in one atomic
    /// step (two instances spending at once never both get the last attempt). `client`
    /// is opaque text naming who spends (an address, a network).
    fn spend(
        &self,
        client: &str,
        now: DateTime<Utc>,
        rate: AttemptRate,
    ) -> Result<Spent, RepositoryError>;
    /// Gives back one attempt `client` spent (an attempt that was refused for another
    /// reason before it did any work); nothing if `client` has no budget.
    fn refund(&self, client: &str, rate: AttemptRate) -> Result<(), RepositoryError>;
    /// Forgets the clients whose budget is full again at `now`, which are as good as
    /// never seen, so storage stays bounded by the clients of the last `burst`. How
    /// many were forgotten.
    fn forget_refilled(&self, now: DateTime<Utc>) -> Result<usize, RepositoryError>;
}

//! What a user spends, as they see it: `GET /auth/me/usage`.

use chrono::{DateTime, Utc};
use memlayer_domain::Session;

use crate::{AppError, MemLayer};

/// A user's spending today (the UTC day) and their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    /// When the day started.
    pub period_start: DateTime<Utc>,
    /// When it ends (the next day's start).
    pub period_end: DateTime<Utc>,
    /// The tokens spent today (replies and titles that ended today).
    pub tokens_used: u64,
    /// The tokens the user may spend a day; `None` for no limit.
    pub token_limit: Option<u64>,
    /// The user's replies generating now.
    pub generations_running: usize,
    /// How many may generate at once.
    pub generation_limit: usize,
}

impl MemLayer {
    /// The session user's spending today and their limits, in one read.
    pub fn usage(&self, session: Session) -> Result<UsageReport, AppError> {
        let day = self.today();
        let spending = self
            .ports
            .replies
            .generating(None, session.user, day)?
            .filter(|spending| spending.token_generation == session.generation)
            .ok_or(AppError::Unauthenticated)?;
        Ok(UsageReport {
            period_start: day.start(),
            period_end: day.end(),
            tokens_used: spending.tokens_used,
            token_limit: self.allowance().token_limit(spending.own_token_limit),
            generations_running: spending.of_user,
            generation_limit: self.user_max_generations,
        })
    }
}

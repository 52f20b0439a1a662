//! What replies cost: tokens per reply, per user per UTC day, and the limits on them.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

/// The most a token limit may be set to: far above any day's use, far below what sums
/// of it could overflow.
pub const TOKEN_LIMIT_MAX: u64 = 1_000_000_000_000;

/// The most tokens one report may claim, per field: a model server's absurd figure is
/// held there, so one reply cannot overflow a day's sum.
pub const REPORTED_TOKENS_MAX: u64 = 1 << 32;

/// The tokens a reply (or a title request) took: as the model server reported them, or
/// estimated from the characters sent and received when it reported none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    /// Tokens of what the model read.
    pub prompt_tokens: u64,
    /// Tokens of what the model wrote.
    pub completion_tokens: u64,
    /// Whether these are an estimate, not the model server's report.
    pub estimated: bool,
}

impl TokenUsage {
    /// As the model server reported it (each figure held at [`REPORTED_TOKENS_MAX`]).
    pub fn reported(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens: prompt_tokens.min(REPORTED_TOKENS_MAX),
            completion_tokens: completion_tokens.min(REPORTED_TOKENS_MAX),
            estimated: false,
        }
    }

    /// An estimate: a token for every four characters, rounded up.
    pub fn estimate(prompt_chars: usize, completion_chars: usize) -> Self {
        let tokens = |chars: usize| u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX);
        Self {
            prompt_tokens: tokens(prompt_chars),
            completion_tokens: tokens(completion_chars),
            estimated: true,
        }
    }

    /// As reported, or else estimated from the characters sent and written.
    pub fn or_estimate(
        reported: Option<Self>,
        prompt_chars: usize,
        completion_chars: usize,
    ) -> Self {
        reported.unwrap_or_else(|| Self::estimate(prompt_chars, completion_chars))
    }

    /// Prompt and completion together: what counts against a limit.
    pub fn total(self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A UTC day, as the ledger counts it: days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageDay(pub i64);

impl UsageDay {
    /// The UTC day `at` falls in.
    pub fn of(at: DateTime<Utc>) -> Self {
        Self(at.timestamp().div_euclid(86_400))
    }

    /// When the day starts (UTC midnight).
    pub fn start(self) -> DateTime<Utc> {
        let date = NaiveDate::default() + TimeDelta::days(self.0);
        date.and_time(NaiveTime::MIN).and_utc()
    }

    /// When the day ends: the next day's start.
    pub fn end(self) -> DateTime<Utc> {
        Self(self.0 + 1).start()
    }
}

/// How much a user may spend: the limits the operator set, read together with what
/// the user spent, before a reply is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allowance {
    /// Tokens the user may spend in a UTC day; `None` for no limit.
    pub tokens_per_day: Option<u64>,
    /// Replies the user may have generating at once.
    pub generations: usize,
}

impl Allowance {
    /// The daily token limit of a user whose own limit is `own`: theirs if an admin set
    /// one, else the operator's default.
    pub fn token_limit(self, own: Option<u64>) -> Option<u64> {
        own.or(self.tokens_per_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_rounds_up_and_zero_is_zero() {
        assert_eq!(
            TokenUsage::estimate(0, 9),
            TokenUsage {
                prompt_tokens: 0,
                completion_tokens: 3,
                estimated: true
            }
        );
        assert_eq!(TokenUsage::estimate(4, 4).total(), 2);
    }

    #[test]
    fn an_absurd_report_is_held() {
        let usage = TokenUsage::reported(u64::MAX, u64::MAX);
        assert_eq!(usage.total(), 2 * REPORTED_TOKENS_MAX);
    }

    #[test]
    fn days_are_utc_and_retry_after_counts_to_midnight() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T23:59:58.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let day = UsageDay::of(at);
        assert_eq!(day.start().to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(day.end().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(UsageDay::of(before_epoch), UsageDay(-1));
    }
}

//! Password hashing: bcrypt's cost, and how much of it runs at once or waits.

use std::time::Duration;

use super::ConfigError;
use super::http::default_workers;
use super::parse::parse;

/// The password hashing settings.
#[derive(Debug, Clone)]
pub struct PasswordHashingConfig {
    /// bcrypt's cost factor.
    pub bcrypt_cost: u32,
    /// Most logins and registrations (bcrypt work) processed at once; more wait their
    /// turn without holding a thread, so the other CPUs stay free for chat traffic.
    pub bcrypt_concurrency: usize,
    /// Most password hashes and checks waiting for a bcrypt slot; more are refused at
    /// once with 503.
    pub bcrypt_queue_length: usize,
    /// Longest wait for a bcrypt slot before a 503.
    pub bcrypt_queue_timeout: Duration,
}

impl PasswordHashingConfig {
    /// Reads `BCRYPT_CONCURRENCY`, `BCRYPT_COST`, `BCRYPT_QUEUE_LENGTH` and
    /// `BCRYPT_QUEUE_TIMEOUT_MS` through `get`.
    pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<Self, ConfigError> {
        let bcrypt_concurrency = parse(
            get,
            "BCRYPT_CONCURRENCY",
            default_bcrypt_concurrency(),
            1..=1_024,
        )?;
        Ok(Self {
            bcrypt_cost: parse(get, "BCRYPT_COST", 12, 4..=31)?,
            bcrypt_concurrency,
            bcrypt_queue_length: parse(
                get,
                "BCRYPT_QUEUE_LENGTH",
                default_bcrypt_queue_length(bcrypt_concurrency),
                0..=1_000_000,
            )?,
            bcrypt_queue_timeout: Duration::from_millis(parse(
                get,
                "BCRYPT_QUEUE_TIMEOUT_MS",
                2_000,
                1..=600_000,
            )?),
        })
    }
}

/// Half the CPUs (at least one): the other half stays free for chat traffic.
fn default_bcrypt_concurrency() -> usize {
    default_workers().div_ceil(2)
}

/// Eight hashes waiting per slot: about 2 s of work at cost 12.
fn default_bcrypt_queue_length(bcrypt_concurrency: usize) -> usize {
    8 * bcrypt_concurrency
}

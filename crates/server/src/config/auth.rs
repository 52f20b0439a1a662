//! Authentication: the tokens (their signing secret and lifetime), the limit on
//! credential attempts, and who may register.
//!
//! The rate limit is here rather than with the password hashing: it bounds how often
//! a client may try credentials (guessing passwords), counted per client in the
//! database for every instance, whatever the attempts cost; the bcrypt settings bound
//! this instance's CPU, whoever asks.

use std::path::PathBuf;
use std::time::Duration;

use memlayer_app::Registration;
use secrecy::SecretString;

use super::ConfigError;
use super::database::DatabaseConfig;
use super::parse::{parse, parse_with};

/// Fewest bytes a production JWT secret may have.
pub const MIN_SECRET_BYTES: usize = 32;

/// The authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Where the HS256 signing secret comes from.
    pub jwt_secret: JwtSecret,
    /// How long an access token is valid.
    pub token_lifetime: Duration,
    /// Credential attempts (`/auth/login`, `/auth/register`, `/auth/password`, `DELETE
    /// /auth/me`) a client may make per minute, across every instance on the database;
    /// 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Who may create an account (`REGISTRATION`: `open`, the default, or `closed`).
    pub registration: Registration,
}

/// Where the token-signing secret comes from.
#[derive(Debug, Clone)]
pub enum JwtSecret {
    /// `JWT_SECRET`.
    Configured(SecretString),
    /// Zero-setup mode only (SQLite, no `JWT_SECRET`): a development secret generated
    /// once and kept in the folder of this database file.
    Development {
        /// The SQLite database file.
        beside: PathBuf,
    },
}

impl AuthConfig {
    /// Reads `JWT_SECRET`, `ACCESS_TOKEN_EXPIRE_MINUTES`, `AUTH_RATE_LIMIT_PER_MINUTE`
    /// and `REGISTRATION` through `get`; whether a secret is required depends
    /// on the `database`.
    pub fn from_env<'a>(
        get: impl Fn(&str) -> Option<&'a str> + Copy,
        database: &DatabaseConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_secret: jwt_secret(get("JWT_SECRET"), database)?,
            token_lifetime: Duration::from_secs(
                60 * parse(get, "ACCESS_TOKEN_EXPIRE_MINUTES", 7 * 24 * 60, 1..=525_600)?,
            ),
            rate_limit_per_minute: parse(get, "AUTH_RATE_LIMIT_PER_MINUTE", 20, 0..=1_000_000)?,
            registration: parse_with(
                get,
                "REGISTRATION",
                Some(Registration::Open),
                |value| match value.to_ascii_lowercase().as_str() {
                    "open" => Some(Registration::Open),
                    "closed" => Some(Registration::Closed),
                    _ => None,
                },
                "open or closed",
            )?,
        })
    }
}

/// A configured secret must have at least [`MIN_SECRET_BYTES`]; without one, only the
/// embedded SQLite mode may run, on a generated development secret.
fn jwt_secret(value: Option<&str>, database: &DatabaseConfig) -> Result<JwtSecret, ConfigError> {
    let error = |value: &str, reason: String| ConfigError {
        name: "JWT_SECRET",
        value: value.to_owned(),
        reason,
    };
    match (value, database.sqlite_file()) {
        (Some(secret), _) if secret.len() >= MIN_SECRET_BYTES => Ok(JwtSecret::Configured(SecretString::from(secret))),
        (None, Some(file)) => Ok(JwtSecret::Development { beside: file.to_owned() }),
        (Some(secret), _) => Err(error(
            "(hidden)",
            format!("too short: {} bytes, at least {MIN_SECRET_BYTES} are required", secret.len()),
        )),
        (None, None) => Err(error(
            "",
            "required with a PostgreSQL database: set at least 32 random bytes, e.g. `openssl rand -hex 32`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::{Config, vars};
    use super::*;

    #[test]
    fn registration_is_open_by_default_closed_on_request_and_nothing_else() {
        let read = |value: Option<&str>| {
            let mut set = vec![];
            if let Some(value) = value {
                set.push(("REGISTRATION", value));
            }
            Config::from_vars(&vars(&set)).map(|config| config.auth.registration)
        };
        assert_eq!(read(None).unwrap(), Registration::Open);
        assert_eq!(read(Some("Closed")).unwrap(), Registration::Closed);
        assert_eq!(read(Some("maybe")).unwrap_err().name, "REGISTRATION");
    }

    #[test]
    fn postgres_requires_a_secret() {
        let error = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://db/x")])).unwrap_err();
        assert_eq!(error.name, "JWT_SECRET");
    }

    #[test]
    fn a_short_secret_is_refused_and_not_echoed() {
        let error = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("JWT_SECRET", "hunter2"),
        ]))
        .unwrap_err();
        assert_eq!(error.name, "JWT_SECRET");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn a_long_secret_is_accepted() {
        let secret = "x".repeat(32);
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("JWT_SECRET", &secret),
        ]))
        .unwrap();
        assert!(
            matches!(&config.auth.jwt_secret, JwtSecret::Configured(s) if s.expose_secret() == secret),
            "{:?}",
            config.auth.jwt_secret
        );
        assert!(!format!("{config:?}").contains(&secret));
    }

    #[test]
    fn a_short_secret_is_refused_in_zero_setup_mode_too() {
        let error = Config::from_vars(&vars(&[("JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(error.name, "JWT_SECRET");
    }
}

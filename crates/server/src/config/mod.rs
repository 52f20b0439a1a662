//! Configuration: read once at start-up from the environment (a `.env` file is
//! honoured), with defaults that make `cargo run` work on a fresh machine.
//!
//! One struct per concern, each read by its own `from_env(get)`, where `get` gives a
//! variable's value (trimmed; `None` when unset or empty): [`DatabaseConfig`],
//! [`AuthConfig`], [`PasswordHashingConfig`], [`HttpConfig`], [`LoggingConfig`], and the
//! assistant's [`OpenAiSettings`]. [`Config`] composes them; a concern whose defaults
//! derive from another's settings (the threads per worker from the pool) is handed
//! them.

mod assistant;
mod auth;
mod database;
mod http;
mod logging;
mod parse;
mod password_hashing;

use std::collections::HashMap;

use memlayer_adapters::OpenAiSettings;
use thiserror::Error;

pub use auth::{AuthConfig, JwtSecret, MIN_SECRET_BYTES};
pub use database::{DEFAULT_DATABASE_URL, DatabaseConfig};
pub use http::{DEFAULT_CORS_ORIGINS, HttpConfig};
pub use logging::{LogFormat, LoggingConfig};
pub use password_hashing::PasswordHashingConfig;

/// The service's settings. Secrets are [`SecretString`](secrecy::SecretString)s: their
/// `Debug` hides them, and reading one takes an explicit `expose_secret()`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database and its pool.
    pub database: DatabaseConfig,
    /// The tokens and the limit on credential attempts.
    pub auth: AuthConfig,
    /// bcrypt: its cost, and how much of it runs at once.
    pub password_hashing: PasswordHashingConfig,
    /// The HTTP server.
    pub http: HttpConfig,
    /// Logs and metrics.
    pub logging: LoggingConfig,
    /// The model that answers messages; `None`: every reply is "Message received".
    pub assistant: Option<OpenAiSettings>,
}

/// A setting that could not be used.
#[derive(Debug, Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// Its value (never a secret's).
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the settings from `vars` (the environment, or a test's map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        // First: the other checks (the JWT secret's) depend on which database this is.
        let database = DatabaseConfig::from_env(get)?;
        let auth = AuthConfig::from_env(get, &database)?;
        let password_hashing = PasswordHashingConfig::from_env(get)?;
        // Before the HTTP settings: a model's streamed replies take more descriptors.
        let assistant = assistant::from_env(get)?;
        let http = HttpConfig::from_env(get, &database, &password_hashing, assistant.is_some())?;
        Ok(Self {
            database,
            auth,
            password_hashing,
            http,
            logging: LoggingConfig::from_env(get)?,
            assistant,
        })
    }
}

/// A test's environment.
#[cfg(test)]
fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn with_nothing_set_the_service_runs_on_the_embedded_database_on_port_8000() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(
            (config.http.host.to_string(), config.http.port),
            ("127.0.0.1".to_owned(), 8000)
        );
        assert_eq!(
            config.http.cors_origins,
            ["http://localhost:5173", "http://127.0.0.1:5173"]
        );
        assert_eq!(
            config.auth.token_lifetime,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(config.password_hashing.bcrypt_cost, 12);
        assert!(
            matches!(&config.auth.jwt_secret, JwtSecret::Development { beside } if beside == &PathBuf::from("data/memlayer.db")),
            "{:?}",
            config.auth.jwt_secret
        );
    }

    #[test]
    fn bad_numbers_name_the_variable_and_the_expectation() {
        let error = Config::from_vars(&vars(&[("PORT", "eighty")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid PORT="eighty": expected a whole number from 0 to 65535"#
        );
        assert_eq!(
            Config::from_vars(&vars(&[("BCRYPT_COST", "3")]))
                .unwrap_err()
                .name,
            "BCRYPT_COST"
        );
        assert_eq!(
            Config::from_vars(&vars(&[("HOST", "localhost:1")]))
                .unwrap_err()
                .name,
            "HOST"
        );
    }
}

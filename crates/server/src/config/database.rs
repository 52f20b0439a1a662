//! The database: which one (`DATABASE_URL`), its pool, and how long to wait for it.

use std::path::Path;
use std::time::Duration;

use memlayer_adapters::Backend;
use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::parse::parse;

/// Where the embedded database lives when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/memlayer.db";

/// SQLite's default pool: connections that read (the writes have one of their own).
const SQLITE_READERS: u32 = 2;

/// PostgreSQL's default pool.
const POSTGRES_CONNECTIONS: u32 = 10;

/// The database settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://…` (with its password) or `sqlite://path`.
    pub url: SecretString,
    /// Which engine `url` names.
    pub backend: Backend,
    /// Most database connections (on SQLite, the connections that read).
    pub pool_size: u32,
    /// How long a request waits for a database connection before answering 503.
    pub checkout_timeout: Duration,
    /// How long start-up waits for the database before giving up.
    pub startup_timeout: Duration,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_POOL_SIZE`, `DATABASE_TIMEOUT_MS` and
    /// `DATABASE_STARTUP_TIMEOUT_SECS` through `get`.
    pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<Self, ConfigError> {
        let url = get("DATABASE_URL").unwrap_or(DEFAULT_DATABASE_URL);
        let backend = check_database_url(url)?;
        Ok(Self {
            url: SecretString::from(url),
            backend,
            pool_size: parse(
                get,
                "DATABASE_POOL_SIZE",
                default_pool_size(backend),
                1..=1_000,
            )?,
            checkout_timeout: Duration::from_millis(parse(
                get,
                "DATABASE_TIMEOUT_MS",
                2_000,
                1..=600_000,
            )?),
            startup_timeout: Duration::from_secs(parse(
                get,
                "DATABASE_STARTUP_TIMEOUT_SECS",
                30,
                0..=3_600,
            )?),
        })
    }

    /// The database file, on SQLite.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self.backend {
            Backend::Sqlite => self
                .url
                .expose_secret()
                .strip_prefix("sqlite://")
                .map(Path::new),
            Backend::Postgres => None,
        }
    }
}

/// SQLite writes on one connection of its own (in turn, committed in groups): the pool
/// is its readers, and few do (each keeps its own page cache).
fn default_pool_size(backend: Backend) -> u32 {
    match backend {
        Backend::Postgres => POSTGRES_CONNECTIONS,
        Backend::Sqlite => SQLITE_READERS,
    }
}

/// The engine of a supported URL ([`Backend::of_url`]); anything else is named as a
/// `DATABASE_URL` problem, by its scheme only, or not at all: the rest may hold a
/// password in a form redaction does not know (libpq's `host=… password=…` keywords).
/// A SQLite URL, which holds none, is shown and corrected (`sqlite:nc.db`).
fn check_database_url(url: &str) -> Result<Backend, ConfigError> {
    const EXPECTED: &str = "expected postgres://user:password@host/database or sqlite://path";
    let error = |value: String, reason: String| ConfigError {
        name: "DATABASE_URL",
        value,
        reason,
    };
    if let Ok(backend) = Backend::of_url(url) {
        return Ok(backend);
    }
    Err(match url.strip_prefix("sqlite:") {
        Some(path) => {
            let fixed = if path.is_empty() {
                DEFAULT_DATABASE_URL.to_owned()
            } else {
                format!("sqlite://{path}")
            };
            error(
                url.to_owned(),
                format!("write {fixed} (a SQLite URL is sqlite:// followed by the file's path)"),
            )
        }
        None => match url.split_once("://") {
            Some((scheme, _)) if is_scheme(scheme) => {
                error(format!("{scheme}://…"), EXPECTED.to_owned())
            }
            _ => error(
                "(hidden)".to_owned(),
                "must start with postgres://, postgresql:// or sqlite:// (this value has no \"://\" after a scheme; it is not shown, as it may hold a password)".to_owned(),
            ),
        },
    })
}

/// Whether `scheme` is a URL scheme (RFC 3986: a letter, then letters, digits, `+`,
/// `-` and `.`), and so no password.
fn is_scheme(scheme: &str) -> bool {
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::super::{Config, vars};

    #[test]
    fn the_database_password_stays_out_of_debug_output() {
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://app:s3cret-pw@db/x"),
            ("JWT_SECRET", &"x".repeat(32)),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn a_sqlite_url_without_its_slashes_is_answered_with_the_url_to_write() {
        let error = Config::from_vars(&vars(&[("DATABASE_URL", "sqlite:nc.db")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid DATABASE_URL="sqlite:nc.db": write sqlite://nc.db (a SQLite URL is sqlite:// followed by the file's path)"#
        );
        let error =
            Config::from_vars(&vars(&[("DATABASE_URL", "sqlite:/var/lib/nc.db")])).unwrap_err();
        assert!(
            error.to_string().contains("write sqlite:///var/lib/nc.db "),
            "{error}"
        );
    }

    #[test]
    fn a_database_url_of_another_kind_is_shown_by_its_scheme_at_most() {
        let error =
            Config::from_vars(&vars(&[("DATABASE_URL", "mysql://root:hunter2@db/x")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid DATABASE_URL="mysql://…": expected postgres://user:password@host/database or sqlite://path"#
        );
        for not_a_url in [
            "host=db user=u password=hunter2 dbname=x",
            "root:hunter2@db/x",
            "root:hunter2@db://x",
        ] {
            let error = Config::from_vars(&vars(&[("DATABASE_URL", not_a_url)])).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.name, "DATABASE_URL", "{message}");
            assert!(
                message.contains(r#"invalid DATABASE_URL="(hidden)": must start with postgres://"#),
                "{message}"
            );
            assert!(message.contains(r#"no "://""#), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

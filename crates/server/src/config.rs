//! Configuration: read once at start-up from the environment (a `.env` file is
//! honoured), with defaults that make `cargo run` work on a fresh machine.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use memlayer_adapters::{Backend, ContextWindow, OpenAiSettings, Url};
use secrecy::SecretString;
use thiserror::Error;

/// Where the embedded database lives when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/memlayer.db";

/// SQLite's default pool: connections that read (the writes have one of their own).
const SQLITE_READERS: u32 = 2;

/// On SQLite, blocking threads per worker beyond its share of the readers: writers
/// waiting for their turn or their group's commit, which hold a thread but no
/// connection. The more wait, the more one commit (one `fsync`) carries.
const SQLITE_WRITERS_PER_WORKER: usize = 16;
/// The SPA's Vite dev server, by name and by address.
pub const DEFAULT_CORS_ORIGINS: &str = "http://localhost:5173,http://127.0.0.1:5173";
/// Fewest bytes a production JWT secret may have.
pub const MIN_SECRET_BYTES: usize = 32;

/// The service's settings. Secrets are [`SecretString`]s: their `Debug` hides them, and
/// reading one takes an explicit `expose_secret()`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `postgres://…` (with its password) or `sqlite://path`.
    pub database_url: SecretString,
    /// Where the HS256 signing secret comes from.
    pub jwt_secret: JwtSecret,
    /// How long an access token is valid.
    pub token_lifetime: Duration,
    /// Origins allowed by CORS, exactly as browsers send them.
    pub cors_origins: Vec<String>,
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Most database connections.
    pub pool_size: u32,
    /// How long a request waits for a database connection before answering 503.
    pub db_checkout_timeout: Duration,
    /// How long start-up waits for the database before giving up.
    pub db_startup_timeout: Duration,
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
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a client has to send a request's head (line and headers).
    pub request_head_timeout: Duration,
    /// How long a client has to send a request's body, from its head on; then 408 and
    /// the connection is closed.
    pub request_body_timeout: Duration,
    /// How long an idle connection is kept open between requests.
    pub keep_alive: Duration,
    /// Most connections open at once (over all workers); more wait in the listen queue.
    pub max_connections: usize,
    /// HTTP worker threads.
    pub workers: usize,
    /// Threads per worker that run use cases: the worker's share of the pool, plus room
    /// for the bcrypt work (`bcrypt_concurrency`), which holds a thread but no
    /// connection. More would only queue for a connection, and every wait and wake-up on
    /// the pool is a context switch.
    pub blocking_threads: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Credential attempts (`/auth/login`, `/auth/register`, `/auth/password`, `DELETE
    /// /auth/me`) a client may make per minute, across every instance on the database;
    /// 0: no limit.
    pub auth_rate_limit_per_minute: u32,
    /// Whether to identify clients by the last `X-Forwarded-For` address (behind one proxy).
    pub trust_forwarded_for: bool,
    /// Most connections one client (an IPv4 address, an IPv6 /64) may hold open at
    /// once; 0: no such cap (behind a proxy every connection comes from the proxy).
    pub max_connections_per_client: usize,
    /// Log filter, `tracing` targets syntax (`info`, `memlayer_http=debug,warn`); checked.
    pub log_filter: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Where the Prometheus metrics are served (`/metrics`); `None`: not at all.
    pub metrics_addr: Option<SocketAddr>,
    /// The model that answers messages; `None`: every reply is "Message received".
    pub assistant: Option<OpenAiSettings>,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, with the span's fields (the request id), for log
    /// collectors.
    Json,
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
        let database_url = get("DATABASE_URL").unwrap_or(DEFAULT_DATABASE_URL);
        // First: the other checks (the JWT secret's) depend on which database this is.
        check_database_url(database_url)?;
        let jwt_secret = jwt_secret(get("JWT_SECRET"), database_url)?;
        // SQLite writes on one connection of its own (in turn, committed in groups): the
        // pool is its readers, and few do (each keeps its own page cache).
        let sqlite = database_url.starts_with("sqlite://");
        let pool_size = parse(
            get,
            "DATABASE_POOL_SIZE",
            if sqlite { SQLITE_READERS } else { 10 },
            1..=1_000,
        )?;
        let workers = parse(get, "WORKERS", default_workers(), 1..=1_024)?;
        let bcrypt_concurrency = parse(
            get,
            "BCRYPT_CONCURRENCY",
            default_workers().div_ceil(2),
            1..=1_024,
        )?;
        let trust_forwarded_for = parse_with(
            get,
            "TRUST_FORWARDED_FOR",
            Some(false),
            |v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            "true or false",
        )?;
        Ok(Self {
            database_url: SecretString::from(database_url),
            jwt_secret,
            token_lifetime: Duration::from_secs(
                60 * parse(get, "ACCESS_TOKEN_EXPIRE_MINUTES", 7 * 24 * 60, 1..=525_600)?,
            ),
            cors_origins: origins(get("CORS_ORIGINS").unwrap_or(DEFAULT_CORS_ORIGINS))?,
            host: parse_with(
                get,
                "HOST",
                "127.0.0.1".parse().ok(),
                |v| v.parse().ok(),
                "an IP address such as 127.0.0.1 or 0.0.0.0",
            )?,
            port: parse(get, "PORT", 8000, 0..=65_535)?,
            pool_size,
            db_checkout_timeout: Duration::from_millis(parse(
                get,
                "DATABASE_TIMEOUT_MS",
                2_000,
                1..=600_000,
            )?),
            db_startup_timeout: Duration::from_secs(parse(
                get,
                "DATABASE_STARTUP_TIMEOUT_SECS",
                30,
                0..=3_600,
            )?),
            bcrypt_cost: parse(get, "BCRYPT_COST", 12, 4..=31)?,
            bcrypt_concurrency,
            bcrypt_queue_length: parse(
                get,
                "BCRYPT_QUEUE_LENGTH",
                8 * bcrypt_concurrency,
                0..=1_000_000,
            )?,
            bcrypt_queue_timeout: Duration::from_millis(parse(
                get,
                "BCRYPT_QUEUE_TIMEOUT_MS",
                2_000,
                1..=600_000,
            )?),
            request_head_timeout: Duration::from_secs(parse(
                get,
                "REQUEST_HEAD_TIMEOUT_SECS",
                5,
                1..=3_600,
            )?),
            request_body_timeout: Duration::from_secs(parse(
                get,
                "REQUEST_BODY_TIMEOUT_SECS",
                10,
                1..=3_600,
            )?),
            keep_alive: Duration::from_secs(parse(get, "KEEP_ALIVE_SECS", 5, 0..=3_600)?),
            max_connections: parse(
                get,
                "MAX_CONNECTIONS",
                default_max_connections(
                    open_files_limit(),
                    usize::try_from(pool_size).unwrap_or(usize::MAX),
                ),
                1..=1_000_000,
            )?,
            max_body_bytes: parse(
                get,
                "MAX_BODY_BYTES",
                memlayer_http::DEFAULT_BODY_LIMIT,
                1_024..=64 * 1024 * 1024,
            )?,
            workers,
            blocking_threads: parse(
                get,
                "BLOCKING_THREADS",
                usize::try_from(pool_size)
                    .unwrap_or(usize::MAX)
                    .div_ceil(workers)
                    .saturating_add(if sqlite { SQLITE_WRITERS_PER_WORKER } else { 0 })
                    .saturating_add(bcrypt_concurrency),
                1..=1_024,
            )?,
            shutdown_timeout: Duration::from_secs(parse(
                get,
                "SHUTDOWN_TIMEOUT_SECS",
                30,
                0..=3_600,
            )?),
            auth_rate_limit_per_minute: parse(
                get,
                "AUTH_RATE_LIMIT_PER_MINUTE",
                20,
                0..=1_000_000,
            )?,
            trust_forwarded_for,
            max_connections_per_client: parse(
                get,
                "MAX_CONNECTIONS_PER_CLIENT",
                if trust_forwarded_for { 0 } else { 64 },
                0..=1_000_000,
            )?,
            log_filter: log_filter(get("RUST_LOG"))?,
            log_format: parse_with(
                get,
                "LOG_FORMAT",
                Some(LogFormat::Text),
                |v| match v.to_ascii_lowercase().as_str() {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
                "text or json",
            )?,
            metrics_addr: get("METRICS_ADDR")
                .map(|v| {
                    v.parse()
                        .map_err(|error: std::net::AddrParseError| ConfigError {
                            name: "METRICS_ADDR",
                            value: v.to_owned(),
                            reason: format!(
                                "{error}: expected an address and port, like 127.0.0.1:9100"
                            ),
                        })
                })
                .transpose()?,
            assistant: assistant(get)?,
        })
    }
}

/// A URL of a supported database ([`Backend::of_url`]); anything else is named as a
/// `DATABASE_URL` problem, by its scheme only, or not at all: the rest may hold a
/// password in a form redaction does not know (libpq's `host=… password=…` keywords).
/// A SQLite URL, which holds none, is shown and corrected (`sqlite:nc.db`).
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "expected postgres://user:password@host/database or sqlite://path";
    if Backend::of_url(url).is_ok() {
        return Ok(());
    }
    let error = |value: String, reason: String| ConfigError {
        name: "DATABASE_URL",
        value,
        reason,
    };
    if let Some(path) = url.strip_prefix("sqlite:") {
        let fixed = if path.is_empty() {
            "sqlite://data/memlayer.db".to_owned()
        } else {
            format!("sqlite://{path}")
        };
        return Err(error(
            url.to_owned(),
            format!("write {fixed} (a SQLite URL is sqlite:// followed by the file's path)"),
        ));
    }
    match url.split_once("://") {
        Some((scheme, _)) if is_scheme(scheme) => Err(error(format!("{scheme}://…"), EXPECTED.to_owned())),
        _ => Err(error(
            "(hidden)".to_owned(),
            "must start with postgres://, postgresql:// or sqlite:// (this value has no \"://\" after a scheme; it is not shown, as it may hold a password)".to_owned(),
        )),
    }
}

/// Whether `scheme` is a URL scheme (RFC 3986: a letter, then letters, digits, `+`,
/// `-` and `.`), and so no password.
fn is_scheme(scheme: &str) -> bool {
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `RUST_LOG`, checked: a typo must not silently log nothing (or everything).
///
/// `tracing`'s parser reads any word that is not a level as a target, which then
/// enables that target alone: `[[[` (or ` info`, with its space) would switch every
/// line off, errors included. So a target must also look like one (a module path, like
/// `memlayer_http::routes`).
fn log_filter(value: Option<&str>) -> Result<String, ConfigError> {
    const EXPECTED: &str = "expected a level or target=level list, like info,memlayer_http=debug";
    let value = value.unwrap_or("info");
    let error = |reason: String| ConfigError {
        name: "RUST_LOG",
        value: value.to_owned(),
        reason,
    };
    value
        .parse::<tracing_subscriber::filter::Targets>()
        .map_err(|error_| error(format!("{error_} ({EXPECTED})")))?;
    let not_a_target = value
        .split(',')
        .map(|directive| {
            directive
                .split_once('=')
                .map_or(directive, |(target, _)| target)
        })
        .filter(|target| {
            target
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        })
        .find(|target| !is_target(target));
    match not_a_target {
        Some(target) => Err(error(format!(
            "{target:?} is neither a level nor a target ({EXPECTED})"
        ))),
        None => Ok(value.to_owned()),
    }
}

/// Whether `target` can name a `tracing` target: a module path (`memlayer_http`,
/// `actix_http::h1`) or a similar name, not punctuation.
fn is_target(target: &str) -> bool {
    !target.is_empty()
        && target.split("::").all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

/// The `ASSISTANT_*` settings: none at all, or at least a URL and a model.
fn assistant<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
) -> Result<Option<OpenAiSettings>, ConfigError> {
    const OTHERS: [&str; 7] = [
        "ASSISTANT_MODEL",
        "ASSISTANT_API_KEY",
        "ASSISTANT_SYSTEM_PROMPT",
        "ASSISTANT_CONTEXT_MESSAGES",
        "ASSISTANT_CONTEXT_CHARS",
        "ASSISTANT_TIMEOUT_SECS",
        "ASSISTANT_MAX_REPLY_CHARS",
    ];
    let Some(url) = get("ASSISTANT_URL") else {
        return match OTHERS.into_iter().find(|name| get(name).is_some()) {
            Some(name) => Err(ConfigError {
                name: "ASSISTANT_URL",
                value: String::new(),
                reason: format!(
                    "required when {name} is set: the base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1"
                ),
            }),
            None => Ok(None),
        };
    };
    let base_url = Url::parse(url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| ConfigError {
            name: "ASSISTANT_URL",
            // A URL may carry credentials: name the problem, not the value.
            value: "(hidden)".into(),
            reason: "expected an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1".into(),
        })?;
    let model = get("ASSISTANT_MODEL").ok_or_else(|| ConfigError {
        name: "ASSISTANT_MODEL",
        value: String::new(),
        reason: "required with ASSISTANT_URL: the model to ask for (any name for llama-server)"
            .into(),
    })?;
    Ok(Some(OpenAiSettings {
        base_url,
        model: model.to_owned(),
        api_key: get("ASSISTANT_API_KEY").map(SecretString::from),
        system_prompt: get("ASSISTANT_SYSTEM_PROMPT").map(str::to_owned),
        context: ContextWindow {
            messages: parse(get, "ASSISTANT_CONTEXT_MESSAGES", 20, 0..=1_000)?,
            chars: parse(get, "ASSISTANT_CONTEXT_CHARS", 16_000, 0..=10_000_000)?,
        },
        timeout: Duration::from_secs(parse(get, "ASSISTANT_TIMEOUT_SECS", 60, 1..=3_600)?),
        max_reply_chars: parse(get, "ASSISTANT_MAX_REPLY_CHARS", 100_000, 1..=10_000_000)?,
    }))
}

/// A configured secret must have at least [`MIN_SECRET_BYTES`]; without one, only the
/// embedded SQLite mode may run, on a generated development secret.
fn jwt_secret(value: Option<&str>, database_url: &str) -> Result<JwtSecret, ConfigError> {
    let error = |value: &str, reason: String| ConfigError {
        name: "JWT_SECRET",
        value: value.to_owned(),
        reason,
    };
    match (value, database_url.strip_prefix("sqlite://")) {
        (Some(secret), _) if secret.len() >= MIN_SECRET_BYTES => Ok(JwtSecret::Configured(SecretString::from(secret))),
        (None, Some(path)) => Ok(JwtSecret::Development { beside: PathBuf::from(path) }),
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

/// The process's soft limit on open files (`ulimit -n`), from `/proc/self/limits`;
/// 1,024 (the usual default) where it cannot be read.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1_024)
}

/// Connections that fit in the open-file limit, leaving room for the database pool, the
/// listener, log and database files, and the connections the accept loop holds while
/// the cap is reached; at most 25,000 (actix's own default).
fn default_max_connections(open_files: usize, pool_size: usize) -> usize {
    let reserved = 64 + pool_size + open_files / 8;
    open_files.saturating_sub(reserved).clamp(1, 25_000)
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

fn parse<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let expected = format!("a whole number from {} to {}", range.start(), range.end());
    parse_with(
        get,
        name,
        Some(default),
        |v| v.parse().ok().filter(|n| range.contains(n)),
        &expected,
    )
}

fn parse_with<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: Option<T>,
    read: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, ConfigError> {
    let error = |value: &str| ConfigError {
        name,
        value: value.to_owned(),
        reason: format!("expected {expected}"),
    };
    match get(name) {
        Some(value) => read(value).ok_or_else(|| error(value)),
        None => default.ok_or_else(|| error("")),
    }
}

/// Comma-separated origins; each must be `scheme://host[:port]` with nothing after.
fn origins(value: &str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains('/') && origin != "*" => Ok(origin.to_owned()),
                _ => Err(ConfigError {
                    name: "CORS_ORIGINS",
                    value: value.to_owned(),
                    reason: format!("{origin:?} is not an origin: write scheme://host[:port], without a path or trailing slash"),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn with_nothing_set_the_service_runs_on_the_embedded_database_on_port_8000() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(
            (config.host.to_string(), config.port),
            ("127.0.0.1".to_owned(), 8000)
        );
        assert_eq!(
            config.cors_origins,
            ["http://localhost:5173", "http://127.0.0.1:5173"]
        );
        assert_eq!(config.token_lifetime, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(config.bcrypt_cost, 12);
        assert!(
            matches!(&config.jwt_secret, JwtSecret::Development { beside } if beside == &PathBuf::from("data/memlayer.db")),
            "{:?}",
            config.jwt_secret
        );
    }

    #[test]
    fn each_worker_gets_its_share_of_the_pool_and_room_for_bcrypt_as_blocking_threads() {
        let secret = "x".repeat(32);
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("JWT_SECRET", &secret),
            ("DATABASE_POOL_SIZE", "10"),
            ("WORKERS", "4"),
            ("BCRYPT_CONCURRENCY", "2"),
        ]))
        .unwrap();
        assert_eq!(config.blocking_threads, 3 + 2);
        let config = Config::from_vars(&vars(&[("BLOCKING_THREADS", "7")])).unwrap();
        assert_eq!(config.blocking_threads, 7);
    }

    #[test]
    fn sqlite_defaults_to_two_readers_and_room_for_writers_waiting_for_their_commit() {
        let config =
            Config::from_vars(&vars(&[("WORKERS", "2"), ("BCRYPT_CONCURRENCY", "1")])).unwrap();
        assert_eq!(config.pool_size, 2);
        assert_eq!(config.blocking_threads, 1 + 16 + 1);
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("JWT_SECRET", &"x".repeat(32)),
            ("WORKERS", "2"),
            ("BCRYPT_CONCURRENCY", "1"),
        ]))
        .unwrap();
        assert_eq!((config.pool_size, config.blocking_threads), (10, 5 + 1));
        let config =
            Config::from_vars(&vars(&[("DATABASE_POOL_SIZE", "6"), ("WORKERS", "3")])).unwrap();
        assert_eq!(config.pool_size, 6);
        assert_eq!(config.blocking_threads, 2 + 16 + config.bcrypt_concurrency);
        for bad in ["0", "1001", "two"] {
            let error = Config::from_vars(&vars(&[("DATABASE_POOL_SIZE", bad)])).unwrap_err();
            assert_eq!(error.name, "DATABASE_POOL_SIZE", "{bad}");
        }
    }

    #[test]
    fn connections_are_capped_below_the_open_file_limit() {
        assert_eq!(default_max_connections(1_024, 10), 822);
        assert_eq!(default_max_connections(256, 4), 156);
        assert_eq!(default_max_connections(1 << 20, 10), 25_000);
        assert_eq!(default_max_connections(16, 10), 1);
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
            matches!(&config.jwt_secret, JwtSecret::Configured(s) if s.expose_secret() == secret),
            "{:?}",
            config.jwt_secret
        );
        assert!(!format!("{config:?}").contains(&secret));
    }

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
    fn a_short_secret_is_refused_in_zero_setup_mode_too() {
        let error = Config::from_vars(&vars(&[("JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(error.name, "JWT_SECRET");
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let config = Config::from_vars(&vars(&[(
            "CORS_ORIGINS",
            " https://app.example.com , http://localhost:3000 ",
        )]))
        .unwrap();
        assert_eq!(
            config.cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
    }

    #[test]
    fn an_origin_with_a_path_or_wildcard_is_refused() {
        for bad in ["http://localhost:5173/", "*", "localhost:5173"] {
            let error = Config::from_vars(&vars(&[("CORS_ORIGINS", bad)])).unwrap_err();
            assert_eq!(error.name, "CORS_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn clients_share_connections_unless_a_proxy_stands_in_front() {
        assert_eq!(
            Config::from_vars(&vars(&[]))
                .unwrap()
                .max_connections_per_client,
            64
        );
        let behind_a_proxy = Config::from_vars(&vars(&[("TRUST_FORWARDED_FOR", "true")])).unwrap();
        assert_eq!(behind_a_proxy.max_connections_per_client, 0);
    }

    #[test]
    fn without_assistant_settings_there_is_no_model() {
        assert!(Config::from_vars(&vars(&[])).unwrap().assistant.is_none());
    }

    #[test]
    fn an_assistant_needs_a_url_and_a_model_and_takes_the_rest_from_defaults() {
        let config = Config::from_vars(&vars(&[
            ("ASSISTANT_URL", "http://127.0.0.1:8080/v1"),
            ("ASSISTANT_MODEL", "smollm2"),
        ]))
        .unwrap();
        let assistant = config.assistant.unwrap();
        assert_eq!(assistant.base_url.as_str(), "http://127.0.0.1:8080/v1");
        assert_eq!(assistant.model, "smollm2");
        assert_eq!(
            assistant.context,
            ContextWindow {
                messages: 20,
                chars: 16_000
            }
        );
        assert_eq!(assistant.timeout, Duration::from_secs(60));
        assert!(assistant.api_key.is_none() && assistant.system_prompt.is_none());
    }

    #[test]
    fn incomplete_or_bad_assistant_settings_name_the_variable() {
        for (settings, name) in [
            (&[("ASSISTANT_MODEL", "m")][..], "ASSISTANT_URL"),
            (
                &[("ASSISTANT_URL", "http://127.0.0.1:8080/v1")][..],
                "ASSISTANT_MODEL",
            ),
            (
                &[
                    ("ASSISTANT_URL", "127.0.0.1:8080"),
                    ("ASSISTANT_MODEL", "m"),
                ][..],
                "ASSISTANT_URL",
            ),
            (
                &[("ASSISTANT_URL", "ftp://h/v1"), ("ASSISTANT_MODEL", "m")][..],
                "ASSISTANT_URL",
            ),
            (
                &[
                    ("ASSISTANT_URL", "http://h/v1"),
                    ("ASSISTANT_MODEL", "m"),
                    ("ASSISTANT_TIMEOUT_SECS", "0"),
                ][..],
                "ASSISTANT_TIMEOUT_SECS",
            ),
            (
                &[
                    ("ASSISTANT_URL", "http://h/v1"),
                    ("ASSISTANT_MODEL", "m"),
                    ("ASSISTANT_CONTEXT_MESSAGES", "x"),
                ][..],
                "ASSISTANT_CONTEXT_MESSAGES",
            ),
        ] {
            let error = Config::from_vars(&vars(settings)).unwrap_err();
            assert_eq!(error.name, name, "{settings:?}");
        }
    }

    #[test]
    fn the_assistant_api_key_is_never_shown() {
        let config = Config::from_vars(&vars(&[
            ("ASSISTANT_URL", "https://api.example.com/v1"),
            ("ASSISTANT_MODEL", "m"),
            ("ASSISTANT_API_KEY", "sk-very-secret"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
        assert!(!format!("{:?}", config.assistant).contains("sk-very-secret"));
    }

    #[test]
    fn a_log_filter_naming_something_that_is_no_target_is_refused() {
        for bad in [
            "[[[",
            "info,[[[",
            "memlayer_http[{id}]=debug",
            "a b",
            "info,::x=debug",
        ] {
            let error = Config::from_vars(&vars(&[("RUST_LOG", bad)])).unwrap_err();
            assert_eq!(error.name, "RUST_LOG", "{bad}");
            assert!(error.to_string().contains("expected a level"), "{error}");
        }
        for good in [
            "info",
            "WARN",
            "memlayer_http",
            "memlayer_http=debug,warn",
            "actix_http::h1::dispatcher=off,info",
            "memlayer::connection=trace",
        ] {
            let config = Config::from_vars(&vars(&[("RUST_LOG", good)]));
            assert!(config.is_ok(), "{good}: {:?}", config.err());
        }
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

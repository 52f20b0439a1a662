//! The HTTP server: where it listens, who may call it from a browser, how many
//! connections and threads it keeps, the deadlines and sizes it enforces on clients,
//! and how it stops.

use std::net::IpAddr;
use std::time::Duration;

use memlayer_adapters::Backend;

use super::ConfigError;
use super::database::DatabaseConfig;
use super::parse::{parse, parse_with};
use super::password_hashing::PasswordHashingConfig;

/// The SPA's Vite dev server, by name and by address.
pub const DEFAULT_CORS_ORIGINS: &str = "http://localhost:5173,http://127.0.0.1:5173";

/// On SQLite, blocking threads per worker beyond its share of the readers: writers
/// waiting for their turn or their group's commit, which hold a thread but no
/// connection. The more wait, the more one commit (one `fsync`) carries.
const SQLITE_WRITERS_PER_WORKER: usize = 16;

/// The HTTP server's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Origins allowed by CORS, exactly as browsers send them.
    pub cors_origins: Vec<String>,
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
    /// Whether to identify clients by the last `X-Forwarded-For` address (behind one proxy).
    pub trust_forwarded_for: bool,
    /// Most connections one client (an IPv4 address, an IPv6 /64) may hold open at
    /// once; 0: no such cap (behind a proxy every connection comes from the proxy).
    pub max_connections_per_client: usize,
    /// HTTP worker threads.
    pub workers: usize,
    /// Threads per worker that run use cases: the worker's share of the pool, plus room
    /// for the bcrypt work (`bcrypt_concurrency`), which holds a thread but no
    /// connection. More would only queue for a connection, and every wait and wake-up on
    /// the pool is a context switch.
    pub blocking_threads: usize,
    /// How long in-flight requests, and replies generating, may take to finish after
    /// SIGTERM.
    pub shutdown_timeout: Duration,
    /// Most replies generating at once on this instance (each holds a connection to the
    /// model).
    pub max_generations: usize,
    /// Most replies generating at once for one user, across every instance.
    pub user_max_generations: usize,
    /// Most tokens one user may spend a UTC day, across every instance (unless an admin
    /// set the user's own); `None`: no limit.
    pub user_tokens_per_day: Option<u64>,
    /// How long an instance may go without a heartbeat before the replies it generates
    /// are marked failed by another.
    pub reply_silence: Duration,
}

impl HttpConfig {
    /// Reads `HOST`, `PORT`, `CORS_ORIGINS`, the connection, deadline, size, worker and
    /// shutdown settings, and `TRUST_FORWARDED_FOR` through `get`; the thread and
    /// connection defaults derive from the `database` pool, the `password_hashing`, and
    /// whether replies stream `with_assistant` (a model).
    pub fn from_env<'a>(
        get: impl Fn(&str) -> Option<&'a str> + Copy,
        database: &DatabaseConfig,
        password_hashing: &PasswordHashingConfig,
        with_assistant: bool,
    ) -> Result<Self, ConfigError> {
        let pool_size = usize::try_from(database.pool_size).unwrap_or(usize::MAX);
        let workers = parse(get, "WORKERS", default_workers(), 1..=1_024)?;
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
            cors_origins: origins(get("CORS_ORIGINS").unwrap_or(DEFAULT_CORS_ORIGINS))?,
            host: parse_with(
                get,
                "HOST",
                "127.0.0.1".parse().ok(),
                |v| v.parse().ok(),
                "an IP address such as 127.0.0.1 or 0.0.0.0",
            )?,
            port: parse(get, "PORT", 8000, 0..=65_535)?,
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
                default_max_connections(open_files_limit(), pool_size, with_assistant),
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
                default_blocking_threads(
                    pool_size,
                    workers,
                    database.backend,
                    password_hashing.bcrypt_concurrency,
                ),
                1..=1_024,
            )?,
            shutdown_timeout: Duration::from_secs(parse(
                get,
                "SHUTDOWN_TIMEOUT_SECS",
                30,
                0..=3_600,
            )?),
            max_generations: parse(get, "MAX_GENERATIONS", 256, 1..=100_000)?,
            user_max_generations: parse(
                get,
                "USER_MAX_GENERATIONS",
                memlayer_app::USER_MAX_GENERATIONS,
                1..=100_000,
            )?,
            reply_silence: Duration::from_secs(parse(get, "REPLY_SILENCE_SECS", 30, 3..=3_600)?),
            user_tokens_per_day: parse_with(
                get,
                "USER_TOKENS_PER_DAY",
                Some(None),
                |value| match value {
                    "" | "unlimited" => Some(None),
                    number => number
                        .parse()
                        .ok()
                        .filter(|limit| *limit <= memlayer_app::domain::TOKEN_LIMIT_MAX)
                        .map(Some),
                },
                "a whole number from 0 to 1000000000000, or unlimited",
            )?,
            trust_forwarded_for,
            max_connections_per_client: parse(
                get,
                "MAX_CONNECTIONS_PER_CLIENT",
                default_max_connections_per_client(trust_forwarded_for),
                0..=1_000_000,
            )?,
        })
    }
}

/// One worker per CPU (2 where the count cannot be read).
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Each worker's share of the pool, plus room for the bcrypt work; on SQLite, room for
/// the writers waiting for their commit ([`SQLITE_WRITERS_PER_WORKER`]).
fn default_blocking_threads(
    pool_size: usize,
    workers: usize,
    backend: Backend,
    bcrypt_concurrency: usize,
) -> usize {
    let writers = match backend {
        Backend::Sqlite => SQLITE_WRITERS_PER_WORKER,
        Backend::Postgres => 0,
    };
    pool_size
        .div_ceil(workers)
        .saturating_add(writers)
        .saturating_add(bcrypt_concurrency)
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
///
/// Each connection takes one descriptor, or two `with_assistant`: a reply streaming
/// from the model holds the client's connection and one to the model, so the room left
/// is halved. (The model's connections kept idle for reuse are no more than were ever
/// streaming at once, so two per connection covers them too.)
fn default_max_connections(open_files: usize, pool_size: usize, with_assistant: bool) -> usize {
    let reserved = 64 + pool_size + open_files / 8;
    let descriptors_per_connection = if with_assistant { 2 } else { 1 };
    (open_files.saturating_sub(reserved) / descriptors_per_connection).clamp(1, 25_000)
}

/// 64 per client; none behind a proxy, where every connection comes from the proxy.
fn default_max_connections_per_client(trust_forwarded_for: bool) -> usize {
    if trust_forwarded_for { 0 } else { 64 }
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
    use super::super::{Config, vars};
    use super::*;

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
        assert_eq!(config.http.blocking_threads, 3 + 2);
        let config = Config::from_vars(&vars(&[("BLOCKING_THREADS", "7")])).unwrap();
        assert_eq!(config.http.blocking_threads, 7);
    }

    #[test]
    fn sqlite_defaults_to_two_readers_and_room_for_writers_waiting_for_their_commit() {
        let config =
            Config::from_vars(&vars(&[("WORKERS", "2"), ("BCRYPT_CONCURRENCY", "1")])).unwrap();
        assert_eq!(config.database.pool_size, 2);
        assert_eq!(config.http.blocking_threads, 1 + 16 + 1);
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("JWT_SECRET", &"x".repeat(32)),
            ("WORKERS", "2"),
            ("BCRYPT_CONCURRENCY", "1"),
        ]))
        .unwrap();
        assert_eq!(
            (config.database.pool_size, config.http.blocking_threads),
            (10, 5 + 1)
        );
        let config =
            Config::from_vars(&vars(&[("DATABASE_POOL_SIZE", "6"), ("WORKERS", "3")])).unwrap();
        assert_eq!(config.database.pool_size, 6);
        assert_eq!(
            config.http.blocking_threads,
            2 + 16 + config.password_hashing.bcrypt_concurrency
        );
        for bad in ["0", "1001", "two"] {
            let error = Config::from_vars(&vars(&[("DATABASE_POOL_SIZE", bad)])).unwrap_err();
            assert_eq!(error.name, "DATABASE_POOL_SIZE", "{bad}");
        }
    }

    #[test]
    fn connections_are_capped_below_the_open_file_limit() {
        assert_eq!(default_max_connections(1_024, 10, false), 822);
        assert_eq!(default_max_connections(256, 4, false), 156);
        assert_eq!(default_max_connections(1 << 20, 10, false), 25_000);
        assert_eq!(default_max_connections(16, 10, false), 1);
    }

    #[test]
    fn with_an_assistant_each_connection_counts_for_two_descriptors() {
        assert_eq!(default_max_connections(1_024, 10, true), 411);
        assert_eq!(default_max_connections(256, 4, true), 78);
        assert_eq!(default_max_connections(1 << 20, 10, true), 25_000);
        assert_eq!(default_max_connections(16, 10, true), 1);

        let assistant = [
            ("ASSISTANT_URL", "http://127.0.0.1:8080/v1"),
            ("ASSISTANT_MODEL", "m"),
        ];
        let without = Config::from_vars(&vars(&[])).unwrap();
        let with = Config::from_vars(&vars(&assistant)).unwrap();
        let pool_size = usize::try_from(with.database.pool_size).unwrap();
        assert_eq!(
            (without.http.max_connections, with.http.max_connections),
            (
                default_max_connections(open_files_limit(), pool_size, false),
                default_max_connections(open_files_limit(), pool_size, true)
            )
        );
        let set = Config::from_vars(&vars(&[
            assistant[0],
            assistant[1],
            ("MAX_CONNECTIONS", "900"),
        ]))
        .unwrap();
        assert_eq!(set.http.max_connections, 900);
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let config = Config::from_vars(&vars(&[(
            "CORS_ORIGINS",
            " https://app.example.com , http://localhost:3000 ",
        )]))
        .unwrap();
        assert_eq!(
            config.http.cors_origins,
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
                .http
                .max_connections_per_client,
            64
        );
        let behind_a_proxy = Config::from_vars(&vars(&[("TRUST_FORWARDED_FOR", "true")])).unwrap();
        assert_eq!(behind_a_proxy.http.max_connections_per_client, 0);
    }
}

//! The database's life cycle: opening the pool, waiting for the server (telling a
//! permanent refusal from a server not up yet), migrating.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use memlayer_ports::{BoxError, RepositoryError};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use super::Database;
use super::connection::{self, LazyPool, Manager, Pool};
use super::redact::redact;
use super::writer::{self, Writer};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Key of the PostgreSQL advisory lock held while migrating ("memlayer" in ASCII), so
/// instances starting together on an empty database migrate one after the other.
const MIGRATION_LOCK: i64 = 0x6d65_6d6c_6179_6572;

/// Which database engine is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A PostgreSQL server (`postgres://…`): production.
    Postgres,
    /// An embedded SQLite file (`sqlite://path`): zero-setup development.
    Sqlite,
}

impl Backend {
    /// The engine a `DATABASE_URL` names (`postgres://`, `postgresql://`, `sqlite://`);
    /// anything else is [`DatabaseError::UnsupportedUrl`], shown by its scheme only: the
    /// rest may hold a password in a form redaction does not know (libpq's
    /// `host=… password=…` keywords).
    pub fn of_url(url: &str) -> Result<Self, DatabaseError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite://") {
            Ok(Self::Sqlite)
        } else {
            Err(DatabaseError::UnsupportedUrl(
                url.split_once("://").map_or_else(
                    || "a value that is not a URL".to_owned(),
                    |(scheme, _)| format!("{scheme}://…"),
                ),
            ))
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: u32,
    /// How long a request waits for a free connection before the database counts as
    /// unavailable (503). Short, so an outage fails fast instead of hanging.
    pub checkout_timeout: Duration,
}

/// Why the database could not be opened or prepared.
#[derive(Debug, Error)]
pub enum DatabaseError {
    /// The URL names no supported backend.
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite://, got {0}")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder of the SQLite database {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The SQLite file could not be created or made private (0600).
    #[error("cannot create or protect the SQLite database file {path}: {source}")]
    PrepareFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The pool could not be built.
    #[error("cannot set up the connection pool: {0}")]
    Pool(#[source] r2d2::Error),
    /// The database refused us for a reason that waiting will not fix: wrong
    /// credentials, a missing database or role, an unreadable or unwritable file.
    #[error("cannot use the database at {url}: {cause}")]
    Refused {
        /// The URL, without its password.
        url: String,
        /// What the database or the file system said.
        cause: String,
    },
    /// No connection could be made in time.
    #[error("the database at {url} was not reachable within {waited:?}: {cause}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// How long we tried.
        waited: Duration,
        /// What the last attempt said.
        cause: String,
    },
    /// Applying the migrations failed.
    #[error("applying database migrations failed: {0}")]
    Migrate(#[source] BoxError),
}

impl Database {
    /// A pool for the database at `url` (`postgres://…`, `postgresql://…` or
    /// `sqlite://path`). No connection is made yet: the pool is built and filled on
    /// first use, so call [`Database::wait_until_reachable`] first, which tries one
    /// connection on the calling thread and fails without any pool thread connecting.
    pub fn open(url: &str, options: &PoolOptions) -> Result<Self, DatabaseError> {
        let (pool, connect_to) = match Backend::of_url(url)? {
            Backend::Postgres => {
                let pool = Pool::Postgres(LazyPool::new(
                    Manager::<PgConnection>::new(url.to_owned(), |_| Ok(())),
                    options,
                ));
                (pool, url.to_owned())
            }
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                create_private_files(Path::new(path))?;
                let pool = Pool::Sqlite {
                    readers: LazyPool::new(
                        Manager::<SqliteConnection>::new(path.to_owned(), configure_sqlite),
                        options,
                    ),
                    writer: Arc::new(Writer::new(
                        writer::opener(path.to_owned(), configure_sqlite),
                        options.checkout_timeout,
                    )),
                };
                (pool, path.to_owned())
            }
        };
        Ok(Self {
            pool,
            redacted_url: redact(url),
            connect_to: SecretString::from(connect_to),
        })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// Tries to connect until it works or `timeout` has passed.
    ///
    /// A permanent refusal (wrong credentials, no such database or role, a file that
    /// cannot be opened) fails at once with its cause. A transient one (the server is
    /// not up yet) is retried, and logged once per 10 s window, not on every retry.
    pub fn wait_until_reachable(&self, timeout: Duration) -> Result<(), DatabaseError> {
        const LOG_EVERY: Duration = Duration::from_secs(10);
        let started = Instant::now();
        let mut last_logged: Option<Instant> = None;
        let mut attempts = 0_u32;
        loop {
            attempts += 1;
            let cause = match self.try_connect() {
                Ok(()) => return Ok(()),
                Err(Attempt::Refused(cause)) => {
                    return Err(DatabaseError::Refused {
                        url: self.redacted_url.clone(),
                        cause,
                    });
                }
                Err(Attempt::NotYet(cause)) => cause,
            };
            if started.elapsed() >= timeout {
                return Err(DatabaseError::Unreachable {
                    url: self.redacted_url.clone(),
                    waited: started.elapsed(),
                    cause,
                });
            }
            if last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    attempts,
                    cause,
                    "database not reachable yet; retrying for up to {timeout:?}"
                );
                last_logged = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// One connection attempt, outside the pool (whose failures are logged per attempt).
    fn try_connect(&self) -> Result<(), Attempt> {
        match &self.pool {
            Pool::Postgres(_) => {
                let mut conn = <PgConnection as diesel::Connection>::establish(
                    self.connect_to.expose_secret(),
                )
                .map_err(|error| Attempt::classify_postgres(&error.to_string()))?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, "SELECT 1")
                    .map_err(|error| Attempt::classify_postgres(&error.to_string()))
            }
            // A local file: nothing to wait for. Whatever fails will fail again.
            Pool::Sqlite { .. } => {
                let mut conn = <SqliteConnection as diesel::Connection>::establish(
                    self.connect_to.expose_secret(),
                )
                .map_err(|error| Attempt::Refused(error.to_string()))?;
                configure_sqlite(&mut conn)
                    .and_then(|()| conn.batch_execute("SELECT 1 FROM sqlite_master LIMIT 1"))
                    .map_err(|error| Attempt::Refused(error.to_string()))
            }
        }
    }

    /// Applies the pending embedded migrations; returns the versions applied.
    ///
    /// On PostgreSQL an advisory lock serialises instances migrating at once; on SQLite
    /// an exclusive transaction does.
    pub fn migrate(&self) -> Result<Vec<String>, DatabaseError> {
        let applied = match &self.pool {
            Pool::Postgres(pool) => connection::run(pool, |conn| {
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let applied = run_migrations(conn, POSTGRES_MIGRATIONS);
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                Ok(applied)
            }),
            Pool::Sqlite { readers, .. } => connection::run(readers, |conn| {
                // Persistent, so set once here rather than on every new connection
                // (switching needs an exclusive lock, which racing connections contend for).
                conn.batch_execute("PRAGMA journal_mode = WAL")?;
                conn.exclusive_transaction(|conn| Ok(run_migrations(conn, SQLITE_MIGRATIONS)))
            }),
        };
        applied
            .map_err(|error| DatabaseError::Migrate(RepositoryError::from(error).into()))?
            .map_err(DatabaseError::Migrate)
    }
}

/// How a start-up connection attempt failed.
enum Attempt {
    /// Waiting will not help.
    Refused(String),
    /// The server may come up: try again.
    NotYet(String),
}

impl Attempt {
    /// PostgreSQL's answers that no amount of waiting fixes (libpq's messages).
    fn classify_postgres(message: &str) -> Self {
        const PERMANENT: [&str; 8] = [
            "password authentication failed",
            "does not exist",
            "no pg_hba.conf entry",
            "no password supplied",
            "invalid connection option",
            "invalid URI",
            "permission denied",
            "invalid port number",
        ];
        let message = message.trim().to_owned();
        if PERMANENT
            .iter()
            .any(|permanent| message.contains(permanent))
        {
            Self::Refused(message)
        } else {
            Self::NotYet(message)
        }
    }
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<Vec<String>, BoxError>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    let versions = conn.run_pending_migrations(migrations)?;
    Ok(versions.iter().map(ToString::to_string).collect())
}

/// Every SQLite connection: wait for a busy writer instead of failing with "database is
/// locked", sync each commit to disk so nothing acknowledged is lost, and enforce foreign
/// keys (off by default). Write-ahead logging, so readers never block the writer, is
/// switched on once by [`Database::migrate`].
fn configure_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

/// Creates the SQLite file's folder (0700, like `jwt-secret`'s 0600: nobody else on
/// the machine may read the conversations) and the file itself (0600) if missing; an
/// existing file and its `-wal` and `-shm` companions are made 0600 too. SQLite creates
/// the `-wal` and `-shm` files with the database file's permissions.
fn create_private_files(path: &Path) -> Result<(), DatabaseError> {
    if path.as_os_str() == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|source| DatabaseError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let private = |file: &Path| {
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            } else {
                Ok(())
            }
        };
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut companions = [path.as_os_str().to_owned(), path.as_os_str().to_owned()];
                companions[0].push("-wal");
                companions[1].push("-shm");
                private(path)
                    .and_then(|()| private(Path::new(&companions[0])))
                    .and_then(|()| private(Path::new(&companions[1])))
            }
            Err(error) => Err(error),
        }
        .map_err(|source| DatabaseError::PrepareFile {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_scheme_is_refused() {
        let options = PoolOptions {
            max_size: 1,
            checkout_timeout: Duration::from_secs(1),
        };
        let error = Database::open("mysql://x", &options).err().unwrap();
        assert!(matches!(error, DatabaseError::UnsupportedUrl(_)), "{error}");
        let keywords = "host=db user=u password=hunter2 dbname=x";
        let error = Database::open(keywords, &options).err().unwrap();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

//! The connection pool: r2d2 with a manager that can retire a connection a statement
//! found dead, so the service recovers from a database restart by itself, without
//! paying a test query on every checkout.
//!
//! No pool thread may be inside libpq when the process exits: r2d2 fills a pool on
//! threads of its own, which it never joins, and a thread still connecting (in libpq's
//! GSSAPI, krb5's locks) while `exit` tears those locks down crashes the process
//! (SIGSEGV, or krb5's `k5_mutex_lock` assertion) instead of letting it exit 1 on a
//! start-up error. Hence:
//!
//! - the pool is built, and starts filling, on first use, not when the database is
//!   opened: start-up first connects once on its own thread
//!   (`Database::wait_until_reachable`), so a database that refuses us (a role that
//!   does not exist) never has a pool thread connecting to it;
//! - dropping the pool (start-up failing later on, when migrating) refuses new
//!   connection attempts and waits for those under way ([`Attempts`]).

use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use diesel::r2d2::R2D2Connection;
use diesel::{ConnectionError, QueryResult};
use diesel::{pg::PgConnection, sqlite::SqliteConnection};
use r2d2::ManageConnection;

use super::PoolOptions;
use super::errors::{DbError, is_busy, is_connection_lost};

/// The pool of the configured backend.
#[derive(Clone)]
pub(crate) enum Pool {
    /// PostgreSQL.
    Postgres(LazyPool<PgConnection>),
    /// SQLite: connections that read, and the one that writes.
    Sqlite {
        /// Reads (and migrations, at start-up).
        readers: LazyPool<SqliteConnection>,
        /// Every write, in turn, committed in groups.
        writer: std::sync::Arc<super::writer::Writer>,
    },
}

/// A pooled connection and whether a statement found it dead.
pub(crate) struct Conn<C> {
    inner: C,
    lost: bool,
}

/// Opens connections of type `C` and prepares each with `setup`.
pub(crate) struct Manager<C> {
    url: String,
    setup: fn(&mut C) -> QueryResult<()>,
    /// Shared by the clones: the pool's attempts under way.
    attempts: Arc<Attempts>,
    connection: PhantomData<fn() -> C>,
}

impl<C> Clone for Manager<C> {
    fn clone(&self) -> Self {
        Self {
            url: self.url.clone(),
            setup: self.setup,
            attempts: self.attempts.clone(),
            connection: PhantomData,
        }
    }
}

impl<C> Manager<C> {
    pub(crate) fn new(url: String, setup: fn(&mut C) -> QueryResult<()>) -> Self {
        Self {
            url,
            setup,
            attempts: Arc::default(),
            connection: PhantomData,
        }
    }
}

/// The connection attempts of a pool's threads under way, so that dropping the pool can
/// wait for them to leave the database's client library.
#[derive(Debug, Default)]
struct Attempts {
    /// How many are under way, and whether new ones are refused.
    state: Mutex<(usize, bool)>,
    /// Signalled when one ends.
    ended: Condvar,
}

impl Attempts {
    /// Longest wait for the attempts under way when the pool is dropped. Against a
    /// server that answers they take milliseconds; one that never answers (no
    /// `connect_timeout`) must not hold the process's exit for good.
    const CLOSE_WITHIN: Duration = Duration::from_secs(5);

    /// Counts an attempt under way until the returned guard is dropped; `None` once
    /// closed.
    fn begin(self: &Arc<Self>) -> Option<AttemptUnderWay> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (under_way, closed) = &mut *state;
        if *closed {
            return None;
        }
        *under_way += 1;
        Some(AttemptUnderWay(self.clone()))
    }

    /// Refuses new attempts and waits (up to [`Attempts::CLOSE_WITHIN`]) for those under
    /// way to end.
    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1 = true;
        let (state, _) = self
            .ended
            .wait_timeout_while(state, Self::CLOSE_WITHIN, |(under_way, _)| *under_way > 0)
            .unwrap_or_else(PoisonError::into_inner);
        if state.0 > 0 {
            tracing::warn!(
                under_way = state.0,
                "database connection attempts still under way after {:?}",
                Self::CLOSE_WITHIN
            );
        }
    }
}

/// One connection attempt under way ([`Attempts::begin`]).
struct AttemptUnderWay(Arc<Attempts>);

impl Drop for AttemptUnderWay {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        self.0.ended.notify_all();
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The pool is being dropped: no new connection.
    #[error("the connection pool is closed")]
    Closed,
}

impl<C: R2D2Connection + Send + 'static> ManageConnection for Manager<C> {
    type Connection = Conn<C>;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn<C>, ConnectError> {
        let _under_way = self.attempts.begin().ok_or(ConnectError::Closed)?;
        let mut inner = C::establish(&self.url)?;
        (self.setup)(&mut inner)?;
        Ok(Conn { inner, lost: false })
    }

    fn is_valid(&self, conn: &mut Conn<C>) -> Result<(), ConnectError> {
        Ok(conn.inner.ping()?)
    }

    fn has_broken(&self, conn: &mut Conn<C>) -> bool {
        conn.lost || conn.inner.is_broken()
    }
}

/// Logs the pool's background connection failures (an outage) through `tracing`: the
/// first, then at most one line per [`LogErrors::WINDOW`] with how many failed since, so
/// an outage does not write a line for every retry of every connection.
#[derive(Debug, Default)]
struct LogErrors {
    /// When a line was last written, and the failures not reported since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogErrors {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
}

impl r2d2::HandleError<ConnectError> for LogErrors {
    fn handle_error(&self, error: ConnectError) {
        if matches!(error, ConnectError::Closed) {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (last, unreported) = &mut *state;
        *unreported += 1;
        if last.is_none_or(|at| at.elapsed() >= Self::WINDOW) {
            let error = one_line(&error.to_string());
            tracing::warn!(
                error,
                failures = *unreported,
                "cannot open a database connection"
            );
            *last = Some(std::time::Instant::now());
            *unreported = 0;
        }
    }
}

/// `message` on one line: libpq writes its messages over several (`connection to
/// server … failed: …\n\tIs the server running …?`), which would split one log entry.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An r2d2 pool built, and so filled, on first use (see the module's documentation).
/// Cheap to clone: the clones share one pool.
pub(crate) struct LazyPool<C: R2D2Connection + Send + 'static> {
    shared: Arc<LazyShared<C>>,
}

struct LazyShared<C: R2D2Connection + Send + 'static> {
    pool: OnceLock<r2d2::Pool<Manager<C>>>,
    manager: Manager<C>,
    options: PoolOptions,
}

impl<C: R2D2Connection + Send + 'static> Clone for LazyPool<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C: R2D2Connection + Send + 'static> LazyPool<C> {
    /// A pool of connections from `manager`, not built yet.
    pub(crate) fn new(manager: Manager<C>, options: &PoolOptions) -> Self {
        Self {
            shared: Arc::new(LazyShared {
                pool: OnceLock::new(),
                manager,
                options: options.clone(),
            }),
        }
    }

    /// The pool, built (and its filling started) on the first call.
    fn get(&self) -> &r2d2::Pool<Manager<C>> {
        self.shared.get()
    }
}

impl<C: R2D2Connection + Send + 'static> LazyShared<C> {
    /// The pool, built (and its filling started) on the first call.
    fn get(&self) -> &r2d2::Pool<Manager<C>> {
        let Self {
            pool,
            manager,
            options,
        } = self;
        pool.get_or_init(|| {
            r2d2::Pool::builder()
                .max_size(options.max_size)
                .connection_timeout(options.checkout_timeout)
                // A dead connection is retired when a statement fails on it
                // (`Conn::lost`), not found by a test query on every checkout (a round
                // trip per request).
                .test_on_check_out(false)
                .error_handler(Box::new(LogErrors::default()))
                .build_unchecked(manager.clone())
        })
    }
}

impl<C: R2D2Connection + Send + 'static> Drop for LazyShared<C> {
    /// Lets go of the pool, then waits for its threads' connection attempts under way:
    /// the process may be about to exit.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            drop(pool);
            self.manager.attempts.close();
        }
    }
}

/// Runs `body` on a connection from `pool`. A connection the statement found dead is
/// retired from the pool, and the failure reported as the database being unavailable.
pub(crate) fn run<C, T>(
    pool: &LazyPool<C>,
    body: impl FnOnce(&mut C) -> QueryResult<T>,
) -> Result<T, DbError>
where
    C: R2D2Connection + Send + 'static,
{
    let pool = pool.get();
    let asked = std::time::Instant::now();
    let checkout = pool.get();
    metrics::histogram!("memlayer_db_pool_checkout_seconds").record(asked.elapsed().as_secs_f64());
    let state = pool.state();
    metrics::gauge!("memlayer_db_pool_connections", "state" => "idle").set(state.idle_connections);
    metrics::gauge!("memlayer_db_pool_connections", "state" => "in_use")
        .set(state.connections.saturating_sub(state.idle_connections));
    let mut conn = checkout.map_err(|error| {
        metrics::counter!("memlayer_db_pool_checkout_timeouts_total").increment(1);
        DbError::Unavailable(error.into())
    })?;
    body(&mut conn.inner).map_err(|error| {
        if is_connection_lost(&error) {
            conn.lost = true;
            DbError::Unavailable(error.into())
        } else if is_busy(&error) {
            DbError::Unavailable(error.into())
        } else {
            DbError::Query(error)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_message_over_several_lines_is_logged_on_one() {
        let libpq = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n";

        assert_eq!(
            one_line(libpq),
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused Is the server running on that host and accepting TCP/IP connections?"
        );
    }
}

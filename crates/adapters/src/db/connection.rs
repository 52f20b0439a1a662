//! The connection pool: r2d2 with a manager that can retire a connection a statement
//! found dead, so the service recovers from a database restart by itself, without
//! paying a test query on every checkout.

use std::marker::PhantomData;

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
    Postgres(r2d2::Pool<Manager<PgConnection>>),
    /// SQLite: connections that read, and the one that writes.
    Sqlite {
        /// Reads (and migrations, at start-up).
        readers: r2d2::Pool<Manager<SqliteConnection>>,
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
    connection: PhantomData<fn() -> C>,
}

impl<C> Manager<C> {
    pub(crate) fn new(url: String, setup: fn(&mut C) -> QueryResult<()>) -> Self {
        Self {
            url,
            setup,
            connection: PhantomData,
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl<C: R2D2Connection + Send + 'static> ManageConnection for Manager<C> {
    type Connection = Conn<C>;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn<C>, ConnectError> {
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

pub(crate) fn build_pool<C: R2D2Connection + Send + 'static>(
    manager: Manager<C>,
    options: &PoolOptions,
) -> r2d2::Pool<Manager<C>> {
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .connection_timeout(options.checkout_timeout)
        // A dead connection is retired when a statement fails on it (`Conn::lost`),
        // not found by a test query on every checkout (a round trip per request).
        .test_on_check_out(false)
        .error_handler(Box::new(LogErrors::default()))
        .build_unchecked(manager)
}

/// Runs `body` on a connection from `pool`. A connection the statement found dead is
/// retired from the pool, and the failure reported as the database being unavailable.
pub(crate) fn run<C, T>(
    pool: &r2d2::Pool<Manager<C>>,
    body: impl FnOnce(&mut C) -> QueryResult<T>,
) -> Result<T, DbError>
where
    C: R2D2Connection + Send + 'static,
{
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

//! SQLite's one writer, shared by every thread, with group commit.
//!
//! SQLite lets one connection write at a time. Writers on several connections do not
//! queue for it: each retries after sleeping (1, 2, 5, 10 … 100 ms, SQLite's busy
//! handler), so under load most of a write's time is spent asleep while the file is
//! free, and each commit pays its own `fsync`. Here every write statement runs on one
//! connection instead, taken in turn (threads wait on a condition variable and are woken
//! the moment it is free). A turn runs its statement in a savepoint of a transaction that
//! stays open while more writers wait for their turn; the last one in line commits for
//! all of them: one `fsync` for the group. Each writer returns only once the commit that
//! holds its statement is on disk, so nothing is acknowledged before it is durable, and
//! a failed statement is rolled back to its savepoint without touching the others'.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult};
use memlayer_ports::BoxError;

use super::errors::{DbError, is_busy, is_connection_lost};

/// Most statements one commit holds: a group is committed at the latest when it has
/// this many, even if more writers wait, so none waits on an endless group.
const MOST_IN_GROUP: usize = 64;

/// Opens (and prepares) the writer's connection.
pub(crate) type Open = Box<dyn Fn() -> Result<SqliteConnection, BoxError> + Send + Sync>;

/// The writer connection and the queue of threads taking turns on it.
pub(crate) struct Writer {
    state: Mutex<State>,
    /// Signalled when the connection is free for the next turn.
    turn: Condvar,
    /// Signalled when a group's commit has ended (committed or failed).
    ended: Condvar,
    open: Open,
    /// How long a writer waits for its turn before the database counts as unavailable.
    timeout: Duration,
}

#[derive(Default)]
struct State {
    /// The connection, while no turn holds it; `None` also before the first write and
    /// after a failure (a fresh one is opened).
    conn: Option<SqliteConnection>,
    /// Whether a thread holds the connection (a turn, or a commit).
    busy: bool,
    /// Threads waiting for their turn.
    waiting: usize,
    /// Whether the connection has a transaction open (`BEGIN IMMEDIATE` done).
    in_transaction: bool,
    /// Statements of the open transaction that succeeded and wait for its commit.
    pending: usize,
    /// The number of the open (or next) group; it goes up when a group ends.
    group: u64,
    /// Groups whose commit failed, with how many of their writers have yet to learn it
    /// and why.
    failed: Vec<(u64, usize, String)>,
}

impl Writer {
    pub(crate) fn new(open: Open, timeout: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
            ended: Condvar::new(),
            open,
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `body` (one unit of work that writes) on the writer connection, and returns
    /// its result once it is committed.
    pub(crate) fn write<T>(
        &self,
        body: impl FnOnce(&mut SqliteConnection) -> QueryResult<T>,
    ) -> Result<T, DbError> {
        let asked = Instant::now();
        let mut turn = self.take_turn(asked + self.timeout)?;
        metrics::histogram!("memlayer_db_pool_checkout_seconds")
            .record(asked.elapsed().as_secs_f64());
        if turn.conn.is_none() {
            turn.conn = Some((self.open)().map_err(DbError::Unavailable)?);
        }
        let Some(conn) = turn.conn.as_mut() else {
            return Err(DbError::Unavailable("no SQLite writer connection".into()));
        };
        if !turn.in_transaction {
            AnsiTransactionManager::begin_transaction_sql(&mut *conn, "BEGIN IMMEDIATE")
                .map_err(classify)?;
            turn.in_transaction = true;
        }
        // A savepoint: a failed statement is undone alone.
        let result = conn.transaction(body);
        if !matches!(
            AnsiTransactionManager::transaction_manager_status_mut(&mut *conn).transaction_depth(),
            Ok(Some(depth)) if depth.get() == 1
        ) {
            // The savepoint could not be rolled back or released: the whole group is
            // lost (dropping the connection rolls it back), this statement with it.
            return Err(turn.abandon("the write transaction broke"));
        }
        match result {
            Ok(value) => {
                let group = turn.group;
                match turn.finish(true) {
                    Finished::Committed => Ok(value),
                    Finished::Failed(cause) => Err(DbError::Unavailable(cause.into())),
                    Finished::Queued => self.await_commit(group).map(|()| value),
                }
            }
            Err(error) => {
                turn.finish(false);
                Err(classify(error))
            }
        }
    }

    /// Waits until the connection is free, or `deadline`.
    fn take_turn(&self, deadline: Instant) -> Result<Turn<'_>, DbError> {
        let mut state = self.lock();
        state.waiting += 1;
        while state.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.waiting -= 1;
                metrics::counter!("memlayer_db_pool_checkout_timeouts_total").increment(1);
                return Err(DbError::Unavailable(
                    format!("no turn on the SQLite writer within {:?}", self.timeout).into(),
                ));
            }
            state = self
                .turn
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.waiting -= 1;
        state.busy = true;
        Ok(Turn {
            writer: self,
            conn: state.conn.take(),
            in_transaction: state.in_transaction,
            group: state.group,
            done: false,
        })
    }

    /// Waits for the end of `group`'s commit; its outcome for one of its writers.
    fn await_commit(&self, group: u64) -> Result<(), DbError> {
        let mut state = self.lock();
        while state.group == group {
            state = self
                .ended
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let Some(index) = state.failed.iter().position(|(g, _, _)| *g == group) else {
            return Ok(());
        };
        let (_, left, cause) = &mut state.failed[index];
        *left -= 1;
        let cause = cause.clone();
        if *left == 0 {
            state.failed.swap_remove(index);
        }
        Err(DbError::Unavailable(cause.into()))
    }
}

/// A thread's hold on the writer connection. Dropped without [`Turn::finish`] (an
/// error, a panic), it gives up the connection and fails its group.
struct Turn<'a> {
    writer: &'a Writer,
    conn: Option<SqliteConnection>,
    in_transaction: bool,
    group: u64,
    done: bool,
}

/// How a turn ended for its own statement.
enum Finished {
    /// This turn committed the group, its statement with it.
    Committed,
    /// This turn's commit failed.
    Failed(String),
    /// Others are waiting: the last of them commits.
    Queued,
}

impl Turn<'_> {
    /// Ends the turn (`ok`: its statement succeeded and waits for a commit). With no
    /// one else waiting, or a full group, commits the group first.
    fn finish(mut self, ok: bool) -> Finished {
        let writer = self.writer;
        let mut state = writer.lock();
        state.in_transaction = self.in_transaction;
        state.pending += usize::from(ok);
        if state.waiting > 0 && state.pending < MOST_IN_GROUP {
            state.conn = self.conn.take();
            state.busy = false;
            self.done = true;
            drop(state);
            writer.turn.notify_one();
            return Finished::Queued;
        }
        // The last in line: commit (or, with nothing to commit, end) the transaction,
        // still holding the connection.
        let pending = state.pending;
        drop(state);
        let outcome = match self.conn.as_mut() {
            Some(conn) if self.in_transaction && pending > 0 => {
                AnsiTransactionManager::commit_transaction(conn).map_err(|error| error.to_string())
            }
            Some(conn) if self.in_transaction => AnsiTransactionManager::rollback_transaction(conn)
                .map_err(|error| error.to_string()),
            _ => Ok(()),
        };
        let mut state = writer.lock();
        state.conn = match outcome {
            Ok(()) => self.conn.take(),
            // Closing the connection rolls back whatever is left of the transaction.
            Err(_) => None,
        };
        if let Err(cause) = &outcome
            && pending > usize::from(ok)
        {
            let group = state.group;
            state
                .failed
                .push((group, pending - usize::from(ok), cause.clone()));
        }
        state.in_transaction = false;
        state.pending = 0;
        state.group += 1;
        state.busy = false;
        self.done = true;
        drop(state);
        writer.ended.notify_all();
        writer.turn.notify_one();
        match outcome {
            Ok(()) => Finished::Committed,
            Err(cause) => Finished::Failed(cause),
        }
    }

    /// Gives the connection up, failing its open group; the error for this turn.
    fn abandon(mut self, why: &str) -> DbError {
        self.release_broken(why);
        DbError::Unavailable(why.to_owned().into())
    }

    fn release_broken(&mut self, why: &str) {
        if self.done {
            return;
        }
        self.done = true;
        // Dropping the connection closes it, which rolls its transaction back.
        drop(self.conn.take());
        let writer = self.writer;
        let mut state = writer.lock();
        if state.pending > 0 {
            let (group, pending) = (state.group, state.pending);
            state.failed.push((group, pending, why.to_owned()));
        }
        state.conn = None;
        state.in_transaction = false;
        state.pending = 0;
        state.group += 1;
        state.busy = false;
        drop(state);
        writer.ended.notify_all();
        writer.turn.notify_one();
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.release_broken("the SQLite writer failed");
    }
}

/// A failed statement, as [`super::connection::run`] classifies it.
fn classify(error: diesel::result::Error) -> DbError {
    if is_connection_lost(&error) || is_busy(&error) {
        DbError::Unavailable(error.into())
    } else {
        DbError::Query(error)
    }
}

/// Opens the writer's connection at `path`, prepared by `setup`.
pub(crate) fn opener(path: String, setup: fn(&mut SqliteConnection) -> QueryResult<()>) -> Open {
    Box::new(move || {
        let mut conn = SqliteConnection::establish(&path)?;
        setup(&mut conn)?;
        // Nothing to do but to be sure the file answers.
        conn.batch_execute("SELECT 1")?;
        Ok(conn)
    })
}

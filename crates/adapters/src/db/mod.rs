//! The repositories on Diesel, over PostgreSQL or SQLite.
//!
//! One schema ([`schema`]) and one set of queries serve both backends: a query is
//! written once inside [`with_connection!`] (`query`), which compiles it for each
//! backend and runs it on the configured one. What differs is small: connection set-up
//! and migrations (`lifecycle`, `connection`), and how ids and timestamps are stored
//! (`sql_types`). `errors` tells an outage from a failed statement; `redact` keeps the
//! password out of messages.

mod attempts;
mod chats;
mod connection;
mod errors;
mod folders;
mod lifecycle;
mod messages;
mod query;
mod redact;
mod replies;
mod rows;
mod schema;
mod search;
mod sql_types;
mod users;
mod writer;

use diesel::connection::SimpleConnection;
use memlayer_domain::Cursor;
use memlayer_ports::{HealthCheck, RepositoryError};
use secrecy::SecretString;
use sql_types::{DbTimestamp, DbUuid};

use connection::Pool;
pub(crate) use errors::DbError;
pub use lifecycle::{Backend, DatabaseError, PoolOptions};
pub(crate) use query::{with_connection, with_writer};

/// The user, chat, message and folder repositories, the search index and the rate
/// limit's attempt budgets, over a pool of connections to one database.
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// The URL without its password, for messages.
    redacted_url: String,
    /// What start-up connection attempts connect to (for PostgreSQL, the URL with its
    /// password; for SQLite, the path).
    connect_to: SecretString,
}

impl Database {
    fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl HealthCheck for Database {
    fn check(&self) -> Result<(), RepositoryError> {
        Ok(with_connection!(self, |conn| conn.batch_execute("SELECT 1"))?)
    }
}

/// A cursor as the two column values it compares with.
fn position(cursor: Cursor) -> (DbTimestamp, DbUuid) {
    (DbTimestamp(cursor.created_at), DbUuid(cursor.id))
}

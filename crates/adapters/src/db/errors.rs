//! Classifying what a failed database call means: the database is unavailable (503,
//! worth retrying) or the statement failed (500).

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use memlayer_ports::{BoxError, RepositoryError};

/// A failed database call, before it is mapped to what the caller needs.
#[derive(Debug)]
pub(crate) enum DbError {
    /// No connection could be had, or it was lost: the database is unavailable.
    Unavailable(BoxError),
    /// The statement failed (a constraint, a bug).
    Query(DieselError),
}

impl From<DbError> for RepositoryError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => Self::Unavailable(cause),
            DbError::Query(cause) => Self::Internal(cause.into()),
        }
    }
}

impl DbError {
    /// Whether the statement broke a unique index (an email taken; a second reply
    /// generating in one chat).
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Whether a failed statement means the connection is gone (server restarted, network).
pub(crate) fn is_connection_lost(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager
    )
}

/// Whether SQLite gave up waiting for another writer.
pub(crate) fn is_busy(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
        if info.message().contains("database is locked") || info.message().contains("database is busy"))
}

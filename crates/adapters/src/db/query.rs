//! One query code path for two databases.

/// Runs `|conn| body` on a pooled connection of the configured backend. The body is
/// compiled for each backend, so the same Diesel query serves both; it must return a
/// `QueryResult`.
macro_rules! with_connection {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::connection::Pool::Postgres(pool) => {
                $crate::db::connection::run(pool, |$conn| $body)
            }
            $crate::db::connection::Pool::Sqlite { readers, .. } => {
                $crate::db::connection::run(readers, |$conn| $body)
            }
        }
    };
}
pub(crate) use with_connection;

/// Like [`with_connection!`], for a body that writes: on SQLite it runs on the one
/// writer connection, in turn with the other writers, and returns once committed
/// (`db::writer`); on PostgreSQL it is the same as a read.
macro_rules! with_writer {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::connection::Pool::Postgres(pool) => {
                $crate::db::connection::run(pool, |$conn| $body)
            }
            $crate::db::connection::Pool::Sqlite { writer, .. } => writer.write(|$conn| $body),
        }
    };
}
pub(crate) use with_writer;

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
            $crate::db::connection::Pool::Sqlite(pool) => {
                $crate::db::connection::run(pool, |$conn| $body)
            }
        }
    };
}
pub(crate) use with_connection;

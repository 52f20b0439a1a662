//! Fresh databases for tests: a new PostgreSQL database per test (dropped afterwards) on
//! the server at `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! or a new SQLite file in a temporary folder.
//!
//! When no PostgreSQL server is reachable, [`TestDatabase::postgres`] gives `None` and
//! says once, on the terminal, that the PostgreSQL runs were skipped, unless
//! `MEMLAYER_REQUIRE_POSTGRES=1` or `CI=true` is set: then it fails the test.
#![expect(
    clippy::expect_used,
    reason = "a test helper that cannot do its job fails the test"
)]

mod cluster;

pub use cluster::PgCluster;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs each listed test once per backend, as `postgres::<name>` (skipped with a notice
/// when no server is reachable, failing under CI) and `sqlite::<name>`. Each test is a
/// function of the fixture that `$setup` (a function of a fresh [`TestDatabase`]) makes:
///
/// ```text
/// memlayer_testkit::on_both_backends!(crate::Store::new; a_user_reads_back_as_stored);
/// fn a_user_reads_back_as_stored(store: &Store) { … }
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($setup:expr; $($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(db) = $crate::TestDatabase::postgres() {
                        super::$name(&($setup)(db));
                    }
                }
            )*
        }
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&($setup)($crate::TestDatabase::sqlite()));
                }
            )*
        }
    };
}

/// A database that exists for one test.
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { dir: PathBuf },
}

impl TestDatabase {
    /// A new, empty PostgreSQL database, or `None` when no server is reachable and
    /// PostgreSQL is not required.
    pub fn postgres() -> Option<Self> {
        let admin_url =
            std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = match PgConnection::establish(&with_connect_timeout(&admin_url)) {
            Ok(conn) => conn,
            Err(error) if postgres_required() => {
                panic!(
                    "PostgreSQL is required (CI=true or MEMLAYER_REQUIRE_POSTGRES=1) but {admin_url} is not reachable: {error}"
                )
            }
            Err(error) => {
                announce_skip(&admin_url, &error.to_string());
                return None;
            }
        };
        let name = format!("memlayer_test_{}", uuid::Uuid::now_v7().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let url = replace_database(&admin_url, &name);
        Some(Self {
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// A new, empty SQLite database file in its own temporary folder.
    pub fn sqlite() -> Self {
        let dir =
            std::env::temp_dir().join(format!("memlayer-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary folder");
        let url = format!("sqlite://{}", dir.join("memlayer.db").display());
        Self {
            url,
            cleanup: Cleanup::Sqlite { dir },
        }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs raw SQL on this database, as an operator would (foreign keys enforced on
    /// SQLite too), for tests that change data behind the service's back.
    pub fn execute(&self, sql: &str) {
        match &self.cleanup {
            Cleanup::Postgres { .. } => PgConnection::establish(&self.url)
                .expect("connect to the test database")
                .batch_execute(sql),
            Cleanup::Sqlite { .. } => {
                let path = self.url.trim_start_matches("sqlite://");
                SqliteConnection::establish(path)
                    .expect("open the test database")
                    .batch_execute(&format!("PRAGMA foreign_keys = ON; {sql}"))
            }
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// The number `sql` (a `SELECT COUNT(*) …`) counts, read behind the service's back.
    pub fn count(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = sql.replacen("COUNT(*)", "COUNT(*) AS n", 1);
        let rows: Vec<Count> = match &self.cleanup {
            Cleanup::Postgres { .. } => diesel::sql_query(&sql).load(
                &mut PgConnection::establish(&self.url).expect("connect to the test database"),
            ),
            Cleanup::Sqlite { .. } => diesel::sql_query(&sql).load(
                &mut SqliteConnection::establish(self.url.trim_start_matches("sqlite://"))
                    .expect("open the test database"),
            ),
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.first().map_or(0, |row| row.n)
    }

    /// The folder of a SQLite database (where its files live), if it is one.
    pub fn sqlite_dir(&self) -> Option<&PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite { dir } => Some(dir),
            Cleanup::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
            Cleanup::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Whether a missing PostgreSQL server must fail the tests instead of skipping them.
pub fn postgres_required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    set("CI") || set("MEMLAYER_REQUIRE_POSTGRES")
}

/// Says that some tests did not run, as a `SKIPPED: …` line that reaches the terminal:
/// written to the standard error itself, past the test harness's capture (which would
/// hide an `eprintln!` of a test that passes). A test that skips still counts as
/// passed, so this line is what tells a reader.
pub fn skipped(notice: &str) {
    let _ = writeln!(std::io::stderr(), "\nSKIPPED: {notice}\n");
}

fn announce_skip(url: &str, error: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        skipped(&format!(
            "the PostgreSQL runs of these tests, since no server is reachable at {url} ({}).\n\
             Only the SQLite runs ran. Start PostgreSQL or set TEST_POSTGRES_URL; CI=true makes this a failure.",
            error.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    });
}

fn with_connect_timeout(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout=3")
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let host = rest.split_once('/').map_or(rest, |(host, _database)| host);
    let base = if scheme.is_empty() {
        host.to_owned()
    } else {
        format!("{scheme}://{host}")
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_of_a_url_is_replaced() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}

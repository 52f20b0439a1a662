//! The rate limit's budgets (GCRA), one row per client, one statement per attempt.

use chrono::{DateTime, Utc};
use diesel::dsl::case_when;
use diesel::prelude::*;
use memlayer_ports::{AttemptBudget, AttemptRate, RepositoryError, Spent};

use super::schema::attempt_budgets;
use super::{Database, with_connection, with_writer};

/// `time` in microseconds since the Unix epoch, as the table keeps it.
fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn span_micros(span: chrono::TimeDelta) -> i64 {
    span.num_microseconds().unwrap_or(i64::MAX)
}

impl AttemptBudget for Database {
    fn spend(
        &self,
        client: &str,
        now: DateTime<Utc>,
        rate: AttemptRate,
    ) -> Result<Spent, RepositoryError> {
        let (interval, burst) = (span_micros(rate.interval), span_micros(rate.burst));
        use diesel::query_dsl::methods::FilterDsl as _;
        let now = micros(now);
        // GCRA in one upsert: a new client starts at `now + interval`; a known one moves
        // its theoretical arrival time on by one interval from `max(tat, now)`, only
        // while that stays within `burst` of now (`tat + interval - now <= burst`, which
        // always holds when `tat <= now`). No row back: refused, nothing spent. The row
        // lock of the upsert makes concurrent attempts, from any instance, take turns.
        let admitted: Option<i64> = with_writer!(self, |conn| {
            diesel::insert_into(attempt_budgets::table)
                .values((
                    attempt_budgets::client.eq(client),
                    attempt_budgets::tat.eq(now + interval),
                ))
                .on_conflict(attempt_budgets::client)
                .do_update()
                .set(
                    attempt_budgets::tat.eq(case_when(
                        attempt_budgets::tat.gt(now),
                        attempt_budgets::tat + interval,
                    )
                    .otherwise(now + interval)),
                )
                .filter(attempt_budgets::tat.le(now + (burst - interval)))
                .returning(attempt_budgets::tat)
                .get_result(conn)
                .optional()
        })?;
        if admitted.is_some() {
            return Ok(Spent::Admitted);
        }
        // Refused: the next attempt fits once `tat + interval - burst` is reached. A
        // cheap read by key, paid only by refusals.
        let tat: Option<i64> = with_connection!(self, |conn| attempt_budgets::table
            .find(client)
            .select(attempt_budgets::tat)
            .first(conn)
            .optional())?;
        let until = tat.map_or(now, |tat| tat + interval - burst);
        Ok(Spent::Refused {
            until: DateTime::from_timestamp_micros(until).unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }

    fn refund(&self, client: &str, rate: AttemptRate) -> Result<(), RepositoryError> {
        let interval = span_micros(rate.interval);
        with_writer!(self, |conn| diesel::update(
            attempt_budgets::table.filter(attempt_budgets::client.eq(client))
        )
        .set(attempt_budgets::tat.eq(attempt_budgets::tat - interval))
        .execute(conn))?;
        Ok(())
    }

    fn forget_refilled(&self, now: DateTime<Utc>) -> Result<usize, RepositoryError> {
        let now = micros(now);
        Ok(with_writer!(self, |conn| diesel::delete(
            attempt_budgets::table.filter(attempt_budgets::tat.lt(now))
        )
        .execute(conn))?)
    }
}

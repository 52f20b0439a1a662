-- The SQLite twin of migrations/postgres: the rate limit's budgets (see there). One
-- process uses an SQLite file, but the budgets then survive restarts too.
CREATE TABLE attempt_budgets (
    client TEXT PRIMARY KEY NOT NULL,
    tat BIGINT NOT NULL
);

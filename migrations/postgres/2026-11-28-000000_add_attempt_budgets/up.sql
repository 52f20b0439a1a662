-- The credential routes' rate limit, shared by every instance on this database: one
-- row per client (an IPv4 address, or an IPv6 /64), holding its GCRA "theoretical
-- arrival time" (tat) in microseconds since the Unix epoch. A budget is used up while
-- tat is more than a minute's burst ahead of now; a row whose tat is past is a full
-- budget, and is deleted now and then.
--
-- UNLOGGED: no WAL, so an attempt costs no WAL flush; a crash (or a failover) empties
-- the table, which only gives each client a full budget again. Nothing a client was
-- told is lost. No index but the key: a second one would cost every upsert.
CREATE UNLOGGED TABLE attempt_budgets (
    client text PRIMARY KEY,
    tat bigint NOT NULL
);

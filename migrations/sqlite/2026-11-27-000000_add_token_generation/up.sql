-- The SQLite twin of migrations/postgres: each account's token generation (see there).
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

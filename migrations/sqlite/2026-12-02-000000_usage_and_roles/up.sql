-- The SQLite twin of migrations/postgres/2026-12-02-000000_usage_and_roles.

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN token_limit BIGINT CHECK (token_limit >= 0);

ALTER TABLE messages ADD COLUMN prompt_tokens BIGINT;
ALTER TABLE messages ADD COLUMN completion_tokens BIGINT;
ALTER TABLE messages ADD COLUMN usage_estimated BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE token_usage (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     BIGINT NOT NULL,
    tokens  BIGINT NOT NULL CHECK (tokens >= 0),
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

CREATE INDEX users_admins ON users (id) WHERE role = 'admin' AND NOT disabled;

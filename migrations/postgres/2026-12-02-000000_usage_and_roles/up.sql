-- Operators in control: what replies cost, and who administers accounts.
--
-- - `messages.prompt_tokens`, `completion_tokens`: the tokens a reply took, as the model
--   server reported them, or estimated (`usage_estimated`) when it reported none.
-- - `token_usage`: the ledger, the tokens each user spent each UTC day (days since
--   1970-01-01). Separate from the messages: deleting them gives no tokens back. A
--   reply's tokens are added in the statement's transaction that ends it.
-- - `users.role`, `disabled`, `token_limit`: admins, disabled accounts, and an account's
--   own daily limit (else the operator's `USER_TOKENS_PER_DAY`).
--
-- Every column is added with a constant default (no table rewrite), so instances of the
-- previous version keep running while this one rolls out.

ALTER TABLE users
    ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN token_limit BIGINT CHECK (token_limit >= 0);

-- No CHECK on the messages' columns: checking one would scan the whole table under
-- its lock (the service never writes a negative count).
ALTER TABLE messages
    ADD COLUMN prompt_tokens BIGINT,
    ADD COLUMN completion_tokens BIGINT,
    ADD COLUMN usage_estimated BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE token_usage (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     BIGINT NOT NULL,
    tokens  BIGINT NOT NULL CHECK (tokens >= 0),
    PRIMARY KEY (user_id, day)
);

-- The admins (few): the "at least one enabled admin" check counts them.
CREATE INDEX users_admins ON users (id) WHERE role = 'admin' AND NOT disabled;

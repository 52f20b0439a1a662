-- The SQLite twin of migrations/postgres: same tables, columns, keys and indexes.
-- Ids are UUID text; timestamps are fixed-width RFC 3339 UTC text with microseconds
-- ('2026-11-26T09:30:15.123456Z'), so they sort as text in time order.

CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE chats (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX chats_user_id_created_at_idx ON chats (user_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id         TEXT NOT NULL PRIMARY KEY,
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX messages_chat_id_created_at_idx ON messages (chat_id, created_at, id);
CREATE INDEX messages_user_id_idx ON messages (user_id);

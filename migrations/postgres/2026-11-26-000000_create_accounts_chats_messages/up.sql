-- Accounts, chats and messages. Ids are made by the application (UUIDv7, time-ordered);
-- timestamps come from its clock, in UTC, at microsecond resolution.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    -- Stored trimmed and lower-cased by the application, so uniqueness is case-insensitive.
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE chats (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- "My chats, newest first".
CREATE INDEX chats_user_id_created_at_idx ON chats (user_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id         uuid        PRIMARY KEY,
    chat_id    uuid        NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content    text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- "The messages of a chat, in order": one index range scan, ties broken by id.
CREATE INDEX messages_chat_id_created_at_idx ON messages (chat_id, created_at, id);
-- Serves the cascade when a user is deleted.
CREATE INDEX messages_user_id_idx ON messages (user_id);

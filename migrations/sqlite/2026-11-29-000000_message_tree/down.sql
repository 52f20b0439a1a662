-- SQLite cannot drop a column that a foreign key uses: the messages table is rebuilt.
DROP INDEX messages_parent_id_idx;
DROP INDEX messages_first_idx;
ALTER TABLE chats DROP COLUMN active_message_id;
CREATE TABLE messages_flat (
    id         TEXT NOT NULL PRIMARY KEY,
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO messages_flat (id, chat_id, user_id, role, content, created_at)
    SELECT id, chat_id, user_id, role, content, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_flat RENAME TO messages;
CREATE INDEX messages_chat_id_created_at_idx ON messages (chat_id, created_at, id);
CREATE INDEX messages_user_id_idx ON messages (user_id);

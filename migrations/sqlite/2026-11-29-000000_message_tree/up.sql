-- The SQLite twin of migrations/postgres: the message tree (see there).

ALTER TABLE messages ADD COLUMN parent_id TEXT REFERENCES messages (id);
ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete'
    CHECK (status IN ('complete', 'generating', 'stopped', 'failed'));

ALTER TABLE chats ADD COLUMN active_message_id TEXT;

UPDATE messages
SET parent_id = ordered.previous
FROM (
    SELECT id, lag(id) OVER (PARTITION BY chat_id ORDER BY created_at, id) AS previous
    FROM messages
) AS ordered
WHERE messages.id = ordered.id AND ordered.previous IS NOT NULL;

UPDATE chats
SET active_message_id = (
    SELECT id FROM messages
    WHERE messages.chat_id = chats.id
    ORDER BY created_at DESC, id DESC
    LIMIT 1
);

CREATE INDEX messages_chat_id_parent_id_idx ON messages (chat_id, parent_id, created_at, id);
-- "The children of a message": siblings, and the foreign key on parent_id (deleting a
-- message looks its children up; without it, every deleted message scans the table).
CREATE INDEX messages_parent_id_idx ON messages (parent_id);

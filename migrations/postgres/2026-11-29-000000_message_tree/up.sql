-- Conversations as a tree: every message follows a parent (NULL for a chat's first
-- messages), and each chat has an active leaf, the end of the path its clients show.

ALTER TABLE messages
    ADD COLUMN parent_id uuid REFERENCES messages (id),
    ADD COLUMN status text NOT NULL DEFAULT 'complete'
        CHECK (status IN ('complete', 'generating', 'stopped', 'failed'));

-- No foreign key: the active leaf is kept right by the statements that change the tree
-- (a key would make every message deletion look the chats up).
ALTER TABLE chats ADD COLUMN active_message_id uuid;

-- Existing chats were lists: each message follows the one before it, and the last is
-- the active leaf.
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

-- A chat's first messages (parent NULL), which are siblings of each other: a small
-- partial index, as few messages are first ones.
CREATE INDEX messages_first_idx ON messages (chat_id, created_at, id) WHERE parent_id IS NULL;

-- "The children of a message": siblings, and the foreign key on parent_id (deleting a
-- message looks its children up; without it, every deleted message scans the table).
CREATE INDEX messages_parent_id_idx ON messages (parent_id);

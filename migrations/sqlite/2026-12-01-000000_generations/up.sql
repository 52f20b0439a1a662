-- The SQLite twin of migrations/postgres: replies stored from their start (see there).
-- One instance runs on a SQLite file, so `heartbeat_at` only tells the next start what
-- the last one left generating.

UPDATE messages SET status = 'failed' WHERE status = 'generating';

ALTER TABLE messages ADD COLUMN piece_ends TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN heartbeat_at TEXT;
ALTER TABLE messages ADD COLUMN stop_requested BOOLEAN NOT NULL DEFAULT FALSE;

CREATE UNIQUE INDEX messages_one_generating_per_chat ON messages (chat_id)
    WHERE status = 'generating';

-- A generating reply enters the full-text index when it ends, not on every batch.
DROP TRIGGER messages_search_insert;
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
WHEN new.status <> 'generating' BEGIN
    INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
        VALUES (new.id, new.chat_id, 0, new.created_at);
    INSERT INTO search_fts (rowid, body, owner)
        VALUES (last_insert_rowid(), new.content, replace(new.user_id, '-', ''));
END;

DROP TRIGGER messages_search_update;
CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages
WHEN old.status <> 'generating' BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.content, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    INSERT INTO search_fts (rowid, body, owner)
        SELECT doc, new.content, replace(new.user_id, '-', '')
        FROM search_docs WHERE item_id = new.id;
END;

CREATE TRIGGER messages_search_finish AFTER UPDATE OF status ON messages
WHEN old.status = 'generating' AND new.status <> 'generating' BEGIN
    INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
        VALUES (new.id, new.chat_id, 0, new.created_at);
    INSERT INTO search_fts (rowid, body, owner)
        VALUES (last_insert_rowid(), new.content, replace(new.user_id, '-', ''));
END;

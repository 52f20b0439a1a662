UPDATE messages SET status = 'failed' WHERE status = 'generating';
DROP TRIGGER messages_search_finish;
DROP TRIGGER messages_search_update;
CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.content, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    INSERT INTO search_fts (rowid, body, owner)
        SELECT doc, new.content, replace(new.user_id, '-', '')
        FROM search_docs WHERE item_id = new.id;
END;
DROP TRIGGER messages_search_insert;
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
        VALUES (new.id, new.chat_id, 0, new.created_at);
    INSERT INTO search_fts (rowid, body, owner)
        VALUES (last_insert_rowid(), new.content, replace(new.user_id, '-', ''));
END;
DROP INDEX messages_one_generating_per_chat;
ALTER TABLE messages DROP COLUMN stop_requested;
ALTER TABLE messages DROP COLUMN heartbeat_at;
ALTER TABLE messages DROP COLUMN piece_ends;

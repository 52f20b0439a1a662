DROP TRIGGER messages_search_tsv ON messages;
CREATE TRIGGER messages_search_tsv BEFORE INSERT OR UPDATE OF user_id, content ON messages
    FOR EACH ROW EXECUTE FUNCTION memlayer_index_message();
UPDATE messages SET status = 'failed' WHERE status = 'generating';
UPDATE messages SET content = content WHERE search_tsv IS NULL;
DROP INDEX messages_one_generating_per_chat;
ALTER TABLE messages
    DROP COLUMN piece_ends,
    DROP COLUMN heartbeat_at,
    DROP COLUMN stop_requested;

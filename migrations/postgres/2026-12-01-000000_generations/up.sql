-- Replies that outlive the connection: a reply is stored from its start (`generating`)
-- and written to in batches by the instance that generates it.
--
-- - `piece_ends`: where each piece the model sent ends in `content`, as character
--   offsets, each followed by a comma ("5,12,20,"). A resumed stream numbers its deltas
--   by it, so every instance sends the same pieces under the same ids.
-- - `heartbeat_at`: when the generating instance last said it is alive; a reply silent
--   for too long belongs to a dead instance and is marked `failed` by any other.
-- - `stop_requested`: set by the stop route on any instance; the generating instance
--   sees it within a fraction of a second and stops.
-- - At most one reply generates in a chat at a time (the unique partial index); the
--   index is also the (small) list of every reply generating, which the reaper reads.
-- - A generating reply's text is indexed for search once it ends, not on every batch:
--   the trigger skips `generating` rows and fires again when the status changes.

UPDATE messages SET status = 'failed' WHERE status = 'generating';

ALTER TABLE messages
    ADD COLUMN piece_ends TEXT NOT NULL DEFAULT '',
    ADD COLUMN heartbeat_at TIMESTAMPTZ,
    ADD COLUMN stop_requested BOOLEAN NOT NULL DEFAULT FALSE;

CREATE UNIQUE INDEX messages_one_generating_per_chat ON messages (chat_id)
    WHERE status = 'generating';

DROP TRIGGER messages_search_tsv ON messages;
CREATE TRIGGER messages_search_tsv BEFORE INSERT OR UPDATE OF user_id, content, status ON messages
    FOR EACH ROW WHEN (NEW.status <> 'generating') EXECUTE FUNCTION memlayer_index_message();

DROP INDEX messages_parent_id_idx;
DROP INDEX messages_first_idx;
ALTER TABLE chats DROP COLUMN active_message_id;
ALTER TABLE messages DROP COLUMN status, DROP COLUMN parent_id;

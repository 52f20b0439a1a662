DROP INDEX messages_parent_id_idx;
DROP INDEX messages_chat_id_parent_id_idx;
ALTER TABLE chats DROP COLUMN active_message_id;
ALTER TABLE messages DROP COLUMN status, DROP COLUMN parent_id;

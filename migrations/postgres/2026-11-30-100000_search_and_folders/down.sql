DROP INDEX chats_search_tsv_idx;
ALTER TABLE chats DROP COLUMN search_tsv;
DROP INDEX messages_search_tsv_idx;
ALTER TABLE messages DROP COLUMN search_tsv;
DROP FUNCTION memlayer_fold(text);
DROP INDEX chats_folder_id_idx;
DROP INDEX chats_user_id_organised_idx;
ALTER TABLE chats DROP COLUMN folder_id, DROP COLUMN archived, DROP COLUMN pinned;
DROP TABLE folders;

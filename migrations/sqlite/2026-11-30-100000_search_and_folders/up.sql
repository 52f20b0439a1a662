-- The SQLite twin of migrations/postgres (folders; pinned, archived, filed chats),
-- with search on FTS5 instead of a tsvector.

CREATE TABLE folders (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX folders_user_id_created_at_idx ON folders (user_id, created_at, id);

ALTER TABLE chats ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN archived BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN folder_id TEXT REFERENCES folders (id) ON DELETE SET NULL;

CREATE INDEX chats_user_id_organised_idx
    ON chats (user_id, archived, pinned DESC, created_at DESC, id DESC);
CREATE INDEX chats_folder_id_idx ON chats (folder_id) WHERE folder_id IS NOT NULL;

-- Search. FTS5 needs an integer key per document, and the implicit rowids of messages
-- and chats may change on VACUUM, so search_docs gives each message and chat a stable
-- one (`doc`), with what ordering and paging need (chat, time), so that a page is
-- chosen before any message text is read.
CREATE TABLE search_docs (
    doc        INTEGER PRIMARY KEY,
    item_id    TEXT NOT NULL UNIQUE,          -- the message's id, or the chat's (a title)
    chat_id    TEXT NOT NULL,
    is_title   BOOLEAN NOT NULL,
    created_at TEXT NOT NULL
);

-- Contentless (the text stays in messages and chats only). `body` is the text;
-- `owner` one token, the user id's hex: a search matches `owner` AND the words, so FTS5
-- intersects the user's doclist with the words' (skipping through the larger), and the
-- cost follows the user's own data. unicode61 with remove_diacritics 2 folds case and
-- accents (more of them than the PostgreSQL fold table).
CREATE VIRTUAL TABLE search_fts USING fts5 (
    body,
    owner,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Existing messages and titles.
INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
    SELECT id, chat_id, 0, created_at FROM messages;
INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
    SELECT id, id, 1, created_at FROM chats;
INSERT INTO search_fts (rowid, body, owner)
    SELECT d.doc, m.content, replace(m.user_id, '-', '')
    FROM search_docs d JOIN messages m ON m.id = d.item_id;
INSERT INTO search_fts (rowid, body, owner)
    SELECT d.doc, c.title, replace(c.user_id, '-', '')
    FROM search_docs d JOIN chats c ON c.id = d.item_id;

-- Kept in step by triggers, in the transaction of each change. A contentless table
-- forgets a document by being told its indexed values again ('delete').
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
        VALUES (new.id, new.chat_id, 0, new.created_at);
    INSERT INTO search_fts (rowid, body, owner)
        VALUES (last_insert_rowid(), new.content, replace(new.user_id, '-', ''));
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.content, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    INSERT INTO search_fts (rowid, body, owner)
        SELECT doc, new.content, replace(new.user_id, '-', '')
        FROM search_docs WHERE item_id = new.id;
END;

-- Also fires for the messages a deleted chat or account takes with it.
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.content, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    DELETE FROM search_docs WHERE item_id = old.id;
END;

CREATE TRIGGER chats_search_insert AFTER INSERT ON chats BEGIN
    INSERT INTO search_docs (item_id, chat_id, is_title, created_at)
        VALUES (new.id, new.id, 1, new.created_at);
    INSERT INTO search_fts (rowid, body, owner)
        VALUES (last_insert_rowid(), new.title, replace(new.user_id, '-', ''));
END;

CREATE TRIGGER chats_search_update AFTER UPDATE OF title ON chats BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.title, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    INSERT INTO search_fts (rowid, body, owner)
        SELECT doc, new.title, replace(new.user_id, '-', '')
        FROM search_docs WHERE item_id = new.id;
END;

CREATE TRIGGER chats_search_delete AFTER DELETE ON chats BEGIN
    INSERT INTO search_fts (search_fts, rowid, body, owner)
        SELECT 'delete', doc, old.title, replace(old.user_id, '-', '')
        FROM search_docs WHERE item_id = old.id;
    DELETE FROM search_docs WHERE item_id = old.id;
END;

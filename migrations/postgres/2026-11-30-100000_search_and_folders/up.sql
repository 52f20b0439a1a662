-- Finding and organising chats: folders; pinned, archived and filed chats; full-text
-- search over messages and chat titles.

CREATE TABLE folders (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- "My folders, oldest first".
CREATE INDEX folders_user_id_created_at_idx ON folders (user_id, created_at, id);

ALTER TABLE chats
    ADD COLUMN pinned    boolean NOT NULL DEFAULT false,
    ADD COLUMN archived  boolean NOT NULL DEFAULT false,
    -- Deleting a folder keeps its chats, in no folder. That the folder is the chat
    -- owner's is checked by the application before it files a chat.
    ADD COLUMN folder_id uuid REFERENCES folders (id) ON DELETE SET NULL;

-- "My chats, pinned first, then the rest, each newest first", archived or not.
CREATE INDEX chats_user_id_organised_idx
    ON chats (user_id, archived, pinned DESC, created_at DESC, id DESC);
-- One folder's chats, and the ON DELETE SET NULL of a folder.
CREATE INDEX chats_folder_id_idx ON chats (folder_id) WHERE folder_id IS NOT NULL;

-- Folding for search, without an extension (`unaccent` needs CREATE on the database,
-- and contrib installed): lower case, the accented letters of Latin-1 and Latin
-- Extended-A to plain ones, punctuation to spaces (so the parser sees plain words, as
-- the application cuts them). The two letter strings are
-- memlayer_domain::{FOLD_FROM, FOLD_TO} (a test checks they match). IMMUTABLE: it
-- depends only on its argument, so it may serve a generated column and an index.
CREATE FUNCTION memlayer_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(lower($1),
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďđĎĐèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİĵĴķĶĺļľŀłĹĻĽĿŁñńņňÑŃŅŇòóôõöøōŏőÒÓÔÕÖØŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŧŢŤŦùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~‘’“”«»–—…',
        'aaaaaaaaaaaaaaaaaaccccccccccddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz                                         ') $$;

-- Each message's words, each prefixed with its owner's tag (the last 12 hex digits of
-- the user id, random in a UUIDv7, and a dot): `0a1b2c3d4e5f.lisbon`, with the word's
-- positions (for ranking). A search asks for the caller's tag and each word as a prefix
-- ('0a1b2c3d4e5f.lisb':*), so the GIN index reads only the caller's own entries, even
-- for a prefix: the cost of a search follows the caller's data, not the table's. (A
-- rare shared tag costs only time: the query also filters on user_id.) IMMUTABLE: the
-- result depends only on the arguments.
CREATE FUNCTION memlayer_search_vector(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(string_agg(
            '''' || right(replace(owner::text, '-', ''), 12) || '.' || lexeme || ''':'
                || array_to_string(positions, ','),
            ' ')::tsvector, ''::tsvector)
        FROM unnest(to_tsvector('simple'::regconfig, memlayer_fold(body))) $$;

-- The query for `words` (plain words, from the application) in `owner`'s messages: every
-- word's lexemes, tagged, as prefixes, all required; NULL (matching nothing) when the
-- words hold no lexeme. User text is never read as tsquery syntax: the words go through
-- the same parser as the messages, and only their lexemes are quoted into the query.
CREATE FUNCTION memlayer_search_query(owner uuid, words text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT string_agg(
            '''' || right(replace(owner::text, '-', ''), 12) || '.' || lexeme || ''':*',
            ' & ')::tsquery
        FROM unnest(to_tsvector('simple'::regconfig, memlayer_fold(words))) $$;

-- Generated, so inserting, editing and deleting a message keep it right in the same
-- statement; existing messages get it here.
ALTER TABLE messages ADD COLUMN search_tsv tsvector
    GENERATED ALWAYS AS (memlayer_search_vector(user_id, content)) STORED;
CREATE INDEX messages_search_tsv_idx ON messages USING gin (search_tsv);

-- Chat titles: a user has few chats, so their own rows are read through
-- chats_user_id_organised_idx; the GIN index serves users with very many.
ALTER TABLE chats ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, memlayer_fold(title))
) STORED;
CREATE INDEX chats_search_tsv_idx ON chats USING gin (search_tsv);

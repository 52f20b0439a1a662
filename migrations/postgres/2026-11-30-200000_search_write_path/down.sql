DROP TRIGGER chats_search_tsv ON chats;
DROP TRIGGER messages_search_tsv ON messages;
DROP FUNCTION memlayer_index_chat();
DROP FUNCTION memlayer_index_message();

-- The previous definitions (2026-11-30-100000_search_and_folders).
CREATE OR REPLACE FUNCTION memlayer_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(lower($1),
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďđĎĐèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİĵĴķĶĺļľŀłĹĻĽĿŁñńņňÑŃŅŇòóôõöøōŏőÒÓÔÕÖØŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŧŢŤŦùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~‘’“”«»–—…',
        'aaaaaaaaaaaaaaaaaaccccccccccddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz                                         ') $$;

CREATE OR REPLACE FUNCTION memlayer_search_vector(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(string_agg(
            '''' || right(replace(owner::text, '-', ''), 12) || '.' || lexeme || ''':'
                || array_to_string(positions, ','),
            ' ')::tsvector, ''::tsvector)
        FROM unnest(to_tsvector('simple'::regconfig, memlayer_fold(body))) $$;

DROP FUNCTION memlayer_search_vector_bounded(uuid, text);

-- Generated columns again (a column cannot be given an expression back: rebuilt).
DROP INDEX chats_search_tsv_idx;
ALTER TABLE chats DROP COLUMN search_tsv;
ALTER TABLE chats ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, memlayer_fold(title))
) STORED;
CREATE INDEX chats_search_tsv_idx ON chats USING gin (search_tsv);
DROP INDEX messages_search_tsv_idx;
ALTER TABLE messages DROP COLUMN search_tsv;
ALTER TABLE messages ADD COLUMN search_tsv tsvector
    GENERATED ALWAYS AS (memlayer_search_vector(user_id, content)) STORED;
CREATE INDEX messages_search_tsv_idx ON messages USING gin (search_tsv);

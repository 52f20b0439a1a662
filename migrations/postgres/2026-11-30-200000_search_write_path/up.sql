-- The search index's write path, made cheap; what is stored and what a search finds are
-- unchanged (same folding, same tagged vectors).
--
-- Measured with pgbench, one INSERT of a message per transaction: a stored generated
-- column re-prepares its expression at the start of every statement, and a SQL function
-- that cannot be inlined (memlayer_search_vector's aggregate) is parsed and planned again
-- for every statement that calls it: about three quarters of a post's database time went
-- there. Now:
-- - memlayer_fold takes a fast path for ASCII text (a regular expression, linear in the
--   text, instead of `translate` with the whole 220-letter table, linear in text times
--   table; `lower` in the C collation there, as a Turkish collation would lower `I` to
--   `ı`, which the table folds back to `i`) and is not STRICT, so that it stays
--   inlinable with a CASE in its body (a NULL still folds to NULL);
-- - memlayer_search_vector is one expression (the owner's tag put before each lexeme of
--   the vector's text form: a folded lexeme holds no quote or space), so it is inlined
--   too; a text with a very long word takes the slower, bounded way, which also mends a
--   failure: such a message could not be stored (its tagged lexeme was too long);
-- - the `search_tsv` columns are kept by PL/pgSQL triggers instead of generated
--   expressions: a trigger's expression is planned once per connection, not per
--   statement. They fire on insert and on a change of the columns the vector reads, in
--   the same statement as before.

CREATE OR REPLACE FUNCTION memlayer_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length($1) = length($1)
        THEN regexp_replace(lower($1 COLLATE "C"), '[!-/:-@[-`{-~]', ' ', 'g')
        ELSE translate(lower($1),
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďđĎĐèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİĵĴķĶĺļľŀłĹĻĽĿŁñńņňÑŃŅŇòóôõöøōŏőÒÓÔÕÖØŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŧŢŤŦùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~‘’“”«»–—…',
        'aaaaaaaaaaaaaaaaaaccccccccccddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz                                         ') END $$;

-- The vector of a text with a word of over 508 characters: a lexeme takes at most 2,047
-- bytes, and the 13 of the tag could push a long one past that (the insert would fail).
-- The lexemes that would not fit are left out; the others are tagged as below. A
-- character folds to at most 4 bytes (lower case may make two characters of one, as
-- `İ` to `i̇`, 3 bytes), so a lexeme over 2,034 bytes needs a run of at least 509
-- characters without an ASCII blank, in a text of over 1,000 bytes: memlayer_search_vector
-- sends only such texts here (runs are counted conservatively: any other character,
-- punctuation too, counts as part of a word).
CREATE FUNCTION memlayer_search_vector_bounded(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(string_agg(
            '''' || right(replace(owner::text, '-', ''), 12) || '.' || lexeme || ''':'
                || array_to_string(positions, ','),
            ' ')::tsvector, ''::tsvector)
        FROM unnest(to_tsvector('simple'::regconfig, memlayer_fold(body)))
        WHERE octet_length(lexeme) <= 2034 $$;

CREATE OR REPLACE FUNCTION memlayer_search_vector(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length(body) > 1000
            AND body ~ '(?:[^ \t\n\r]{250}){2}[^ \t\n\r]{9}'
        THEN memlayer_search_vector_bounded(owner, body)
        ELSE regexp_replace(to_tsvector('simple'::regconfig, memlayer_fold(body))::text,
            '(^| )''', '\1''' || right(replace(owner::text, '-', ''), 12) || '.', 'g')::tsvector
        END $$;

ALTER TABLE messages ALTER COLUMN search_tsv DROP EXPRESSION;
ALTER TABLE chats ALTER COLUMN search_tsv DROP EXPRESSION;

CREATE FUNCTION memlayer_index_message() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        NEW.search_tsv := memlayer_search_vector(NEW.user_id, NEW.content);
        RETURN NEW;
    END $$;

CREATE FUNCTION memlayer_index_chat() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        NEW.search_tsv := to_tsvector('simple'::regconfig, memlayer_fold(NEW.title));
        RETURN NEW;
    END $$;

CREATE TRIGGER messages_search_tsv BEFORE INSERT OR UPDATE OF user_id, content ON messages
    FOR EACH ROW EXECUTE FUNCTION memlayer_index_message();
CREATE TRIGGER chats_search_tsv BEFORE INSERT OR UPDATE OF title ON chats
    FOR EACH ROW EXECUTE FUNCTION memlayer_index_chat();

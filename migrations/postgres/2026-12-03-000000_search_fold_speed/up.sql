-- The search vector of a message, computed in a quarter of the time; every folded text
-- and every vector is the same as before (a contract test rewrites rows indexed by the
-- first definition and compares).
--
-- Profiled (perf, the service posting at 8 connections over 1,000,000 messages):
-- `memlayer_fold`'s `translate` was most of a post's database time. `translate` looks
-- each character of the text up in its `from` string, one character after another, and
-- a letter that maps to itself (most of them) was looked for through all 215 entries.
-- The table now begins with the space, the ASCII letters by frequency and the commonest
-- punctuation, each mapped to itself or to a space as before, so a Latin letter is
-- found within a few entries; then the same accented letters, lower case first. Every
-- character maps exactly as it did (the entries were only reordered and identities
-- added); a unit test checks the table against the domain's. The price: a character in
-- no entry (most other scripts) is now compared with 252 entries instead of 215, so
-- such text folds up to a fifth slower (CJK, measured; Cyrillic and Greek 3-7 %).
--
-- `memlayer_search_vector` tags the lexemes with `replace` instead of a regular
-- expression: a lexeme of the vector's text form begins after a space and a quote (or
-- at the start, hence the space put before it), and holds neither.

CREATE OR REPLACE FUNCTION memlayer_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length($1) = length($1)
        THEN regexp_replace(lower($1 COLLATE "C"), '[!-/:-@[-`{-~]', ' ', 'g')
        ELSE translate(lower($1),
        ' etaoinsrhldcumfpgwybvkxjqz.,?!''-:;"()/’“”–—…‘«»0123456789àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżžÀÁÂÃÄÅĀĂĄÇĆĈĊČĎĐÈÉÊËĒĔĖĘĚĜĞĠĢĤĦÌÍÎÏĨĪĬĮİĴĶĹĻĽĿŁÑŃŅŇÒÓÔÕÖØŌŎŐŔŖŘŚŜŞŠŢŤŦÙÚÛÜŨŪŬŮŰŲŴÝŸŶŹŻŽ#$%&*+<=>@[\]^_`{|}~',
        ' etaoinsrhldcumfpgwybvkxjqz                     0123456789aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijklllllnnnnooooooooorrrsssstttuuuuuuuuuuwyyyzzzaaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijklllllnnnnooooooooorrrsssstttuuuuuuuuuuwyyyzzz                    ') END $$;

CREATE OR REPLACE FUNCTION memlayer_search_vector(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length(body) > 1000
            AND body ~ '(?:[^ \t\n\r]{250}){2}[^ \t\n\r]{9}'
        THEN memlayer_search_vector_bounded(owner, body)
        ELSE replace(' ' || to_tsvector('simple'::regconfig, memlayer_fold(body))::text,
            ' ''', ' ''' || right(replace(owner::text, '-', ''), 12) || '.')::tsvector
        END $$;

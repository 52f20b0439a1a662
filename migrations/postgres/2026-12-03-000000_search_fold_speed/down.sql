-- The previous definitions (2026-11-30-200000_search_write_path); they compute the same.

CREATE OR REPLACE FUNCTION memlayer_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length($1) = length($1)
        THEN regexp_replace(lower($1 COLLATE "C"), '[!-/:-@[-`{-~]', ' ', 'g')
        ELSE translate(lower($1),
        'àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďđĎĐèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİĵĴķĶĺļľŀłĹĻĽĿŁñńņňÑŃŅŇòóôõöøōŏőÒÓÔÕÖØŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŧŢŤŦùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~‘’“”«»–—…',
        'aaaaaaaaaaaaaaaaaaccccccccccddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz                                         ') END $$;

CREATE OR REPLACE FUNCTION memlayer_search_vector(owner uuid, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length(body) > 1000
            AND body ~ '(?:[^ \t\n\r]{250}){2}[^ \t\n\r]{9}'
        THEN memlayer_search_vector_bounded(owner, body)
        ELSE regexp_replace(to_tsvector('simple'::regconfig, memlayer_fold(body))::text,
            '(^| )''', '\1''' || right(replace(owner::text, '-', ''), 12) || '.', 'g')::tsvector
        END $$;

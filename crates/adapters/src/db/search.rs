//! Search: the one query each backend writes in its own SQL, over its own index
//! (PostgreSQL: the `search_tsv` columns, kept by triggers, and their GIN indexes; SQLite: the
//! `search_fts` FTS5 table and `search_docs`). Both restrict the index to the user's own
//! documents first (PostgreSQL: lexemes tagged with their owner; SQLite: an owner term
//! AND the words), check the session in the same query, and read the text of the page's
//! hits only.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use memlayer_domain::{
    ChatId, ChatTitle, Cursor, MessageId, Role, SearchOrder, SearchQuery, Session, StoredHit,
};
use memlayer_ports::{RepositoryError, SearchIndex};

use super::Database;
use super::connection::{Pool, run};
use super::position;
use super::sql_types::{DbTimestamp, DbUuid, UtcTimestamp, Uuid};

/// A hit as either backend's query returns it.
#[derive(QueryableByName)]
struct HitRow {
    #[diesel(sql_type = Uuid)]
    chat_id: DbUuid,
    #[diesel(sql_type = Text)]
    chat_title: String,
    #[diesel(sql_type = Nullable<Uuid>)]
    message_id: Option<DbUuid>,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DbTimestamp,
    #[diesel(sql_type = Text)]
    text: String,
}

impl TryFrom<HitRow> for StoredHit {
    type Error = RepositoryError;

    fn try_from(row: HitRow) -> Result<Self, Self::Error> {
        let role = match row.role {
            None => None,
            Some(role) => Some(Role::parse(&role).ok_or_else(|| {
                RepositoryError::Internal(format!("unknown role {role:?} in a search hit").into())
            })?),
        };
        Ok(Self {
            chat_id: ChatId::from_uuid(row.chat_id.0),
            chat_title: ChatTitle::from_trusted(row.chat_title),
            message_id: row.message_id.map(|id| MessageId::from_uuid(id.0)),
            role,
            created_at: row.created_at.0,
            text: row.text,
        })
    }
}

/// The words as a PostgreSQL `tsquery` text: each a quoted prefix term, all required.
/// The words hold letters and digits only (see [`SearchQuery::words`]), so nothing of
/// the user's text can be read as `tsquery` syntax; quotes are doubled all the same.
fn pg_words(query: &SearchQuery) -> String {
    query
        .words()
        .iter()
        .map(|word| format!("'{}':*", word.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// The FTS5 query: the owner's token and every word as a quoted prefix term of `body`.
fn fts_match(owner: uuid::Uuid, query: &SearchQuery) -> String {
    let mut expression = format!("owner : \"{}\"", owner.simple());
    for word in query.words() {
        expression.push_str(&format!(" AND (body : \"{}\"*)", word.replace('"', "\"\"")));
    }
    expression
}

/// PostgreSQL: the newest-first (or best-first) hits among the user's messages (through
/// the GIN index, on lexemes tagged with their owner: `memlayer_search_query` asks for
/// the caller's only) and chat titles. `$1` user, `$2` generation, `$3` the words as a
/// `tsquery` text (titles), `$4` the words as plain text (messages), `$5` limit, then
/// `$6`, `$7` the cursor if any. The owner is checked on the chat each hit is joined to
/// (the same user as the message's): a condition on `messages.user_id` would let the
/// planner AND in a bitmap of every message of the user, which costs more than the tagged
/// index scan it double-checks.
fn pg_sql(order: SearchOrder, paged: bool) -> String {
    let words = "to_tsquery('simple', $3)";
    let owned = "memlayer_search_query($1, $4)";
    let (after_m, after_c) = if paged {
        (
            "AND (m.created_at, m.id) < ($6, $7)",
            "AND (c.created_at, c.id) < ($6, $7)",
        )
    } else {
        ("", "")
    };
    let (rank_m, rank_c, rank_first) = match order {
        SearchOrder::Newest => ("0::real", "0::real", ""),
        SearchOrder::Relevance => (
            "ts_rank(m.search_tsv, memlayer_search_query($1, $4))",
            "ts_rank(c.search_tsv, to_tsquery('simple', $3))",
            "rank DESC, ",
        ),
    };
    format!(
        "SELECT chat_id, chat_title, message_id, role, created_at, text FROM (
            (SELECT m.chat_id AS chat_id, c.title AS chat_title, m.id AS message_id,
                    m.role AS role, m.created_at AS created_at, m.content AS text,
                    m.id AS pos, {rank_m} AS rank
             FROM messages m JOIN chats c ON c.id = m.chat_id AND c.user_id = $1
             WHERE m.search_tsv @@ {owned} {after_m}
             ORDER BY {rank_first}m.created_at DESC, m.id DESC LIMIT $5)
            UNION ALL
            (SELECT c.id AS chat_id, c.title AS chat_title, NULL::uuid AS message_id,
                    NULL::text AS role, c.created_at AS created_at, c.title AS text,
                    c.id AS pos, {rank_c} AS rank
             FROM chats c
             WHERE c.user_id = $1 AND c.search_tsv @@ {words} {after_c}
             ORDER BY {rank_first}c.created_at DESC, c.id DESC LIMIT $5)
         ) hits
         WHERE numnode({words}) > 0
           AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND token_generation = $2)
         ORDER BY {rank_first}created_at DESC, pos DESC LIMIT $5"
    )
}

/// SQLite: the hits through FTS5, restricted to the owner's token; the page is chosen on
/// `search_docs` alone (its time and key), and only its hits are joined to their chat and
/// message text. `?1` match, `?2` user, `?3` generation, `?4` limit, then `?5`, `?6` the
/// cursor if any.
fn sqlite_sql(order: SearchOrder, paged: bool) -> String {
    let after = if paged {
        "AND (d.created_at, d.item_id) < (?5, ?6)"
    } else {
        ""
    };
    let (score, inner, outer) = match order {
        SearchOrder::Newest => (
            "0.0",
            "d.created_at DESC, d.item_id DESC",
            "page.created_at DESC, page.item_id DESC",
        ),
        // bm25: lower is better; the owner column weighs nothing.
        SearchOrder::Relevance => (
            "bm25(search_fts, 1.0, 0.0)",
            "score, d.created_at DESC, d.item_id DESC",
            "page.score, page.created_at DESC, page.item_id DESC",
        ),
    };
    format!(
        "SELECT c.id AS chat_id, c.title AS chat_title, m.id AS message_id, m.role AS role,
                page.created_at AS created_at, COALESCE(m.content, c.title) AS text
         FROM (SELECT d.item_id, d.chat_id, d.is_title, d.created_at, {score} AS score
               FROM search_fts JOIN search_docs d ON d.doc = search_fts.rowid
               WHERE search_fts MATCH ?1 {after}
               ORDER BY {inner}
               LIMIT ?4) AS page
         JOIN chats c ON c.id = page.chat_id
         LEFT JOIN messages m ON NOT page.is_title AND m.id = page.item_id
         WHERE c.user_id = ?2
           AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND token_generation = ?3)
         ORDER BY {outer}"
    )
}

impl SearchIndex for Database {
    fn search(
        &self,
        owner: Session,
        query: &SearchQuery,
        order: SearchOrder,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredHit>, RepositoryError> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let user = owner.user.as_uuid();
        let after = match order {
            SearchOrder::Newest => after.map(position),
            SearchOrder::Relevance => None,
        };
        let limit = i64::from(limit);
        let rows: Vec<HitRow> = match self.pool() {
            Pool::Postgres(pool) => {
                let sql = pg_sql(order, after.is_some());
                let (words, plain) = (pg_words(query), query.words().join(" "));
                run(pool, |conn| {
                    let base = diesel::sql_query(sql)
                        .bind::<Uuid, _>(DbUuid(user))
                        .bind::<BigInt, _>(owner.generation)
                        .bind::<Text, _>(words)
                        .bind::<Text, _>(plain)
                        .bind::<BigInt, _>(limit);
                    match after {
                        Some((at, id)) => base
                            .bind::<UtcTimestamp, _>(at)
                            .bind::<Uuid, _>(id)
                            .load(conn),
                        None => base.load(conn),
                    }
                })?
            }
            Pool::Sqlite { readers, .. } => {
                let sql = sqlite_sql(order, after.is_some());
                let matching = fts_match(user, query);
                run(readers, |conn| {
                    let base = diesel::sql_query(sql)
                        .bind::<Text, _>(matching)
                        .bind::<Uuid, _>(DbUuid(user))
                        .bind::<BigInt, _>(owner.generation)
                        .bind::<BigInt, _>(limit);
                    match after {
                        Some((at, id)) => base
                            .bind::<UtcTimestamp, _>(at)
                            .bind::<Uuid, _>(id)
                            .load(conn),
                        None => base.load(conn),
                    }
                })?
            }
        };
        rows.into_iter().map(StoredHit::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The SQL string literals that follow `after` in `sql`, quotes undoubled.
    fn literals_after(sql: &str, after: &str, count: usize) -> Vec<String> {
        let (_, tail) = sql.split_once(after).unwrap();
        let mut rest = tail.chars().peekable();
        let mut found = Vec::new();
        while found.len() < count {
            if rest.next().unwrap() != '\'' {
                continue;
            }
            let mut literal = String::new();
            loop {
                match rest.next().unwrap() {
                    '\'' if rest.peek() == Some(&'\'') => {
                        rest.next();
                        literal.push('\'');
                    }
                    '\'' => break,
                    c => literal.push(c),
                }
            }
            found.push(literal);
        }
        found
    }

    #[test]
    fn the_postgres_fold_function_folds_as_the_domain_does() {
        // The migration that last defines `memlayer_fold`: its `translate` table, whose
        // entries are ordered for speed.
        let migration = include_str!(
            "../../../../migrations/postgres/2026-12-03-000000_search_fold_speed/up.sql"
        );
        let [from, to] =
            <[String; 2]>::try_from(literals_after(migration, "translate(lower($1),", 2)).unwrap();
        assert_eq!(from.chars().count(), to.chars().count());
        let table: HashMap<char, char> = from.chars().zip(to.chars()).collect();
        assert_eq!(table.len(), from.chars().count(), "an entry twice");
        let domain: HashMap<char, char> = memlayer_domain::FOLD_FROM
            .chars()
            .zip(memlayer_domain::FOLD_TO.chars())
            .collect();
        for (letter, plain) in &domain {
            assert_eq!(table.get(letter), Some(plain), "{letter}");
        }
        // Otherwise exactly the letters, digits and space the table starts with (kept),
        // and the separators it has always made spaces: ASCII punctuation and common
        // typographic marks. Any other character is left as `lower` makes it.
        let kept = |c: &char| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == ' ';
        let separators: Vec<char> = (b'!'..=b'~')
            .map(char::from)
            .filter(|c| !c.is_ascii_alphanumeric())
            .chain("‘’“”«»–—…".chars())
            .collect();
        for (c, folded) in table.iter().filter(|(c, _)| !domain.contains_key(c)) {
            assert!(
                kept(c) || separators.contains(c),
                "{c:?} should not be folded"
            );
            assert_eq!(*folded, if kept(c) { *c } else { ' ' }, "{c:?}");
        }
        for c in &separators {
            assert_eq!(table.get(c), Some(&' '), "{c:?}");
        }
    }

    #[test]
    fn query_words_become_quoted_prefix_terms_and_nothing_else() {
        let query = SearchQuery::parse("café & !x:* 'or'").unwrap();
        assert_eq!(pg_words(&query), "'cafe':* & 'x':* & 'or':*");
        let owner = uuid::Uuid::nil();
        assert_eq!(
            fts_match(owner, &query),
            "owner : \"00000000000000000000000000000000\" AND (body : \"cafe\"*) \
             AND (body : \"x\"*) AND (body : \"or\"*)"
        );
    }
}

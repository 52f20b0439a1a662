//! Replies as they are written ([`ReplyRepository`]): stored from their start, appended to
//! in batches by the instance that generates them, readable and stoppable from any.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use memlayer_domain::{
    Allowance, ChatId, Message, MessageId, MessageStatus, TokenUsage, UsageDay, UserId,
};
use memlayer_ports::{
    Generating, ReplyRepository, ReplyState, RepositoryError, StartedReply, StoredReply,
};

use super::messages::{LockChat, TreeQueries, db_id, is_gone, retried, to_message};
use super::rows::{MessageRow, read_tokens, stored_tokens};
use super::schema::{chats, messages, token_usage, users};
use diesel::sql_types::{Nullable, Text};

use super::sql_types::{DbTimestamp, DbUuid, UtcTimestamp};
use super::{Backend, Database, DbError, with_connection, with_writer};

const GENERATING: &str = "generating";

/// Piece ends as stored: each offset followed by a comma.
fn encode(ends: &[usize]) -> String {
    let mut text = String::with_capacity(ends.len() * 6);
    for end in ends {
        text.push_str(&end.to_string());
        text.push(',');
    }
    text
}

/// Piece ends as read back; a malformed entry (never written) ends the list.
fn decode(text: &str) -> Vec<usize> {
    text.split(',').map_while(|end| end.parse().ok()).collect()
}

diesel::define_sql_function! {
    /// SQL's `length(text)`: characters, on PostgreSQL and SQLite.
    fn length(text: Text) -> Integer;
}

diesel::define_sql_function! {
    /// SQL's `replace(text, from, to)`, on PostgreSQL and SQLite.
    fn replace(text: Text, from: Text, to: Text) -> Text;
}

/// How many pieces a stored `piece_ends` holds: its commas (ASCII, so characters and
/// bytes agree whatever the database's encoding).
#[diesel::dsl::auto_type]
fn piece_count(ends: messages::piece_ends) -> _ {
    let none: &'static str = "";
    let comma: &'static str = ",";
    length(ends) - length(replace(ends, comma, none))
}

/// The text of `pieces` after the first `skip`, and where each of those ends in the
/// whole reply (whose stored part, before the batch, is `stored_chars` long), as stored.
fn batch(stored_chars: usize, pieces: &[String], skip: usize) -> (String, String) {
    let mut chars = stored_chars;
    let mut ends = Vec::with_capacity(pieces.len());
    let mut text = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        chars += piece.chars().count();
        if index >= skip {
            text.push_str(piece);
            ends.push(chars);
        }
    }
    (text, encode(&ends))
}

impl Database {
    /// "Now" by the database's clock, as a heartbeat is stored: every instance on one
    /// PostgreSQL then compares heartbeats on one clock. SQLite (one instance) formats
    /// its clock's time as the timestamps it stores (RFC 3339, UTC).
    fn now(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => "now()",
            Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// `silence` before now, by the database's clock.
    fn now_minus(&self, silence: std::time::Duration) -> String {
        let seconds = silence.as_secs_f64();
        match self.backend() {
            Backend::Postgres => format!("now() - interval '{seconds:.3} seconds'"),
            Backend::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{seconds:.3} seconds')")
            }
        }
    }
}

/// A count of characters as SQL's integer.
fn sql_count(chars: usize) -> i32 {
    i32::try_from(chars).unwrap_or(i32::MAX)
}

/// Adds `tokens` to `user`'s tokens of `day` in the ledger (a row per user and day).
fn add_tokens<C: UsageLedger>(
    conn: &mut C,
    user: DbUuid,
    tokens: u64,
    day: UsageDay,
) -> QueryResult<()> {
    if tokens == 0 {
        return Ok(());
    }
    conn.add_tokens(user, stored_tokens(tokens), day.0)
}

/// The ledger's statements, for each backend.
pub(super) trait UsageLedger {
    /// Adds `tokens` to the user's row of `day`, making it if there is none.
    fn add_tokens(&mut self, user: DbUuid, tokens: i64, day: i64) -> QueryResult<()>;
}

macro_rules! usage_ledger {
    ($conn:ty) => {
        impl UsageLedger for $conn {
            fn add_tokens(&mut self, user: DbUuid, tokens: i64, day: i64) -> QueryResult<()> {
                diesel::insert_into(token_usage::table)
                    .values((
                        token_usage::user_id.eq(user),
                        token_usage::day.eq(day),
                        token_usage::tokens.eq(tokens),
                    ))
                    .on_conflict((token_usage::user_id, token_usage::day))
                    .do_update()
                    .set(token_usage::tokens.eq(token_usage::tokens + tokens))
                    .execute(self)
                    .map(drop)
            }
        }
    };
}

usage_ledger!(diesel::PgConnection);
usage_ledger!(diesel::SqliteConnection);

impl ReplyRepository for Database {
    fn generating(
        &self,
        chat: Option<ChatId>,
        user: UserId,
        day: UsageDay,
    ) -> Result<Option<Generating>, RepositoryError> {
        let user = DbUuid(user.as_uuid());
        // No chat asked about: a chat id no chat has.
        let chat = DbUuid(chat.map_or_else(uuid::Uuid::nil, |chat| chat.as_uuid()));
        // One statement: the account's limit and generation with the day's tokens, and
        // its replies generating (two partial indexes: a few rows at most).
        let running = messages::table
            .filter(messages::user_id.eq(user))
            .filter(messages::status.eq(GENERATING))
            .count()
            .single_value();
        let in_chat = diesel::dsl::exists(
            messages::table
                .filter(messages::chat_id.eq(chat))
                .filter(messages::status.eq(GENERATING)),
        );
        // The account's own limit, its token generation, the day's tokens, how many
        // replies generate, whether one does in the chat.
        type Row = (Option<i64>, i64, Option<i64>, Option<i64>, bool);
        let found: Option<Row> = with_connection!(self, |conn| users::table
            .left_join(
                token_usage::table.on(token_usage::user_id
                    .eq(users::id)
                    .and(token_usage::day.eq(day.0))),
            )
            .filter(users::id.eq(user))
            .select((
                users::token_limit,
                users::token_generation,
                token_usage::tokens.nullable(),
                running,
                in_chat,
            ))
            .first(conn)
            .optional())?;
        Ok(found.map(
            |(own_limit, generation, tokens, running, in_chat)| Generating {
                in_chat,
                of_user: running.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
                tokens_used: tokens.map_or(0, read_tokens),
                own_token_limit: own_limit.map(read_tokens),
                token_generation: generation,
            },
        ))
    }

    fn start(
        &self,
        question: &Message,
        question_is_new: bool,
        reply: &Message,
        allowance: Allowance,
        day: UsageDay,
    ) -> Result<StartedReply, RepositoryError> {
        let (asked, answer) = (MessageRow::from(question), MessageRow::from(reply));
        let (chat, owner) = (asked.chat_id, answer.user_id);
        let now = self.now();
        let started = retried(|| {
            with_writer!(self, |conn| conn.transaction(|conn| {
                // The owner's starts take turns (the user's row, then the chat's), so
                // two racing for the last place cannot both take it.
                let Some((own_limit, disabled, spent)) = conn.lock_user(owner, day.0)? else {
                    return Ok(StartedReply::Gone);
                };
                // Disabled meanwhile (its tokens revoked in the same statement).
                if disabled {
                    return Ok(StartedReply::Disabled);
                }
                let running: i64 = messages::table
                    .filter(messages::user_id.eq(owner))
                    .filter(messages::status.eq(GENERATING))
                    .count()
                    .get_result(conn)?;
                if usize::try_from(running).unwrap_or(usize::MAX) >= allowance.generations {
                    return Ok(StartedReply::UserBusy);
                }
                if let Some(limit) = allowance.token_limit(own_limit.map(read_tokens))
                    && spent.map_or(0, read_tokens) >= limit
                {
                    return Ok(StartedReply::OverQuota);
                }
                conn.lock_chat(chat)?;
                let busy: bool = diesel::select(diesel::dsl::exists(
                    messages::table
                        .filter(messages::chat_id.eq(chat))
                        .filter(messages::status.eq(GENERATING)),
                ))
                .get_result(conn)?;
                if busy {
                    return Ok(StartedReply::Busy);
                }
                if question_is_new {
                    diesel::insert_into(messages::table)
                        .values(&asked)
                        .execute(conn)?;
                } else {
                    let there: i64 = messages::table
                        .filter(messages::id.eq(asked.id))
                        .filter(messages::chat_id.eq(chat))
                        .count()
                        .get_result(conn)?;
                    if there == 0 {
                        return Ok(StartedReply::Gone);
                    }
                }
                diesel::insert_into(messages::table)
                    .values((
                        &answer,
                        messages::heartbeat_at.eq(sql::<Nullable<UtcTimestamp>>(now)),
                    ))
                    .execute(conn)?;
                // A new answer always becomes the active leaf.
                let moved = diesel::update(chats::table.find(chat))
                    .set(chats::active_message_id.eq(Some(answer.id)))
                    .execute(conn)?;
                if moved == 0 {
                    return Err(DieselError::RollbackTransaction);
                }
                // A new question's reply is its only answer.
                let reply_siblings = if question_is_new {
                    vec![MessageId::from_uuid(answer.id.0)]
                } else {
                    conn.siblings(chat, Some(asked.id))?
                };
                Ok(StartedReply::Started {
                    question_siblings: conn.siblings(chat, asked.parent_id)?,
                    reply_siblings,
                })
            }))
        });
        match started {
            Ok(started) => Ok(started),
            Err(error) if is_gone(&error) => Ok(StartedReply::Gone),
            Err(DbError::Query(DieselError::RollbackTransaction)) => Ok(StartedReply::Gone),
            // Another reply started in the chat at the same moment.
            Err(error) if error.is_unique_violation() => Ok(StartedReply::Busy),
            Err(error) => Err(error.into()),
        }
    }

    fn append_pieces(
        &self,
        reply: MessageId,
        stored_pieces: usize,
        stored_chars: usize,
        pieces: &[String],
    ) -> Result<ReplyState, RepositoryError> {
        let now = self.now();
        let id = db_id(reply);
        let state = with_writer!(self, |conn| {
            let mut skip = 0;
            loop {
                let (text, ends) = batch(stored_chars, pieces, skip);
                let appended: Option<bool> = diesel::update(
                    messages::table
                        .filter(messages::id.eq(id))
                        .filter(messages::status.eq(GENERATING))
                        .filter(
                            piece_count(messages::piece_ends).eq(sql_count(stored_pieces + skip)),
                        ),
                )
                .set((
                    messages::content.eq(messages::content.concat(&text)),
                    messages::piece_ends.eq(messages::piece_ends.concat(&ends)),
                    messages::heartbeat_at.eq(sql::<Nullable<UtcTimestamp>>(now)),
                ))
                .returning(messages::stop_requested)
                .get_result(conn)
                .optional()?;
                if let Some(stop_requested) = appended {
                    return Ok(ReplyState::Generating { stop_requested });
                }
                // Not appended: gone, ended elsewhere, or some of these pieces stored
                // already (the answer to an earlier try was lost).
                let found: Option<(String, i32, bool)> = messages::table
                    .find(id)
                    .select((
                        messages::status,
                        piece_count(messages::piece_ends),
                        messages::stop_requested,
                    ))
                    .first(conn)
                    .optional()?;
                let Some((status, count, stop_requested)) = found else {
                    return Ok(ReplyState::Gone);
                };
                let stored = usize::try_from(count).unwrap_or(usize::MAX);
                let already = stored
                    .checked_sub(stored_pieces)
                    .filter(|_| status == GENERATING);
                match already {
                    Some(all) if all == pieces.len() => {
                        return Ok(ReplyState::Generating { stop_requested });
                    }
                    // The rest of the batch follows the pieces stored before.
                    Some(some) if some > skip && some < pieces.len() => skip = some,
                    _ => return Ok(ReplyState::Ended),
                }
            }
        })?;
        Ok(state)
    }

    fn finish(
        &self,
        reply: &Message,
        text: &str,
        piece_ends: &[usize],
        status: MessageStatus,
        usage: Option<TokenUsage>,
        day: UsageDay,
    ) -> Result<Option<Message>, RepositoryError> {
        let ends = encode(piece_ends);
        let (id, owner) = (db_id(reply.id), DbUuid(reply.user_id.as_uuid()));
        let finished = retried(|| {
            with_writer!(self, |conn| conn.transaction(|conn| {
                conn.share_user(owner)?;
                let row: Option<MessageRow> = diesel::update(
                    messages::table
                        .filter(messages::id.eq(id))
                        .filter(messages::status.eq(GENERATING)),
                )
                .set((
                    messages::content.eq(text),
                    messages::piece_ends.eq(&ends),
                    messages::status.eq(status.as_str()),
                    messages::heartbeat_at.eq(None::<DbTimestamp>),
                    messages::prompt_tokens
                        .eq(usage.map(|usage| stored_tokens(usage.prompt_tokens))),
                    messages::completion_tokens
                        .eq(usage.map(|usage| stored_tokens(usage.completion_tokens))),
                    messages::usage_estimated.eq(usage.is_some_and(|usage| usage.estimated)),
                ))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .optional()?;
                match row {
                    Some(row) => {
                        let chat = row.chat_id;
                        add_tokens(conn, owner, usage.map_or(0, TokenUsage::total), day)?;
                        let mut found = vec![to_message(row)?];
                        conn.with_siblings(chat, &mut found)?;
                        Ok(found.pop())
                    }
                    None => Ok(None),
                }
            }))
        })?;
        Ok(finished)
    }

    fn charge(&self, user: UserId, tokens: u64, day: UsageDay) -> Result<(), RepositoryError> {
        let user = DbUuid(user.as_uuid());
        match with_writer!(self, |conn| add_tokens(conn, user, tokens, day)) {
            Ok(()) => Ok(()),
            // The account was deleted meanwhile: nothing to count.
            Err(error) if is_gone(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    fn read(&self, chat: ChatId, id: MessageId) -> Result<Option<StoredReply>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let found = with_connection!(self, |conn| {
            let row: Option<(MessageRow, String)> = messages::table
                .filter(messages::id.eq(db_id(id)))
                .filter(messages::chat_id.eq(chat))
                .select((MessageRow::as_select(), messages::piece_ends))
                .first(conn)
                .optional()?;
            match row {
                Some((row, ends)) => {
                    let mut found = vec![to_message(row)?];
                    conn.with_siblings(chat, &mut found)?;
                    Ok(found.pop().map(|message| StoredReply {
                        message,
                        piece_ends: decode(&ends),
                    }))
                }
                None => Ok(None),
            }
        })?;
        Ok(found)
    }

    fn request_stop(&self, chat: ChatId, id: MessageId) -> Result<bool, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let asked = with_writer!(self, |conn| {
            diesel::update(
                messages::table
                    .filter(messages::id.eq(db_id(id)))
                    .filter(messages::chat_id.eq(chat))
                    .filter(messages::status.eq(GENERATING)),
            )
            .set(messages::stop_requested.eq(true))
            .execute(conn)
        })?;
        Ok(asked > 0)
    }

    fn watch(
        &self,
        replies: &[MessageId],
        heartbeat: bool,
    ) -> Result<Vec<ReplyState>, RepositoryError> {
        if replies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<DbUuid> = replies.iter().map(|&id| db_id(id)).collect();
        let now = self.now();
        // Every one of them, generating or not (a missing one is gone).
        let found: Vec<(DbUuid, String, bool)> = if heartbeat {
            with_writer!(self, |conn| {
                diesel::update(
                    messages::table
                        .filter(messages::id.eq_any(&ids))
                        .filter(messages::status.eq(GENERATING)),
                )
                .set(messages::heartbeat_at.eq(sql::<Nullable<UtcTimestamp>>(now)))
                .execute(conn)?;
                messages::table
                    .filter(messages::id.eq_any(&ids))
                    .select((messages::id, messages::status, messages::stop_requested))
                    .load(conn)
            })?
        } else {
            with_connection!(self, |conn| {
                messages::table
                    .filter(messages::id.eq_any(&ids))
                    .select((messages::id, messages::status, messages::stop_requested))
                    .load(conn)
            })?
        };
        Ok(ids
            .iter()
            .map(|id| match found.iter().find(|(found, ..)| found == id) {
                None => ReplyState::Gone,
                Some((_, status, stop_requested)) if status == GENERATING => {
                    ReplyState::Generating {
                        stop_requested: *stop_requested,
                    }
                }
                Some(_) => ReplyState::Ended,
            })
            .collect())
    }

    fn reap(&self, silence: std::time::Duration) -> Result<usize, RepositoryError> {
        let before = self.now_minus(silence);
        let reaped = with_writer!(self, |conn| {
            diesel::update(
                messages::table
                    .filter(messages::status.eq(GENERATING))
                    .filter(
                        messages::heartbeat_at
                            .lt(sql::<Nullable<UtcTimestamp>>(&before))
                            .or(messages::heartbeat_at.is_null()),
                    ),
            )
            .set((
                messages::status.eq(MessageStatus::Failed.as_str()),
                messages::heartbeat_at.eq(None::<DbTimestamp>),
            ))
            .execute(conn)
        })?;
        Ok(reaped)
    }

    fn fail_generating(&self) -> Result<usize, RepositoryError> {
        let failed = with_writer!(self, |conn| {
            diesel::update(messages::table.filter(messages::status.eq(GENERATING)))
                .set((
                    messages::status.eq(MessageStatus::Failed.as_str()),
                    messages::heartbeat_at.eq(None::<DbTimestamp>),
                ))
                .execute(conn)
        })?;
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_ends_read_back_as_written() {
        let ends = [1, 5, 17, 1_000_000];
        assert_eq!(decode(&encode(&ends)), ends);
        assert_eq!(decode(&(encode(&[3]) + &encode(&[9]))), [3, 9]);
        assert!(decode("").is_empty());
    }
}

//! Replies as they are written ([`ReplyRepository`]): stored from their start, appended to
//! in batches by the instance that generates them, readable and stoppable from any.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use memlayer_domain::{ChatId, Message, MessageId, MessageStatus};
use memlayer_ports::{ReplyRepository, ReplyState, RepositoryError, StartedReply, StoredReply};

use super::messages::{LockChat, TreeQueries, db_id, is_gone, retried, to_message};
use super::rows::MessageRow;
use super::schema::{chats, messages};
use super::sql_types::{DbTimestamp, DbUuid};
use super::{Database, DbError, with_connection, with_writer};

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

/// Whether a statement failed on a unique index: here, the one that allows one
/// generating reply per chat.
fn is_duplicate(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

impl ReplyRepository for Database {
    fn generating_in(&self, chat: ChatId) -> Result<bool, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        Ok(with_connection!(self, |conn| diesel::select(
            diesel::dsl::exists(
                messages::table
                    .filter(messages::chat_id.eq(chat))
                    .filter(messages::status.eq(GENERATING)),
            )
        )
        .get_result::<bool>(conn))?)
    }

    fn start(
        &self,
        question: &Message,
        question_is_new: bool,
        reply: &Message,
        now: DateTime<Utc>,
    ) -> Result<StartedReply, RepositoryError> {
        let (asked, answer) = (MessageRow::from(question), MessageRow::from(reply));
        let chat = asked.chat_id;
        let started = retried(|| {
            with_writer!(self, |conn| conn.transaction(|conn| {
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
                    .values(&answer)
                    .execute(conn)?;
                diesel::update(messages::table.find(answer.id))
                    .set(messages::heartbeat_at.eq(Some(DbTimestamp(now))))
                    .execute(conn)?;
                // A new answer always becomes the active leaf.
                let moved = diesel::update(chats::table.find(chat))
                    .set(chats::active_message_id.eq(Some(answer.id)))
                    .execute(conn)?;
                if moved == 0 {
                    return Err(DieselError::RollbackTransaction);
                }
                Ok(StartedReply::Started {
                    question_siblings: conn.siblings(chat, asked.parent_id)?,
                    reply_siblings: conn.siblings(chat, Some(asked.id))?,
                })
            }))
        });
        match started {
            Ok(started) => Ok(started),
            Err(error) if is_gone(&error) => Ok(StartedReply::Gone),
            Err(DbError::Query(DieselError::RollbackTransaction)) => Ok(StartedReply::Gone),
            // Another reply started in the chat at the same moment.
            Err(error) if is_duplicate(&error) => Ok(StartedReply::Busy),
            Err(error) => Err(error.into()),
        }
    }

    fn append_pieces(
        &self,
        reply: MessageId,
        text: &str,
        piece_ends: &[usize],
        now: DateTime<Utc>,
    ) -> Result<ReplyState, RepositoryError> {
        let ends = encode(piece_ends);
        let stop: Option<bool> = with_writer!(self, |conn| {
            diesel::update(
                messages::table
                    .filter(messages::id.eq(db_id(reply)))
                    .filter(messages::status.eq(GENERATING)),
            )
            .set((
                messages::content.eq(messages::content.concat(text)),
                messages::piece_ends.eq(messages::piece_ends.concat(&ends)),
                messages::heartbeat_at.eq(Some(DbTimestamp(now))),
            ))
            .returning(messages::stop_requested)
            .get_result(conn)
            .optional()
        })?;
        Ok(match stop {
            Some(stop_requested) => ReplyState::Generating { stop_requested },
            None => ReplyState::Gone,
        })
    }

    fn finish(
        &self,
        reply: MessageId,
        text: &str,
        piece_ends: &[usize],
        status: MessageStatus,
    ) -> Result<Option<Message>, RepositoryError> {
        let ends = encode(piece_ends);
        let finished = with_writer!(self, |conn| {
            let row: Option<MessageRow> = diesel::update(
                messages::table
                    .filter(messages::id.eq(db_id(reply)))
                    .filter(messages::status.eq(GENERATING)),
            )
            .set((
                messages::content.eq(messages::content.concat(text)),
                messages::piece_ends.eq(messages::piece_ends.concat(&ends)),
                messages::status.eq(status.as_str()),
                messages::heartbeat_at.eq(None::<DbTimestamp>),
            ))
            .returning(MessageRow::as_returning())
            .get_result(conn)
            .optional()?;
            match row {
                Some(row) => {
                    let chat = row.chat_id;
                    let mut found = vec![to_message(row)?];
                    conn.with_siblings(chat, &mut found)?;
                    Ok(found.pop())
                }
                None => Ok(None),
            }
        })?;
        Ok(finished)
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
        alive_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<ReplyState>, RepositoryError> {
        if replies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<DbUuid> = replies.iter().map(|&id| db_id(id)).collect();
        let found: Vec<(DbUuid, bool)> = match alive_at {
            Some(now) => with_writer!(self, |conn| {
                diesel::update(
                    messages::table
                        .filter(messages::id.eq_any(&ids))
                        .filter(messages::status.eq(GENERATING)),
                )
                .set(messages::heartbeat_at.eq(Some(DbTimestamp(now))))
                .returning((messages::id, messages::stop_requested))
                .get_results(conn)
            })?,
            None => with_connection!(self, |conn| {
                messages::table
                    .filter(messages::id.eq_any(&ids))
                    .filter(messages::status.eq(GENERATING))
                    .select((messages::id, messages::stop_requested))
                    .load(conn)
            })?,
        };
        Ok(ids
            .iter()
            .map(|id| {
                found
                    .iter()
                    .find(|(found, _)| found == id)
                    .map_or(ReplyState::Gone, |&(_, stop_requested)| {
                        ReplyState::Generating { stop_requested }
                    })
            })
            .collect())
    }

    fn reap(&self, silent_since: DateTime<Utc>) -> Result<usize, RepositoryError> {
        let reaped = with_writer!(self, |conn| {
            diesel::update(
                messages::table
                    .filter(messages::status.eq(GENERATING))
                    .filter(
                        messages::heartbeat_at
                            .lt(DbTimestamp(silent_since))
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

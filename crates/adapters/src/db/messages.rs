use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use memlayer_domain::{ChatId, Cursor, Message};
use memlayer_ports::{MessageRepository, RepositoryError};

use super::position;
use super::rows::MessageRow;
use super::schema::messages;
use super::sql_types::DbUuid;
use super::{Database, DbError, with_connection};

impl MessageRepository for Database {
    fn append(&self, message: &Message) -> Result<bool, RepositoryError> {
        let row = MessageRow::from(message);
        match with_connection!(self, |conn| diesel::insert_into(messages::table)
            .values(&row)
            .execute(conn))
        {
            Ok(_) => Ok(true),
            // The chat (or its owner) was deleted after the caller checked it.
            Err(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    fn list_for_chat(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let after = after.map(position);
        let rows = with_connection!(self, |conn| {
            let mut query = messages::table
                .filter(messages::chat_id.eq(chat))
                .order((messages::created_at.desc(), messages::id.desc()))
                .limit(i64::from(limit))
                .select(MessageRow::as_select())
                .into_boxed();
            // Newest first: the next page holds what sorts before the cursor.
            if let Some((at, id)) = after {
                query = query.filter(
                    messages::created_at
                        .lt(at)
                        .or(messages::created_at.eq(at).and(messages::id.lt(id))),
                );
            }
            query.load(conn)
        })?;
        rows.into_iter().map(Message::try_from).collect()
    }

    fn list_for_chat_oldest_first(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let after = after.map(position);
        let rows = with_connection!(self, |conn| {
            let mut query = messages::table
                .filter(messages::chat_id.eq(chat))
                .order((messages::created_at.asc(), messages::id.asc()))
                .limit(i64::from(limit))
                .select(MessageRow::as_select())
                .into_boxed();
            // Oldest first: the next page holds what sorts after the cursor.
            if let Some((at, id)) = after {
                query = query.filter(
                    messages::created_at
                        .gt(at)
                        .or(messages::created_at.eq(at).and(messages::id.gt(id))),
                );
            }
            query.load(conn)
        })?;
        rows.into_iter().map(Message::try_from).collect()
    }
}

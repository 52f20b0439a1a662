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
        self.page_of_messages(chat, after, limit, Order::NewestFirst)
    }

    fn list_for_chat_oldest_first(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        self.page_of_messages(chat, after, limit, Order::OldestFirst)
    }
}

/// Which way a page of messages runs.
#[derive(Clone, Copy)]
enum Order {
    NewestFirst,
    OldestFirst,
}

impl Database {
    /// At most `limit` of a chat's messages in `order` by `(created_at, id)`, starting
    /// after `after` in that order.
    fn page_of_messages(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
        order: Order,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let after = after.map(position);
        let rows = with_connection!(self, |conn| {
            let mut query = messages::table
                .filter(messages::chat_id.eq(chat))
                .limit(i64::from(limit))
                .select(MessageRow::as_select())
                .into_boxed();
            query = match order {
                Order::NewestFirst => {
                    query.order((messages::created_at.desc(), messages::id.desc()))
                }
                Order::OldestFirst => query.order((messages::created_at.asc(), messages::id.asc())),
            };
            // The next page holds what sorts after the cursor in the page's order.
            if let Some((at, id)) = after {
                let same_time = messages::created_at.eq(at);
                query = match order {
                    Order::NewestFirst => query.filter(
                        messages::created_at
                            .lt(at)
                            .or(same_time.and(messages::id.lt(id))),
                    ),
                    Order::OldestFirst => query.filter(
                        messages::created_at
                            .gt(at)
                            .or(same_time.and(messages::id.gt(id))),
                    ),
                };
            }
            query.load(conn)
        })?;
        rows.into_iter().map(Message::try_from).collect()
    }
}

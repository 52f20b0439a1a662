use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Integer, Text};
use memlayer_domain::{ChatId, Cursor, Message, Session};
use memlayer_ports::{MessageRepository, RepositoryError};

use super::position;
use super::rows::MessageRow;
use super::schema::{chats, messages, users};
use super::sql_types::{DbUuid, UtcTimestamp, Uuid};
use super::{Database, DbError, with_connection, with_writer};

diesel::define_sql_function! {
    /// SQL's `substr(text, start, length)`, in characters on PostgreSQL and SQLite.
    fn substr(text: Text, start: Integer, length: Integer) -> Text;
}

impl MessageRepository for Database {
    fn append(&self, message: &Message) -> Result<bool, RepositoryError> {
        let row = MessageRow::from(message);
        match with_writer!(self, |conn| diesel::insert_into(messages::table)
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

    fn append_exchange(
        &self,
        owner: Session,
        question: &Message,
        reply: &Message,
    ) -> Result<bool, RepositoryError> {
        let (question, reply) = (MessageRow::from(question), MessageRow::from(reply));
        let (user, generation) = (DbUuid(owner.user.as_uuid()), owner.generation);
        // Each row is an INSERT … SELECT from the chat joined to its owner, so both are
        // stored only if the chat is the session's and its tokens are current: one
        // statement, one commit.
        let owned = |row: &MessageRow| {
            chats::table
                .inner_join(users::table)
                .filter(chats::id.eq(row.chat_id))
                .filter(chats::user_id.eq(user))
                .filter(users::token_generation.eq(generation))
                .select((
                    row.id.into_sql::<Uuid>(),
                    chats::id,
                    chats::user_id,
                    row.role.clone().into_sql::<Text>(),
                    row.content.clone().into_sql::<Text>(),
                    row.created_at.into_sql::<UtcTimestamp>(),
                ))
        };
        match with_writer!(self, |conn| diesel::insert_into(messages::table)
            .values(owned(&question).union_all(owned(&reply)))
            .into_columns((
                messages::id,
                messages::chat_id,
                messages::user_id,
                messages::role,
                messages::content,
                messages::created_at,
            ))
            .execute(conn))
        {
            Ok(stored) => Ok(stored > 0),
            // The chat was deleted while the statement ran.
            Err(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    fn latest_in_chat(
        &self,
        chat: ChatId,
        limit: u32,
        chars_each: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        // Both databases count `substr`'s start and length in characters.
        let chars = i32::try_from(chars_each).unwrap_or(i32::MAX);
        let rows: Vec<MessageRow> = with_connection!(self, |conn| messages::table
            .filter(messages::chat_id.eq(chat))
            .order((messages::created_at.desc(), messages::id.desc()))
            .limit(i64::from(limit))
            .select((
                messages::id,
                messages::chat_id,
                messages::user_id,
                messages::role,
                substr(messages::content, 1, chars),
                messages::created_at,
            ))
            .load(conn))?;
        rows.into_iter().map(Message::try_from).collect()
    }

    fn list_if_owned(
        &self,
        owner: Session,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        self.page_of_messages(Some(owner), chat, after, limit, Order::NewestFirst)
    }

    fn list_for_chat_oldest_first(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        self.page_of_messages(None, chat, after, limit, Order::OldestFirst)
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
    /// after `after` in that order; with `owner`, only if the chat is the session
    /// user's and the session is current.
    fn page_of_messages(
        &self,
        owner: Option<Session>,
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
            if let Some(owner) = owner {
                // The ownership and revocation checks ride on the read: a primary-key
                // join, no extra round trip.
                query = query.filter(diesel::dsl::exists(
                    chats::table
                        .inner_join(users::table)
                        .filter(chats::id.eq(chat))
                        .filter(chats::user_id.eq(DbUuid(owner.user.as_uuid())))
                        .filter(users::token_generation.eq(owner.generation)),
                ));
            }
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

use diesel::prelude::*;
use memlayer_domain::{Chat, ChatId, ChatTitle, Cursor, UserId};
use memlayer_ports::{ChatRepository, RepositoryError};

use super::position;
use super::rows::ChatRow;
use super::schema::chats;
use super::sql_types::DbUuid;
use super::{Database, with_connection};

impl ChatRepository for Database {
    fn create(&self, chat: &Chat) -> Result<(), RepositoryError> {
        let row = ChatRow::from(chat);
        with_connection!(self, |conn| diesel::insert_into(chats::table)
            .values(&row)
            .execute(conn))?;
        Ok(())
    }

    fn find(&self, id: ChatId) -> Result<Option<Chat>, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let row = with_connection!(self, |conn| chats::table
            .find(id)
            .select(ChatRow::as_select())
            .first(conn)
            .optional())?;
        Ok(row.map(Chat::from))
    }

    fn list_for_owner(
        &self,
        owner: UserId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError> {
        let owner = DbUuid(owner.as_uuid());
        let after = after.map(position);
        let rows = with_connection!(self, |conn| {
            let mut query = chats::table
                .filter(chats::user_id.eq(owner))
                .order((chats::created_at.desc(), chats::id.desc()))
                .limit(i64::from(limit))
                .select(ChatRow::as_select())
                .into_boxed();
            // Newest first: the next page holds what sorts before the cursor.
            if let Some((at, id)) = after {
                query = query.filter(
                    chats::created_at
                        .lt(at)
                        .or(chats::created_at.eq(at).and(chats::id.lt(id))),
                );
            }
            query.load(conn)
        })?;
        Ok(rows.into_iter().map(Chat::from).collect())
    }

    fn rename(&self, id: ChatId, title: &ChatTitle) -> Result<bool, RepositoryError> {
        let (id, title) = (DbUuid(id.as_uuid()), title.as_str());
        let updated = with_connection!(self, |conn| diesel::update(chats::table.find(id))
            .set(chats::title.eq(title))
            .execute(conn))?;
        Ok(updated > 0)
    }

    fn delete(&self, id: ChatId) -> Result<bool, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let deleted = with_connection!(self, |conn| diesel::delete(chats::table.find(id))
            .execute(conn))?;
        Ok(deleted > 0)
    }
}

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use memlayer_domain::{
    Chat, ChatCursor, ChatFilter, ChatId, ChatTitle, ChatUpdate, Cursor, Session,
};
use memlayer_ports::{ChatRepository, RepositoryError, UpdateChatError};

use super::position;
use super::rows::ChatRow;
use super::schema::{chats, users};
use super::sql_types::{DbUuid, UtcTimestamp, Uuid};
use super::{Database, DbError, with_connection, with_writer};

/// The columns a [`ChatUpdate`] sets; `None` leaves a column as it is.
#[derive(AsChangeset)]
#[diesel(table_name = chats)]
struct ChatChanges<'a> {
    title: Option<&'a str>,
    pinned: Option<bool>,
    archived: Option<bool>,
    folder_id: Option<Option<DbUuid>>,
}

impl ChatRepository for Database {
    fn create(&self, chat: &Chat, owner_generation: i64) -> Result<bool, RepositoryError> {
        let row = ChatRow::from(chat);
        // INSERT … SELECT from the owner's row: the chat is stored only while the
        // owner's tokens are current, in one statement.
        let created = with_writer!(self, |conn| diesel::insert_into(chats::table)
            .values(
                users::table
                    .filter(users::id.eq(row.user_id))
                    .filter(users::token_generation.eq(owner_generation))
                    .select((
                        row.id.into_sql::<Uuid>(),
                        users::id,
                        row.title.as_str().into_sql::<Text>(),
                        row.created_at.into_sql::<UtcTimestamp>(),
                    )),
            )
            .into_columns((chats::id, chats::user_id, chats::title, chats::created_at))
            .execute(conn))?;
        Ok(created > 0)
    }

    fn find(&self, id: ChatId) -> Result<Option<(Chat, i64)>, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        // The owner's token generation comes with the chat (a primary-key join), so the
        // caller checks the token is still current without another round trip.
        let row = with_connection!(self, |conn| chats::table
            .inner_join(users::table)
            .filter(chats::id.eq(id))
            .select((ChatRow::as_select(), users::token_generation))
            .first::<(ChatRow, i64)>(conn)
            .optional())?;
        Ok(row.map(|(chat, generation)| (Chat::from(chat), generation)))
    }

    fn list_for_owner(
        &self,
        owner: Session,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError> {
        let (generation, owner) = (owner.generation, DbUuid(owner.user.as_uuid()));
        let after = after.map(position);
        let rows = with_connection!(self, |conn| {
            // Only while the session is current: the owner's generation is checked in
            // the same query (a primary-key lookup joined to the index range scan).
            let mut query = chats::table
                .inner_join(users::table)
                .filter(chats::user_id.eq(owner))
                .filter(users::token_generation.eq(generation))
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

    fn delete(&self, id: ChatId) -> Result<bool, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let deleted = with_writer!(self, |conn| diesel::delete(chats::table.find(id))
            .execute(conn))?;
        Ok(deleted > 0)
    }

    fn list_organised(
        &self,
        owner: Session,
        filter: ChatFilter,
        after: Option<ChatCursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError> {
        let (generation, owner) = (owner.generation, DbUuid(owner.user.as_uuid()));
        let folder = filter.folder.map(|id| DbUuid(id.as_uuid()));
        let after = after.map(|cursor| (cursor.pinned, position(cursor.position)));
        let rows = with_connection!(self, |conn| {
            // One range of chats_user_id_organised_idx (user, archived), in its order;
            // the session is checked in the same query.
            let mut query = chats::table
                .inner_join(users::table)
                .filter(chats::user_id.eq(owner))
                .filter(users::token_generation.eq(generation))
                .filter(chats::archived.eq(filter.archived))
                .order((
                    chats::pinned.desc(),
                    chats::created_at.desc(),
                    chats::id.desc(),
                ))
                .limit(i64::from(limit))
                .select(ChatRow::as_select())
                .into_boxed();
            if let Some(folder) = folder {
                query = query.filter(chats::folder_id.eq(folder));
            }
            if let Some((pinned, (at, id))) = after {
                let later_in_group = chats::created_at
                    .lt(at)
                    .or(chats::created_at.eq(at).and(chats::id.lt(id)));
                // After a pinned chat: the rest of the pinned ones, then every other;
                // after an unpinned one: the rest of the unpinned ones.
                query = if pinned {
                    query.filter(
                        chats::pinned
                            .eq(true)
                            .and(later_in_group)
                            .or(chats::pinned.eq(false)),
                    )
                } else {
                    query.filter(chats::pinned.eq(false).and(later_in_group))
                };
            }
            query.load(conn)
        })?;
        Ok(rows.into_iter().map(Chat::from).collect())
    }

    fn update(&self, id: ChatId, change: &ChatUpdate) -> Result<bool, UpdateChatError> {
        let id = DbUuid(id.as_uuid());
        let changes = ChatChanges {
            title: change.title.as_ref().map(ChatTitle::as_str),
            pinned: change.pinned,
            archived: change.archived,
            folder_id: change
                .folder
                .map(|folder| folder.map(|id| DbUuid(id.as_uuid()))),
        };
        match with_writer!(self, |conn| diesel::update(chats::table.find(id))
            .set(&changes)
            .execute(conn))
        {
            Ok(updated) => Ok(updated > 0),
            // The folder was deleted after the caller checked it.
            Err(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => Err(UpdateChatError::FolderGone),
            Err(error) => Err(UpdateChatError::Repository(error.into())),
        }
    }

    fn retitle_if(
        &self,
        id: ChatId,
        expected: &ChatTitle,
        title: &ChatTitle,
    ) -> Result<bool, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let renamed = with_writer!(self, |conn| diesel::update(
            chats::table
                .find(id)
                .filter(chats::title.eq(expected.as_str()))
        )
        .set(chats::title.eq(title.as_str()))
        .execute(conn))?;
        Ok(renamed > 0)
    }
}

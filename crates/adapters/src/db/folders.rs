use diesel::prelude::*;
use diesel::sql_types::Text;
use memlayer_domain::{Folder, FolderId, FolderName, Session};
use memlayer_ports::{FolderRepository, RepositoryError};

use super::rows::FolderRow;
use super::schema::{folders, users};
use super::sql_types::{DbUuid, UtcTimestamp, Uuid};
use super::{Database, with_connection, with_writer};

impl FolderRepository for Database {
    fn create(&self, folder: &Folder, owner_generation: i64) -> Result<bool, RepositoryError> {
        let row = FolderRow::from(folder);
        // INSERT … SELECT from the owner's row: stored only while the owner's tokens are
        // current, in one statement (as a new chat is).
        let created = with_writer!(self, |conn| diesel::insert_into(folders::table)
            .values(
                users::table
                    .filter(users::id.eq(row.user_id))
                    .filter(users::token_generation.eq(owner_generation))
                    .select((
                        row.id.into_sql::<Uuid>(),
                        users::id,
                        row.name.as_str().into_sql::<Text>(),
                        row.created_at.into_sql::<UtcTimestamp>(),
                    )),
            )
            .into_columns((
                folders::id,
                folders::user_id,
                folders::name,
                folders::created_at,
            ))
            .execute(conn))?;
        Ok(created > 0)
    }

    fn find(&self, id: FolderId) -> Result<Option<Folder>, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let row = with_connection!(self, |conn| folders::table
            .find(id)
            .select(FolderRow::as_select())
            .first::<FolderRow>(conn)
            .optional())?;
        Ok(row.map(Folder::from))
    }

    fn list_for_owner(&self, owner: Session) -> Result<Vec<Folder>, RepositoryError> {
        let (generation, owner) = (owner.generation, DbUuid(owner.user.as_uuid()));
        let rows = with_connection!(self, |conn| folders::table
            .inner_join(users::table)
            .filter(folders::user_id.eq(owner))
            .filter(users::token_generation.eq(generation))
            .order((folders::created_at.asc(), folders::id.asc()))
            .select(FolderRow::as_select())
            .load::<FolderRow>(conn))?;
        Ok(rows.into_iter().map(Folder::from).collect())
    }

    fn rename(&self, id: FolderId, name: &FolderName) -> Result<bool, RepositoryError> {
        let (id, name) = (DbUuid(id.as_uuid()), name.as_str());
        let updated = with_writer!(self, |conn| diesel::update(folders::table.find(id))
            .set(folders::name.eq(name))
            .execute(conn))?;
        Ok(updated > 0)
    }

    fn delete(&self, id: FolderId) -> Result<bool, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        // Its chats stay, in no folder (ON DELETE SET NULL), in the same statement.
        let deleted = with_writer!(self, |conn| diesel::delete(folders::table.find(id))
            .execute(conn))?;
        Ok(deleted > 0)
    }
}

use diesel::prelude::*;
use memlayer_domain::{Email, PasswordHash, Session, User, UserId};
use memlayer_ports::{CreateUserError, RepositoryError, UserRepository};

use super::rows::UserRow;
use super::schema::users;
use super::sql_types::DbUuid;
use super::{Database, with_connection, with_writer};

impl UserRepository for Database {
    fn create(&self, user: &User) -> Result<(), CreateUserError> {
        let row = UserRow::from(user);
        match with_writer!(self, |conn| diesel::insert_into(users::table)
            .values(&row)
            .execute(conn))
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_unique_violation() => Err(CreateUserError::EmailTaken),
            Err(error) => Err(RepositoryError::from(error).into()),
        }
    }

    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        let email = email.as_str();
        let row = with_connection!(self, |conn| users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(conn)
            .optional())?;
        Ok(row.map(User::from))
    }

    fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let row = with_connection!(self, |conn| users::table
            .find(id)
            .select(UserRow::as_select())
            .first(conn)
            .optional())?;
        Ok(row.map(User::from))
    }

    fn is_current(&self, session: Session) -> Result<bool, RepositoryError> {
        let (id, generation) = (DbUuid(session.user.as_uuid()), session.generation);
        Ok(with_connection!(self, |conn| diesel::select(
            diesel::dsl::exists(
                users::table
                    .find(id)
                    .filter(users::token_generation.eq(generation))
            )
        )
        .get_result(conn))?)
    }

    fn token_generations(&self, ids: &[UserId]) -> Result<Vec<(UserId, i64)>, RepositoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<DbUuid> = ids.iter().map(|id| DbUuid(id.as_uuid())).collect();
        let found: Vec<(DbUuid, i64)> = with_connection!(self, |conn| users::table
            .filter(users::id.eq_any(&ids))
            .select((users::id, users::token_generation))
            .load(conn))?;
        Ok(found
            .into_iter()
            .map(|(id, generation)| (UserId::from_uuid(id.0), generation))
            .collect())
    }

    fn revoke_tokens(
        &self,
        session: Session,
        new_hash: Option<&PasswordHash>,
    ) -> Result<Option<i64>, RepositoryError> {
        let (id, generation) = (DbUuid(session.user.as_uuid()), session.generation);
        let new_hash = new_hash.map(|hash| hash.as_str().to_owned());
        // Conditional on the generation, so two revocations racing cannot both succeed
        // from the same session, and a revoked session cannot revoke again.
        let updated = with_writer!(self, |conn| {
            let target = users::table
                .find(id)
                .filter(users::token_generation.eq(generation));
            match &new_hash {
                Some(hash) => diesel::update(target)
                    .set((
                        users::token_generation.eq(users::token_generation + 1),
                        users::password_hash.eq(hash),
                    ))
                    .execute(conn),
                None => diesel::update(target)
                    .set(users::token_generation.eq(users::token_generation + 1))
                    .execute(conn),
            }
        })?;
        Ok((updated > 0).then_some(generation + 1))
    }

    fn delete(&self, session: Session) -> Result<bool, RepositoryError> {
        let (id, generation) = (DbUuid(session.user.as_uuid()), session.generation);
        // Chats and messages go with it (ON DELETE CASCADE), in the same statement.
        let deleted = with_writer!(self, |conn| diesel::delete(
            users::table
                .find(id)
                .filter(users::token_generation.eq(generation))
        )
        .execute(conn))?;
        Ok(deleted > 0)
    }
}

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use memlayer_domain::{Email, User, UserId};
use memlayer_ports::{CreateUserError, RepositoryError, UserRepository};

use super::rows::UserRow;
use super::schema::users;
use super::sql_types::DbUuid;
use super::{Database, DbError, with_connection};

impl UserRepository for Database {
    fn create(&self, user: &User) -> Result<(), CreateUserError> {
        let row = UserRow::from(user);
        match with_connection!(self, |conn| diesel::insert_into(users::table)
            .values(&row)
            .execute(conn))
        {
            Ok(_) => Ok(()),
            Err(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            ))) => Err(CreateUserError::EmailTaken),
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

    fn exists(&self, id: UserId) -> Result<bool, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        Ok(with_connection!(self, |conn| diesel::select(
            diesel::dsl::exists(users::table.find(id))
        )
        .get_result(conn))?)
    }
}

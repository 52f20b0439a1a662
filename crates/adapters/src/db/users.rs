use diesel::prelude::*;
use memlayer_domain::{
    AccountRole, Cursor, Email, MessageStatus, PasswordHash, Session, UsageDay, User, UserId,
};
use memlayer_ports::{
    AccountChange, AccountChangeError, AccountSummary, CreateUserError, RepositoryError,
    UserRepository,
};

use super::rows::{UserRow, read_tokens, stored_tokens};
use super::schema::{chats, messages, token_usage, users};
use super::sql_types::DbUuid;
use super::{Database, position, with_connection, with_writer};

/// The columns an [`AccountChange`] sets in one statement; `None` leaves a column as it
/// is. Disabling is not here: it also revokes the tokens and stops the replies.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChanges {
    role: Option<&'static str>,
    token_limit: Option<Option<i64>>,
    disabled: Option<bool>,
}

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

    fn delete(&self, session: Session) -> Result<bool, AccountChangeError> {
        let (id, generation) = (DbUuid(session.user.as_uuid()), session.generation);
        // Chats and messages go with it (ON DELETE CASCADE), in the same statement.
        with_writer!(self, |conn| conn.transaction(|conn| {
            let current: i64 = users::table
                .find(id)
                .filter(users::token_generation.eq(generation))
                .count()
                .get_result(conn)?;
            if current == 0 {
                return Ok(Ok(false));
            }
            if conn.is_last_admin(id)? {
                return Ok(Err(AccountChangeError::LastAdmin));
            }
            // Still current: a revocation may have committed while this one waited.
            let deleted = diesel::delete(
                users::table
                    .find(id)
                    .filter(users::token_generation.eq(generation)),
            )
            .execute(conn)?;
            Ok(Ok(deleted > 0))
        }))
        .map_err(RepositoryError::from)?
    }

    fn list(
        &self,
        email_contains: Option<&str>,
        after: Option<Cursor>,
        limit: u32,
        day: UsageDay,
    ) -> Result<Vec<AccountSummary>, RepositoryError> {
        // Emails are stored normalised (lower case); so is the text searched for.
        let pattern = email_contains.map(|text| format!("%{}%", escape_like(text)));
        let after = after.map(position);
        let found = with_connection!(self, |conn| {
            let mut query = users::table
                .order((users::created_at.desc(), users::id.desc()))
                .limit(i64::from(limit))
                .select(UserRow::as_select())
                .into_boxed();
            if let Some(pattern) = &pattern {
                query = query.filter(users::email.like(pattern).escape('\\'));
            }
            if let Some((at, id)) = after {
                query = query.filter(
                    users::created_at
                        .le(at)
                        .and(users::created_at.lt(at).or(users::id.lt(id))),
                );
            }
            let rows: Vec<UserRow> = query.load(conn)?;
            conn.summaries(rows, day)
        })?;
        Ok(found)
    }

    fn summary(
        &self,
        id: UserId,
        day: UsageDay,
    ) -> Result<Option<AccountSummary>, RepositoryError> {
        let id = DbUuid(id.as_uuid());
        let found = with_connection!(self, |conn| {
            let rows: Vec<UserRow> = users::table
                .find(id)
                .select(UserRow::as_select())
                .load(conn)?;
            conn.summaries(rows, day)
        })?;
        Ok(found.into_iter().next())
    }

    fn change(
        &self,
        id: UserId,
        change: &AccountChange,
    ) -> Result<Option<User>, AccountChangeError> {
        let id = DbUuid(id.as_uuid());
        let change = *change;
        with_writer!(self, |conn| conn.transaction(|conn| {
            let removes_admin =
                change.role == Some(AccountRole::User) || change.disabled == Some(true);
            if removes_admin && conn.is_last_admin(id)? {
                return Ok(Err(AccountChangeError::LastAdmin));
            }
            let target = users::table.find(id);
            // Role, limit and enabling in one statement; disabling in its own, below.
            let changes = UserChanges {
                role: change.role.map(AccountRole::as_str),
                token_limit: change.token_limit.map(|limit| limit.map(stored_tokens)),
                disabled: (change.disabled == Some(false)).then_some(false),
            };
            if changes.role.is_some() || changes.token_limit.is_some() || changes.disabled.is_some()
            {
                diesel::update(target).set(&changes).execute(conn)?;
            }
            if change.disabled == Some(true) {
                // Disabling revokes every token, only when it changes something
                // (disabling twice revokes once), and stops its replies.
                diesel::update(target.filter(users::disabled.eq(false)))
                    .set((
                        users::disabled.eq(true),
                        users::token_generation.eq(users::token_generation + 1),
                    ))
                    .execute(conn)?;
                diesel::update(
                    messages::table
                        .filter(messages::user_id.eq(id))
                        .filter(messages::status.eq(MessageStatus::Generating.as_str())),
                )
                .set(messages::stop_requested.eq(true))
                .execute(conn)?;
            }
            let row: Option<UserRow> =
                target.select(UserRow::as_select()).first(conn).optional()?;
            Ok(Ok(row.map(User::from)))
        }))
        .map_err(RepositoryError::from)?
    }

    fn delete_by_id(&self, id: UserId) -> Result<bool, AccountChangeError> {
        let id = DbUuid(id.as_uuid());
        with_writer!(self, |conn| conn.transaction(|conn| {
            if conn.is_last_admin(id)? {
                return Ok(Err(AccountChangeError::LastAdmin));
            }
            let deleted = diesel::delete(users::table.find(id)).execute(conn)?;
            Ok(Ok(deleted > 0))
        }))
        .map_err(RepositoryError::from)?
    }
}

/// `text` for a `LIKE` pattern (escaped with `\`): its `%` and `_` match themselves.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The statements on accounts that differ by backend, or that several take.
trait AccountQueries {
    /// Whether `id` is the last enabled admin. Changes that could remove one take
    /// turns first: on PostgreSQL a transaction-scoped advisory lock, held to the
    /// commit, so two admins demoting each other at once cannot both succeed; SQLite's
    /// writes take turns anyway.
    fn is_last_admin(&mut self, id: DbUuid) -> QueryResult<bool>;
    /// The accounts of `rows`, in their order, each with its number of chats and its
    /// tokens of `day` (two queries for the whole page).
    fn summaries(&mut self, rows: Vec<UserRow>, day: UsageDay) -> QueryResult<Vec<AccountSummary>>;
}

/// Any number that identifies the admins' lock among the advisory locks.
const ADMINS_LOCK: i64 = 7_240_414_019;

macro_rules! account_queries {
    ($conn:ty, $take_turns:expr) => {
        impl AccountQueries for $conn {
            fn is_last_admin(&mut self, id: DbUuid) -> QueryResult<bool> {
                $take_turns(self)?;
                let admins: Vec<DbUuid> = users::table
                    .filter(users::role.eq(AccountRole::Admin.as_str()))
                    .filter(users::disabled.eq(false))
                    .select(users::id)
                    .limit(2)
                    .load(self)?;
                Ok(admins == [id])
            }

            fn summaries(
                &mut self,
                rows: Vec<UserRow>,
                day: UsageDay,
            ) -> QueryResult<Vec<AccountSummary>> {
                let ids: Vec<DbUuid> = rows.iter().map(|row| row.id).collect();
                let chats: Vec<(DbUuid, i64)> = chats::table
                    .filter(chats::user_id.eq_any(&ids))
                    .group_by(chats::user_id)
                    .select((chats::user_id, diesel::dsl::count_star()))
                    .load(self)?;
                let tokens: Vec<(DbUuid, i64)> = token_usage::table
                    .filter(token_usage::user_id.eq_any(&ids))
                    .filter(token_usage::day.eq(day.0))
                    .select((token_usage::user_id, token_usage::tokens))
                    .load(self)?;
                let of = |pairs: &[(DbUuid, i64)], id: DbUuid| {
                    pairs
                        .iter()
                        .find(|(of, _)| *of == id)
                        .map_or(0, |(_, n)| read_tokens(*n))
                };
                Ok(rows
                    .into_iter()
                    .map(|row| AccountSummary {
                        chats: of(&chats, row.id),
                        tokens_used: of(&tokens, row.id),
                        user: User::from(row),
                    })
                    .collect())
            }
        }
    };
}

account_queries!(diesel::PgConnection, |conn: &mut diesel::PgConnection| {
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({ADMINS_LOCK})"))
        .execute(conn)
        .map(drop)
});
account_queries!(
    diesel::SqliteConnection,
    |_: &mut diesel::SqliteConnection| { QueryResult::Ok(()) }
);

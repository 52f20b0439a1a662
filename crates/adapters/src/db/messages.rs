//! The messages of each chat, as a tree: storing them (and moving the chat's active
//! leaf in the same unit of work), reading a path or the whole tree page by page, and
//! deleting a subtree.

use std::collections::HashMap;

use diesel::connection::Connection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use memlayer_domain::{
    ChatId, Cursor, Message, MessageId, Node, PathEnd, PathWalk, Session, newest_leaf_below,
    newest_leaf_of_chat, subtree,
};
use memlayer_ports::{MessageRepository, RepositoryError};

use super::connection::{self, Pool};
use super::position;
use super::rows::{MessageRow, NodeRow};
use super::schema::{chats, messages, token_usage, users};
use super::sql_types::{DbTimestamp, DbUuid, UtcTimestamp, Uuid};
use super::{Database, DbError, with_connection, with_writer};

diesel::define_sql_function! {
    /// SQL's `substr(text, start, length)`, in characters on PostgreSQL and SQLite.
    fn substr(text: Text, start: Integer, length: Integer) -> Text;
}

/// A question and its reply stored in one statement on PostgreSQL, only in the session
/// user's chat while the session is current: the question follows the chat's active
/// leaf, the reply follows the question and becomes the active leaf. One row updated if
/// stored, none if not.
///
/// A query type of its own rather than a `sql_query`, so that Diesel keeps it prepared
/// on each connection (it never caches a `sql_query`): planning this statement again on
/// every post cost about as much as running it.
struct Exchange<'a> {
    user: DbUuid,
    generation: i64,
    question: &'a MessageRow,
    reply: &'a MessageRow,
}

impl QueryId for Exchange<'_> {
    type QueryId = Exchange<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for Exchange<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (question, reply) = (self.question, self.reply);
        out.push_sql(
            "WITH chat AS (SELECT chats.id, chats.active_message_id FROM chats \
             JOIN users ON users.id = chats.user_id WHERE chats.id = ",
        );
        out.push_bind_param::<Uuid, _>(&question.chat_id)?;
        out.push_sql(" AND chats.user_id = ");
        out.push_bind_param::<Uuid, _>(&self.user)?;
        out.push_sql(" AND users.token_generation = ");
        out.push_bind_param::<BigInt, _>(&self.generation)?;
        out.push_sql(
            " AND NOT EXISTS (SELECT 1 FROM messages AS generating \
             WHERE generating.chat_id = chats.id AND generating.status = 'generating')\
             ), question AS (INSERT INTO messages \
             (id, chat_id, user_id, role, content, created_at, parent_id, status) SELECT ",
        );
        out.push_bind_param::<Uuid, _>(&question.id)?;
        out.push_sql(", chat.id, ");
        out.push_bind_param::<Uuid, _>(&self.user)?;
        out.push_sql(", 'user', ");
        out.push_bind_param::<Text, _>(&question.content)?;
        out.push_sql(", ");
        out.push_bind_param::<UtcTimestamp, _>(&question.created_at)?;
        out.push_sql(
            ", chat.active_message_id, 'complete' FROM chat RETURNING id, chat_id, user_id), \
             reply AS (INSERT INTO messages \
             (id, chat_id, user_id, role, content, created_at, parent_id, status) SELECT ",
        );
        out.push_bind_param::<Uuid, _>(&reply.id)?;
        out.push_sql(", question.chat_id, question.user_id, 'assistant', ");
        out.push_bind_param::<Text, _>(&reply.content)?;
        out.push_sql(", ");
        out.push_bind_param::<UtcTimestamp, _>(&reply.created_at)?;
        out.push_sql(
            ", question.id, 'complete' FROM question RETURNING id, chat_id) \
             UPDATE chats SET active_message_id = reply.id FROM reply \
             WHERE chats.id = reply.chat_id",
        );
        Ok(())
    }
}

impl RunQueryDsl<diesel::PgConnection> for Exchange<'_> {}

/// Rows read at a time while walking a path, beyond the page itself.
const WALK_BATCH: u32 = 256;

/// Ids deleted per statement: within SQLite's limit on bound parameters.
const DELETE_CHUNK: usize = 500;

pub(super) fn db_id(id: MessageId) -> DbUuid {
    DbUuid(id.as_uuid())
}

/// A row as a message, inside a query's closure (a bad row fails the query).
pub(super) fn to_message(row: MessageRow) -> QueryResult<Message> {
    Message::try_from(row).map_err(|error| DieselError::DeserializationError(error.into()))
}

/// Whether a statement failed on a foreign key: the chat (or the parent) it refers to
/// was deleted meanwhile.
pub(super) fn is_gone(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            _
        ))
    )
}

/// Whether a unit of work lost a race with another on the same chat, and is worth
/// doing again from the start: a row it refers to was deleted meanwhile, or PostgreSQL
/// chose it to break a deadlock or a serialization conflict.
fn lost_a_race(error: &DbError) -> bool {
    is_gone(error)
        || matches!(error, DbError::Query(DieselError::DatabaseError(kind, info))
            if matches!(kind, DatabaseErrorKind::SerializationFailure)
                || info.message().contains("deadlock detected"))
}

/// How many times a unit of work that lost a race ([`lost_a_race`]) is tried in all.
const TRIES: u32 = 3;

/// Runs `work` until it does not lose a race, at most [`TRIES`] times.
pub(super) fn retried<T>(mut work: impl FnMut() -> Result<T, DbError>) -> Result<T, DbError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match work() {
            Err(error) if tries < TRIES && lost_a_race(&error) => continue,
            done => return done,
        }
    }
}

impl MessageRepository for Database {
    fn append(&self, message: &Message) -> Result<Option<Vec<MessageId>>, RepositoryError> {
        let row = MessageRow::from(message);
        let (chat, id, parent) = (row.chat_id, row.id, row.parent_id);
        let stored = retried(|| {
            with_writer!(self, |conn| conn.transaction(|conn| {
                conn.lock_chat(chat)?;
                diesel::insert_into(messages::table)
                    .values(&row)
                    .execute(conn)?;
                diesel::update(chats::table.find(chat))
                    .set(chats::active_message_id.eq(Some(id)))
                    .execute(conn)?;
                conn.siblings(chat, parent)
            }))
        });
        match stored {
            Ok(siblings) => Ok(Some(siblings)),
            Err(error) if is_gone(&error) => Ok(None),
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
        // stored only if the chat is the session's and its tokens are current; the
        // question follows the chat's active leaf as that row has it.
        let generating = diesel::alias!(messages as generating);
        let owned = |row: &MessageRow, follows_active: bool| {
            let parent = row.parent_id.into_sql::<Nullable<Uuid>>();
            chats::table
                .inner_join(users::table)
                .filter(chats::id.eq(row.chat_id))
                .filter(chats::user_id.eq(user))
                .filter(users::token_generation.eq(generation))
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    generating
                        .filter(generating.field(messages::chat_id).eq(chats::id))
                        .filter(generating.field(messages::status).eq("generating")),
                )))
                .select((
                    row.id.into_sql::<Uuid>(),
                    chats::id,
                    chats::user_id,
                    row.role.clone().into_sql::<Text>(),
                    row.content.clone().into_sql::<Text>(),
                    row.created_at.into_sql::<UtcTimestamp>(),
                    diesel::dsl::case_when(
                        follows_active.into_sql::<diesel::sql_types::Bool>(),
                        chats::active_message_id,
                    )
                    .otherwise(parent),
                    row.status.clone().into_sql::<Text>(),
                ))
        };
        let (reply_id, chat) = (reply.id, question.chat_id);
        let stored = retried(|| match self.pool() {
            // One statement, one round trip: the question follows the chat's active leaf,
            // the reply follows the question and becomes the active leaf. Two racing
            // posts both read the same leaf (siblings); the one stored last is active.
            Pool::Postgres(pool) => connection::run(pool, |conn| {
                Exchange {
                    user,
                    generation,
                    question: &question,
                    reply: &reply,
                }
                .execute(conn)
                .map(|updated| updated > 0)
            }),
            // One writer, in-process: a transaction of two statements costs no round
            // trip.
            Pool::Sqlite { writer, .. } => writer.write(|conn| {
                conn.transaction(|conn| {
                    let stored = diesel::insert_into(messages::table)
                        .values(owned(&question, true).union_all(owned(&reply, false)))
                        .into_columns((
                            messages::id,
                            messages::chat_id,
                            messages::user_id,
                            messages::role,
                            messages::content,
                            messages::created_at,
                            messages::parent_id,
                            messages::status,
                        ))
                        .execute(conn)?;
                    if stored > 0 {
                        diesel::update(chats::table.find(chat))
                            .set(chats::active_message_id.eq(Some(reply_id)))
                            .execute(conn)?;
                    }
                    Ok(stored > 0)
                })
            }),
        });
        match stored {
            Ok(stored) => Ok(stored),
            // The chat (or its active leaf) was deleted while the statement ran.
            Err(error) if is_gone(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    fn path(
        &self,
        owner: Option<Session>,
        chat: ChatId,
        end: Option<PathEnd>,
        limit: u32,
        chars_each: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        // Both databases count `substr`'s start and length in characters.
        let chars = i32::try_from(chars_each).unwrap_or(i32::MAX);
        let path = with_connection!(self, |conn| {
            // From the chat's newest message down, in batches: the path's messages and
            // every sibling of theirs are among what the walk meets before it is done.
            let mut walk = end.map(|end| PathWalk::new(end, limit_of(limit)));
            let mut after: Option<(DbTimestamp, DbUuid)> = None;
            let mut batch = limit.saturating_add(2);
            loop {
                // The chat's active leaf and the ownership check are subqueries of their
                // own, evaluated once, not joined to every row.
                let active = chats::table
                    .filter(chats::id.eq(chat))
                    .select(chats::active_message_id)
                    .single_value();
                let mut query = messages::table
                    .filter(messages::chat_id.eq(chat))
                    .order((messages::created_at.desc(), messages::id.desc()))
                    .limit(i64::from(batch))
                    .select((
                        (
                            messages::id,
                            messages::chat_id,
                            messages::user_id,
                            messages::role,
                            substr(messages::content, 1, chars),
                            messages::created_at,
                            messages::parent_id,
                            messages::status,
                            messages::prompt_tokens,
                            messages::completion_tokens,
                            messages::usage_estimated,
                        ),
                        active,
                    ))
                    .into_boxed();
                if let Some(owner) = owner {
                    // The ownership and revocation checks ride on the read.
                    query = query.filter(owned_by(chat, owner));
                }
                if let Some((at, id)) = after {
                    // `created_at <= at` is a bound of the index range; the rest filters
                    // the rows at `at` itself.
                    query = query.filter(
                        messages::created_at
                            .le(at)
                            .and(messages::created_at.lt(at).or(messages::id.lt(id))),
                    );
                }
                let rows: Vec<(MessageRow, Option<DbUuid>)> = query.load(conn)?;
                let read = rows.len();
                for (row, active) in rows {
                    after = Some((row.created_at, row.id));
                    let walk = match &mut walk {
                        Some(walk) => walk,
                        // Without an active leaf the chat should be empty; if it is not,
                        // its newest message is the best end there is.
                        None => walk.insert(PathWalk::new(
                            PathEnd::At(MessageId::from_uuid(active.unwrap_or(row.id).0)),
                            limit_of(limit),
                        )),
                    };
                    if walk.is_done() {
                        break;
                    }
                    walk.push(to_message(row)?);
                }
                let done = walk.as_ref().is_none_or(PathWalk::is_done);
                if done || read < usize::try_from(batch).unwrap_or(usize::MAX) {
                    break;
                }
                // What the path still lacks, with the parent of its oldest message;
                // a branched chat may need more than one more batch.
                let room = walk.as_ref().map_or(0, PathWalk::room);
                batch = WALK_BATCH.max(u32::try_from(room).unwrap_or(u32::MAX).saturating_add(2));
            }
            Ok(walk.map(PathWalk::finish).unwrap_or_default())
        })?;
        Ok(path)
    }

    fn list_oldest_first(
        &self,
        owner: Option<Session>,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let after = after.map(position);
        let page = with_connection!(self, |conn| {
            let mut query = messages::table
                .filter(messages::chat_id.eq(chat))
                .order((messages::created_at.asc(), messages::id.asc()))
                .limit(i64::from(limit))
                .select(MessageRow::as_select())
                .into_boxed();
            if let Some(owner) = owner {
                query = query.filter(owned_by(chat, owner));
            }
            if let Some((at, id)) = after {
                // As in `path`: a bound of the index range, then the ties.
                query = query.filter(
                    messages::created_at
                        .ge(at)
                        .and(messages::created_at.gt(at).or(messages::id.gt(id))),
                );
            }
            let rows: Vec<MessageRow> = query.load(conn)?;
            let mut page = rows
                .into_iter()
                .map(to_message)
                .collect::<QueryResult<Vec<_>>>()?;
            conn.with_siblings(chat, &mut page)?;
            Ok(page)
        })?;
        Ok(page)
    }

    fn find_message(
        &self,
        chat: ChatId,
        id: MessageId,
    ) -> Result<Option<Message>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        let found = with_connection!(self, |conn| {
            let row: Option<MessageRow> = messages::table
                .filter(messages::id.eq(db_id(id)))
                .filter(messages::chat_id.eq(chat))
                .select(MessageRow::as_select())
                .first(conn)
                .optional()?;
            match row {
                Some(row) => {
                    let mut found = vec![to_message(row)?];
                    conn.with_siblings(chat, &mut found)?;
                    Ok(found.pop())
                }
                None => Ok(None),
            }
        })?;
        Ok(found)
    }

    fn activate(
        &self,
        chat: ChatId,
        message: MessageId,
    ) -> Result<Option<MessageId>, RepositoryError> {
        let chat = DbUuid(chat.as_uuid());
        Ok(retried(|| {
            with_writer!(self, |conn| conn.transaction(|conn| {
                conn.lock_chat(chat)?;
                let below = conn.subtree_of(chat, db_id(message))?;
                if below.is_empty() {
                    return Ok(None);
                }
                let leaf = newest_leaf_below(message, &below);
                diesel::update(chats::table.find(chat))
                    .set(chats::active_message_id.eq(Some(db_id(leaf))))
                    .execute(conn)?;
                Ok(Some(leaf))
            }))
        })?)
    }

    fn delete_subtree(&self, chat: ChatId, message: MessageId) -> Result<bool, RepositoryError> {
        // A reply stored below the branch while it was being read makes the deletion of
        // its parent fail on the foreign key: read the branch again and retry.
        Ok(retried(|| self.try_delete_subtree(chat, message))?)
    }
}

impl Database {
    /// One attempt at [`MessageRepository::delete_subtree`].
    fn try_delete_subtree(&self, chat: ChatId, message: MessageId) -> Result<bool, DbError> {
        let chat = DbUuid(chat.as_uuid());
        with_writer!(self, |conn| conn.transaction(|conn| {
            conn.lock_chat(chat)?;
            let below = conn.subtree_of(chat, db_id(message))?;
            let Some(root) = below.iter().find(|node| node.id == message).copied() else {
                return Ok(false);
            };
            let doomed = subtree(message, &below);
            // Children before their parents: each statement leaves no message whose
            // parent is gone.
            for chunk in doomed.rchunks(DELETE_CHUNK) {
                let ids: Vec<DbUuid> = chunk.iter().rev().map(|&id| db_id(id)).collect();
                diesel::delete(messages::table.filter(messages::id.eq_any(ids))).execute(conn)?;
            }
            let active: Option<Option<DbUuid>> = chats::table
                .find(chat)
                .select(chats::active_message_id)
                .first(conn)
                .optional()?;
            let active = active.flatten().map(|id| MessageId::from_uuid(id.0));
            if active.is_none_or(|active| doomed.contains(&active)) {
                // What is left below the parent (for a first message: of the chat).
                let leaf = match root.parent_id {
                    Some(parent) => Some(newest_leaf_below(
                        parent,
                        &conn.subtree_of(chat, db_id(parent))?,
                    )),
                    None => newest_leaf_of_chat(&conn.nodes_of(chat)?),
                };
                diesel::update(chats::table.find(chat))
                    .set(chats::active_message_id.eq(leaf.map(db_id)))
                    .execute(conn)?;
            }
            Ok(true)
        }))
    }
}

/// Whether `chat` is `owner`'s and `owner` is current (the account's token generation):
/// the ownership and revocation check a read of a chat's messages carries with it.
#[diesel::dsl::auto_type(no_type_alias)]
fn owned_by(chat: DbUuid, owner: Session) -> _ {
    let user: DbUuid = DbUuid(owner.user.as_uuid());
    let generation: i64 = owner.generation;
    diesel::dsl::exists(
        chats::table
            .inner_join(users::table)
            .filter(chats::id.eq(chat))
            .filter(chats::user_id.eq(user))
            .filter(users::token_generation.eq(generation)),
    )
}

/// A page size as a count.
fn limit_of(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The tree queries the repository's operations share, written once for both
/// backends (a connection of either runs them).
pub(super) trait TreeQueries {
    /// Every message of `chat` as a node of its tree.
    fn nodes_of(&mut self, chat: DbUuid) -> QueryResult<Vec<Node>>;
    /// `root` and every message below it in `chat`, as nodes (none if `root` is not a
    /// message of `chat`): a recursive walk down `messages_parent_id_idx`, as long as the
    /// subtree, not the chat.
    fn subtree_of(&mut self, chat: DbUuid, root: DbUuid) -> QueryResult<Vec<Node>>;
    /// The ids of the children of `parent` in `chat` (its first messages for `None`),
    /// oldest first.
    fn siblings(&mut self, chat: DbUuid, parent: Option<DbUuid>) -> QueryResult<Vec<MessageId>>;
    /// Fills in the sibling ids of `page`'s messages, all of `chat`.
    fn with_siblings(&mut self, chat: DbUuid, page: &mut [Message]) -> QueryResult<()>;
}

/// A message and everything below it (`$1` the message, `$2` its chat), in SQL both
/// databases speak.
const SUBTREE: &str = "\
WITH RECURSIVE below (id, parent_id, created_at) AS (
    SELECT id, parent_id, created_at FROM messages WHERE id = $1 AND chat_id = $2
    UNION ALL
    SELECT messages.id, messages.parent_id, messages.created_at
    FROM messages JOIN below ON messages.parent_id = below.id
)
SELECT id, parent_id, created_at FROM below";

/// A row of [`SUBTREE`].
#[derive(QueryableByName)]
struct SubtreeRow {
    #[diesel(sql_type = Uuid)]
    id: DbUuid,
    #[diesel(sql_type = Nullable<Uuid>)]
    parent_id: Option<DbUuid>,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DbTimestamp,
}

macro_rules! tree_queries {
    ($($connection:ty),+) => {$(
        impl TreeQueries for $connection {
            fn nodes_of(&mut self, chat: DbUuid) -> QueryResult<Vec<Node>> {
                let rows: Vec<NodeRow> = messages::table
                    .filter(messages::chat_id.eq(chat))
                    .order((messages::created_at.asc(), messages::id.asc()))
                    .select(NodeRow::as_select())
                    .load(self)?;
                Ok(rows.into_iter().map(Node::from).collect())
            }

            fn subtree_of(&mut self, chat: DbUuid, root: DbUuid) -> QueryResult<Vec<Node>> {
                let rows: Vec<SubtreeRow> = diesel::sql_query(SUBTREE)
                    .bind::<Uuid, _>(root)
                    .bind::<Uuid, _>(chat)
                    .load(self)?;
                Ok(rows
                    .into_iter()
                    .map(|row| Node {
                        id: MessageId::from_uuid(row.id.0),
                        parent_id: row.parent_id.map(|id| MessageId::from_uuid(id.0)),
                        created_at: row.created_at.0,
                    })
                    .collect())
            }

            fn siblings(
                &mut self,
                chat: DbUuid,
                parent: Option<DbUuid>,
            ) -> QueryResult<Vec<MessageId>> {
                let query = messages::table
                    .filter(messages::chat_id.eq(chat))
                    .order((messages::created_at.asc(), messages::id.asc()))
                    .select(messages::id)
                    .into_boxed();
                let query = match parent {
                    Some(parent) => query.filter(messages::parent_id.eq(parent)),
                    None => query.filter(messages::parent_id.is_null()),
                };
                let ids: Vec<DbUuid> = query.load(self)?;
                Ok(ids.into_iter().map(|id| MessageId::from_uuid(id.0)).collect())
            }

            fn with_siblings(&mut self, chat: DbUuid, page: &mut [Message]) -> QueryResult<()> {
                if page.is_empty() {
                    return Ok(());
                }
                let mut parents: Vec<Option<DbUuid>> = page
                    .iter()
                    .filter_map(|message| message.parent_id.map(|id| Some(db_id(id))))
                    .collect();
                parents.sort_unstable_by_key(|id| id.map(|id| id.0));
                parents.dedup();
                let roots = page.iter().any(|message| message.parent_id.is_none());
                let mut query = messages::table
                    .filter(messages::chat_id.eq(chat))
                    .order((messages::created_at.asc(), messages::id.asc()))
                    .select(NodeRow::as_select())
                    .into_boxed();
                query = if roots {
                    query.filter(
                        messages::parent_id
                            .eq_any(parents)
                            .or(messages::parent_id.is_null()),
                    )
                } else {
                    query.filter(messages::parent_id.eq_any(parents))
                };
                let rows: Vec<NodeRow> = query.load(self)?;
                let mut children: HashMap<Option<MessageId>, Vec<MessageId>> = HashMap::new();
                for node in rows.into_iter().map(Node::from) {
                    children.entry(node.parent_id).or_default().push(node.id);
                }
                for message in page {
                    if let Some(group) = children.get(&message.parent_id) {
                        message.sibling_ids.clone_from(group);
                    }
                }
                Ok(())
            }
        }
    )+};
}

tree_queries!(diesel::PgConnection, diesel::SqliteConnection);

/// What starting a reply checks of its user: their own daily token limit, whether the
/// account is disabled, and the tokens spent on the day.
pub(super) type UserLimits = (Option<i64>, bool, Option<i64>);

/// The columns of [`UserLimits`], the day's tokens as a subquery (so a row lock taken
/// with them is the user's row's alone).
#[diesel::dsl::auto_type]
fn user_limits(user: DbUuid, day: i64) -> _ {
    let spent: diesel::dsl::Find<token_usage::table, (DbUuid, i64)> =
        token_usage::table.find((user, day));
    (
        users::token_limit,
        users::disabled,
        spent.select(token_usage::tokens).single_value(),
    )
}

/// Serialising the tree operations of one chat, and the replies started for one user.
pub(super) trait LockChat {
    /// Takes the chat's row lock for the rest of the transaction, so the tree operations
    /// of one chat take turns and each reads the tree as the one before left it.
    fn lock_chat(&mut self, chat: DbUuid) -> QueryResult<()>;
    /// Takes the user's row lock (one that lets rows referring to it be written) for
    /// the rest of the transaction, so the starts of one user's replies take turns;
    /// reads with it, in the same statement, what the start checks: the user's own
    /// daily token limit, whether the account is disabled, and the tokens it spent on
    /// `day` (`None` without the user).
    fn lock_user(&mut self, user: DbUuid, day: i64) -> QueryResult<Option<UserLimits>>;
    /// Takes a share of the user's row lock (the one a row referring to it takes), so
    /// a unit of work that writes the user's messages and then their ledger locks in
    /// the order deleting the account does (its row, then its rows by cascade), not
    /// the other way round.
    fn share_user(&mut self, user: DbUuid) -> QueryResult<()>;
}

impl LockChat for diesel::PgConnection {
    fn lock_chat(&mut self, chat: DbUuid) -> QueryResult<()> {
        chats::table
            .find(chat)
            .select(chats::id)
            .for_update()
            .first::<DbUuid>(self)
            .optional()
            .map(drop)
    }

    fn lock_user(&mut self, user: DbUuid, day: i64) -> QueryResult<Option<UserLimits>> {
        users::table
            .find(user)
            .select(user_limits(user, day))
            .for_no_key_update()
            .first(self)
            .optional()
    }

    fn share_user(&mut self, user: DbUuid) -> QueryResult<()> {
        users::table
            .find(user)
            .select(users::id)
            .for_key_share()
            .first::<DbUuid>(self)
            .optional()
            .map(drop)
    }
}

impl LockChat for diesel::SqliteConnection {
    /// Nothing to take: SQLite's writes run one after the other on its one writer.
    fn lock_chat(&mut self, _chat: DbUuid) -> QueryResult<()> {
        Ok(())
    }

    /// Nothing to take, as for a chat: only the limit and the state to read.
    fn lock_user(&mut self, user: DbUuid, day: i64) -> QueryResult<Option<UserLimits>> {
        users::table
            .find(user)
            .select(user_limits(user, day))
            .first(self)
            .optional()
    }

    /// Nothing to take, as for a chat.
    fn share_user(&mut self, _user: DbUuid) -> QueryResult<()> {
        Ok(())
    }
}

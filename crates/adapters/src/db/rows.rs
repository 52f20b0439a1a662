//! Rows as stored, and their conversion to and from the domain.

use diesel::prelude::*;
use memlayer_domain::{
    AccountRole, Chat, ChatId, ChatTitle, Email, Folder, FolderId, FolderName, Message,
    MessageContent, MessageId, MessageStatus, Node, Organisation, PasswordHash, Role, TokenUsage,
    User, UserId,
};
use memlayer_ports::RepositoryError;

use super::schema::{chats, folders, messages, users};
use super::sql_types::{DbTimestamp, DbUuid};

/// A row of `users`.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: DbUuid,
    pub email: String,
    pub password_hash: String,
    pub created_at: DbTimestamp,
    pub token_generation: i64,
    pub role: String,
    pub disabled: bool,
    pub token_limit: Option<i64>,
}

impl From<&User> for UserRow {
    fn from(user: &User) -> Self {
        Self {
            id: DbUuid(user.id.as_uuid()),
            email: user.email.as_str().to_owned(),
            password_hash: user.password_hash.as_str().to_owned(),
            created_at: DbTimestamp(user.created_at),
            token_generation: user.token_generation,
            role: user.role.as_str().to_owned(),
            disabled: user.disabled,
            token_limit: user.token_limit.map(stored_tokens),
        }
    }
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId::from_uuid(row.id.0),
            email: Email::from_trusted(row.email),
            password_hash: PasswordHash::new(row.password_hash),
            created_at: row.created_at.0,
            token_generation: row.token_generation,
            // The column's check admits only the two.
            role: AccountRole::parse(&row.role).unwrap_or_default(),
            disabled: row.disabled,
            token_limit: row.token_limit.map(read_tokens),
        }
    }
}

/// Tokens as stored (SQL's signed 64-bit integer).
pub fn stored_tokens(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

/// Tokens as read back (never negative: the columns' checks).
pub fn read_tokens(tokens: i64) -> u64 {
    u64::try_from(tokens).unwrap_or(0)
}

/// A row of `chats`.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = chats)]
pub struct ChatRow {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub title: String,
    pub created_at: DbTimestamp,
    pub active_message_id: Option<DbUuid>,
    pub pinned: bool,
    pub archived: bool,
    pub folder_id: Option<DbUuid>,
}

impl From<&Chat> for ChatRow {
    fn from(chat: &Chat) -> Self {
        Self {
            id: DbUuid(chat.id.as_uuid()),
            user_id: DbUuid(chat.owner.as_uuid()),
            title: chat.title.as_str().to_owned(),
            created_at: DbTimestamp(chat.created_at),
            active_message_id: chat.active_message_id.map(|id| DbUuid(id.as_uuid())),
            pinned: chat.organisation.pinned,
            archived: chat.organisation.archived,
            folder_id: chat.organisation.folder.map(|id| DbUuid(id.as_uuid())),
        }
    }
}

impl From<ChatRow> for Chat {
    fn from(row: ChatRow) -> Self {
        Self {
            id: ChatId::from_uuid(row.id.0),
            owner: UserId::from_uuid(row.user_id.0),
            title: ChatTitle::from_trusted(row.title),
            created_at: row.created_at.0,
            active_message_id: row.active_message_id.map(|id| MessageId::from_uuid(id.0)),
            organisation: Organisation {
                pinned: row.pinned,
                archived: row.archived,
                folder: row.folder_id.map(|id| FolderId::from_uuid(id.0)),
            },
        }
    }
}

/// A row of `folders`.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = folders)]
pub struct FolderRow {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub name: String,
    pub created_at: DbTimestamp,
}

impl From<&Folder> for FolderRow {
    fn from(folder: &Folder) -> Self {
        Self {
            id: DbUuid(folder.id.as_uuid()),
            user_id: DbUuid(folder.owner.as_uuid()),
            name: folder.name.as_str().to_owned(),
            created_at: DbTimestamp(folder.created_at),
        }
    }
}

impl From<FolderRow> for Folder {
    fn from(row: FolderRow) -> Self {
        Self {
            id: FolderId::from_uuid(row.id.0),
            owner: UserId::from_uuid(row.user_id.0),
            name: FolderName::from_trusted(row.name),
            created_at: row.created_at.0,
        }
    }
}

/// A row of `messages`.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: DbUuid,
    pub chat_id: DbUuid,
    pub user_id: DbUuid,
    pub role: String,
    pub content: String,
    pub created_at: DbTimestamp,
    pub parent_id: Option<DbUuid>,
    pub status: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub usage_estimated: bool,
}

impl From<&Message> for MessageRow {
    fn from(message: &Message) -> Self {
        Self {
            id: DbUuid(message.id.as_uuid()),
            chat_id: DbUuid(message.chat_id.as_uuid()),
            user_id: DbUuid(message.user_id.as_uuid()),
            role: message.role.as_str().to_owned(),
            content: message.content.as_str().to_owned(),
            created_at: DbTimestamp(message.created_at),
            parent_id: message.parent_id.map(|id| DbUuid(id.as_uuid())),
            status: message.status.as_str().to_owned(),
            prompt_tokens: message
                .usage
                .map(|usage| stored_tokens(usage.prompt_tokens)),
            completion_tokens: message
                .usage
                .map(|usage| stored_tokens(usage.completion_tokens)),
            usage_estimated: message.usage.is_some_and(|usage| usage.estimated),
        }
    }
}

impl TryFrom<MessageRow> for Message {
    type Error = RepositoryError;

    /// The message, its sibling ids not read yet (only itself).
    fn try_from(row: MessageRow) -> Result<Self, Self::Error> {
        let role = Role::parse(&row.role).ok_or_else(|| {
            RepositoryError::Internal(
                format!("unknown role {:?} in message {}", row.role, row.id.0).into(),
            )
        })?;
        let status = MessageStatus::parse(&row.status).ok_or_else(|| {
            RepositoryError::Internal(
                format!("unknown status {:?} in message {}", row.status, row.id.0).into(),
            )
        })?;
        let id = MessageId::from_uuid(row.id.0);
        Ok(Self {
            id,
            chat_id: ChatId::from_uuid(row.chat_id.0),
            user_id: UserId::from_uuid(row.user_id.0),
            role,
            content: MessageContent::from_trusted(row.content),
            created_at: row.created_at.0,
            parent_id: row.parent_id.map(|id| MessageId::from_uuid(id.0)),
            status,
            sibling_ids: vec![id],
            usage: match (row.prompt_tokens, row.completion_tokens) {
                (Some(prompt), Some(completion)) => Some(TokenUsage {
                    prompt_tokens: read_tokens(prompt),
                    completion_tokens: read_tokens(completion),
                    estimated: row.usage_estimated,
                }),
                _ => None,
            },
        })
    }
}

/// A message's place in its chat's tree, as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct NodeRow {
    pub id: DbUuid,
    pub parent_id: Option<DbUuid>,
    pub created_at: DbTimestamp,
}

impl From<NodeRow> for Node {
    fn from(row: NodeRow) -> Self {
        Self {
            id: MessageId::from_uuid(row.id.0),
            parent_id: row.parent_id.map(|id| MessageId::from_uuid(id.0)),
            created_at: row.created_at.0,
        }
    }
}

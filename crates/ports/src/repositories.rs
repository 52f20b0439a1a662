use memlayer_domain::{Chat, ChatId, ChatTitle, Cursor, Email, Message, User, UserId};

use crate::error::{CreateUserError, RepositoryError};

/// Stores accounts.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait UserRepository: Send + Sync {
    /// Stores a new account; [`CreateUserError::EmailTaken`] if the email is in use.
    fn create(&self, user: &User) -> Result<(), CreateUserError>;
    /// The account with this (normalised) email, if any.
    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError>;
    /// The account with this id, if any.
    fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError>;
    /// Whether an account with this id exists.
    fn exists(&self, id: UserId) -> Result<bool, RepositoryError>;
}

/// Stores chats.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ChatRepository: Send + Sync {
    /// Stores a new chat. Its owner exists (the caller checked).
    fn create(&self, chat: &Chat) -> Result<(), RepositoryError>;
    /// The chat with this id, whoever owns it.
    fn find(&self, id: ChatId) -> Result<Option<Chat>, RepositoryError>;
    /// At most `limit` of the owner's chats, newest first (ties by id, descending),
    /// starting after `after` in that order.
    fn list_for_owner(
        &self,
        owner: UserId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError>;
    /// Sets a chat's title; `false` if the chat no longer exists.
    fn rename(&self, id: ChatId, title: &ChatTitle) -> Result<bool, RepositoryError>;
    /// Deletes a chat and its messages; `false` if it no longer existed.
    fn delete(&self, id: ChatId) -> Result<bool, RepositoryError>;
}

/// Stores messages.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait MessageRepository: Send + Sync {
    /// Appends a message to its chat; `false` if the chat no longer exists (deleted
    /// meanwhile), in which case nothing is stored.
    fn append(&self, message: &Message) -> Result<bool, RepositoryError>;
    /// At most `limit` of the chat's messages, newest first (ties by id, descending, so
    /// two reads always agree), starting after `after` in that order.
    fn list_for_chat(
        &self,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError>;
}

/// Whether storage can serve requests right now (the readiness probe).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait HealthCheck: Send + Sync {
    /// `Ok` when a round trip to the database succeeds.
    fn check(&self) -> Result<(), RepositoryError>;
}

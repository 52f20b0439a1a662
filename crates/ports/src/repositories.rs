use memlayer_domain::{
    Chat, ChatId, ChatTitle, Cursor, Email, Message, PasswordHash, Session, User, UserId,
};

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
    /// Whether `session` is current: its account exists and is still in the session's
    /// token generation.
    fn is_current(&self, session: Session) -> Result<bool, RepositoryError>;
    /// Revokes every token of the account, if `session` is current: raises its token
    /// generation by one and, with `new_hash`, sets a new password in the same
    /// statement. The new generation, or `None` if the session was not current (nothing
    /// changed).
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn revoke_tokens<'a>(
        &self,
        session: Session,
        new_hash: Option<&'a PasswordHash>,
    ) -> Result<Option<i64>, RepositoryError>;
    /// Deletes the account with its chats and messages, if `session` is current;
    /// `false` if it was not (nothing deleted).
    fn delete(&self, session: Session) -> Result<bool, RepositoryError>;
}

/// Stores chats.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ChatRepository: Send + Sync {
    /// Stores a new chat, only while its owner's token generation is still
    /// `owner_generation` (checked in the same statement); `false` if it is not (no such
    /// account, or its tokens were revoked), and nothing is stored.
    fn create(&self, chat: &Chat, owner_generation: i64) -> Result<bool, RepositoryError>;
    /// The chat with this id, whoever owns it, with its owner's current token
    /// generation (read in the same query, so checking that a token is still current
    /// costs no extra round trip).
    fn find(&self, id: ChatId) -> Result<Option<(Chat, i64)>, RepositoryError>;
    /// At most `limit` of the session user's chats, newest first (ties by id,
    /// descending), starting after `after` in that order; none at all if the session is
    /// not current (the account's token generation is checked in the same query).
    fn list_for_owner(
        &self,
        owner: Session,
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
    /// Appends a question and its reply to their chat together (both or neither), only
    /// if the chat is the session user's and the session is current (checked in the
    /// same statement); `false` if not, and nothing is stored.
    fn append_exchange(
        &self,
        owner: Session,
        question: &Message,
        reply: &Message,
    ) -> Result<bool, RepositoryError>;
    /// The chat's latest `limit` messages, newest first (ties by id, descending), each
    /// cut to its first `chars_each` characters by the database, so that a huge message
    /// never leaves storage whole: what the assistant sees of a chat.
    fn latest_in_chat(
        &self,
        chat: ChatId,
        limit: u32,
        chars_each: usize,
    ) -> Result<Vec<Message>, RepositoryError>;
    /// At most `limit` of the chat's messages, newest first (ties by id, descending, so
    /// two reads always agree), starting after `after` in that order, only if the chat
    /// is the session user's and the session is current (checked in the same query);
    /// none at all if not.
    fn list_if_owned(
        &self,
        owner: Session,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError>;
    /// At most `limit` of the chat's messages, oldest first (ties by id, ascending),
    /// starting after `after` in that order: for reading a whole chat page by page.
    fn list_for_chat_oldest_first(
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

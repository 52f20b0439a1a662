use memlayer_domain::ChatAccessError;
use memlayer_ports::{AccountChangeError, BoxError, RepositoryError, ResponderError, TokenError};
use thiserror::Error;

/// Why a use case did not succeed, in the domain's words.
#[derive(Debug, Error)]
pub enum AppError {
    /// Registration is closed: accounts are made by the operator.
    #[error("registration is closed")]
    RegistrationClosed,
    /// The account was disabled by an admin: it cannot log in.
    #[error("the account is disabled")]
    AccountDisabled,
    /// An admin route, asked by an account that is not an (enabled) admin.
    #[error("only admins may do this")]
    AdminsOnly,
    /// The change would leave no enabled admin.
    #[error("the last enabled admin cannot be removed")]
    LastAdmin,
    /// An admin route named an account that does not exist.
    #[error("no such account")]
    UserNotFound,
    /// The user spent their tokens for the UTC day (`USER_TOKENS_PER_DAY`, or their own
    /// limit).
    #[error("the day's tokens are spent")]
    DailyTokensSpent {
        /// How long until the next UTC day.
        retry_after: std::time::Duration,
    },
    /// Registration with an email that already has an account.
    #[error("the email already has an account")]
    EmailTaken,
    /// Login with an unknown email or a wrong password (deliberately the same error).
    #[error("unknown email or wrong password")]
    InvalidCredentials,
    /// A password given to confirm an action (changing the password, deleting the
    /// account) is not the account's.
    #[error("the confirming password is wrong")]
    WrongPassword,
    /// No valid token, or its account no longer exists, or its tokens were revoked.
    #[error("no valid token, or its account was deleted or its tokens revoked")]
    Unauthenticated,
    /// The chat does not exist.
    #[error("no such chat")]
    ChatNotFound,
    /// The chat exists and belongs to another user.
    #[error("the chat belongs to another user")]
    NotChatOwner,
    /// The chat has no such message.
    #[error("no such message in the chat")]
    MessageNotFound,
    /// Only a user's message can be edited, not the assistant's.
    #[error("the message to edit is the assistant's")]
    NotAUserMessage,
    /// A reply is generating in the chat: it must end (or be stopped) first.
    #[error("a reply is generating in the chat")]
    ReplyInProgress,
    /// The user has as many replies generating as they may (`USER_MAX_GENERATIONS`).
    #[error("the user has as many replies generating as they may")]
    TooManyRepliesAtOnce,
    /// A reply was asked for (to resume or stop) on a user's message.
    #[error("the message is not the assistant's")]
    NotAReply,
    /// The folder does not exist.
    #[error("no such folder")]
    FolderNotFound,
    /// The folder exists and belongs to another user.
    #[error("the folder belongs to another user")]
    NotFolderOwner,
    /// A chat was to be filed in a folder that does not exist or is not the user's.
    #[error("no such folder of the user's to file the chat in")]
    FolderNotUsable,
    /// The client used up its budget of credential attempts.
    #[error("the client's budget of attempts is used up")]
    TooManyAttempts {
        /// How long until its next attempt is admitted.
        retry_after: std::time::Duration,
    },
    /// The database cannot be reached right now.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// The assistant failed to answer; the user's message is stored.
    #[error("the assistant could not answer (the message is stored)")]
    AssistantFailed(#[source] ResponderError),
    /// A bug or an unexpected failure; the cause is for the log only.
    #[error("unexpected failure")]
    Internal(#[source] BoxError),
}

impl From<RepositoryError> for AppError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(cause) => Self::Unavailable(cause),
            RepositoryError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<AccountChangeError> for AppError {
    fn from(error: AccountChangeError) -> Self {
        match error {
            AccountChangeError::LastAdmin => Self::LastAdmin,
            AccountChangeError::Repository(error) => error.into(),
        }
    }
}

impl From<ChatAccessError> for AppError {
    fn from(error: ChatAccessError) -> Self {
        match error {
            ChatAccessError::NotFound => Self::ChatNotFound,
            ChatAccessError::Forbidden => Self::NotChatOwner,
        }
    }
}

impl From<TokenError> for AppError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid => Self::Unauthenticated,
            TokenError::Issue(cause) => Self::Internal(cause),
        }
    }
}

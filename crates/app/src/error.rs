use memlayer_domain::{ChatAccessError, ValidationErrors};
use memlayer_ports::{BoxError, RepositoryError, ResponderError, TokenError};
use thiserror::Error;

/// Why a use case did not succeed, in the domain's words.
#[derive(Debug, Error)]
pub enum AppError {
    /// The input broke a rule; every broken rule is listed.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// Registration with an email that already has an account.
    #[error("Email already registered")]
    EmailTaken,
    /// Login with an unknown email or a wrong password (deliberately the same error).
    #[error("Incorrect email or password")]
    InvalidCredentials,
    /// A password given to confirm an action (changing the password, deleting the
    /// account) is not the account's.
    #[error("Incorrect password")]
    WrongPassword,
    /// No valid token, or its account no longer exists, or its tokens were revoked.
    #[error("Could not validate credentials")]
    Unauthenticated,
    /// The chat does not exist.
    #[error("Chat not found")]
    ChatNotFound,
    /// The chat exists and belongs to another user.
    #[error("Not allowed to access this chat")]
    NotChatOwner,
    /// The database cannot be reached right now.
    #[error("Service temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// The assistant failed to answer; the user's message is stored.
    #[error("The assistant could not answer; your message was saved")]
    AssistantFailed(#[source] ResponderError),
    /// A bug or an unexpected failure; the cause is for the log only.
    #[error("Internal Server Error")]
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

impl From<ValidationErrors> for AppError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<memlayer_domain::ValidationError> for AppError {
    fn from(error: memlayer_domain::ValidationError) -> Self {
        Self::Invalid(error.into())
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

use thiserror::Error;

/// The cause of an unexpected failure, kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure that is not a business outcome.
#[derive(Debug, Error)]
pub enum RepositoryError {
    /// The database cannot be reached (no connection within the timeout, connection
    /// lost). Worth retrying later; the API answers 503.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else; the API answers 500 and logs the cause.
    #[error("unexpected storage error")]
    Internal(#[source] BoxError),
}

/// Why a user could not be stored.
#[derive(Debug, Error)]
pub enum CreateUserError {
    /// Another account already has this (normalised) email.
    #[error("email already registered")]
    EmailTaken,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

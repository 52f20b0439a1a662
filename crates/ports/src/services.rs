use chrono::{DateTime, Utc};
use memlayer_domain::{Chat, Message, MessageContent, Password, PasswordHash, UserId};
use thiserror::Error;

use crate::error::BoxError;

/// Hashes and checks passwords (slow on purpose: run it off the request threads, and
/// never while holding a database connection).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait PasswordHasher: Send + Sync {
    /// A salted hash of a password that passed the policy.
    fn hash(&self, password: &Password) -> Result<PasswordHash, BoxError>;
    /// Whether `password` matches `hash`. With `hash: None` (no such account) it checks
    /// against a dummy hash of the same cost and answers `false`, so that an unknown
    /// email costs as much time as a wrong password.
    #[allow(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn verify<'a>(
        &self,
        password: &Password,
        hash: Option<&'a PasswordHash>,
    ) -> Result<bool, BoxError>;
}

/// A signed access token (a JWT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken(pub String);

/// Why a token was not accepted.
#[derive(Debug, Error)]
pub enum TokenError {
    /// Malformed, badly signed, of another algorithm, expired, or missing a claim.
    #[error("invalid or expired token")]
    Invalid,
    /// The token could not be made.
    #[error("could not issue a token")]
    Issue(#[source] BoxError),
}

/// Issues access tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// A token for `user`, issued at `now`.
    fn issue(&self, user: UserId, now: DateTime<Utc>) -> Result<AccessToken, TokenError>;
}

/// Checks access tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TokenVerifier: Send + Sync {
    /// The user a valid, unexpired token was issued to.
    fn verify(&self, token: &str) -> Result<UserId, TokenError>;
}

/// The time.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC, at the storage resolution (microseconds).
    fn now(&self) -> DateTime<Utc>;
}

/// The responder failed to answer.
#[derive(Debug, Error)]
#[error("the assistant could not answer")]
pub struct ResponderError(#[source] pub BoxError);

/// Writes the assistant's reply to a user's message: the seam where the memory layer
/// (recall, an LLM) plugs in.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait AssistantResponder: Send + Sync {
    /// The reply to `message`, posted in `chat`.
    fn reply(&self, chat: &Chat, message: &Message) -> Result<MessageContent, ResponderError>;
}

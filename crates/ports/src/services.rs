use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use memlayer_domain::{Chat, Message, MessageContent, Password, PasswordHash, Session, TokenUsage};
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
    #[expect(
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
    /// A token for `session` (a user, in their current token generation), issued at `now`.
    fn issue(&self, session: Session, now: DateTime<Utc>) -> Result<AccessToken, TokenError>;
}

/// Checks access tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TokenVerifier: Send + Sync {
    /// The session a valid, unexpired token was issued for. Whether that session is
    /// still current (not revoked) is for the use cases to check against storage.
    fn verify(&self, token: &str) -> Result<Session, TokenError>;
}

/// The time.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC, at the storage resolution (microseconds).
    fn now(&self) -> DateTime<Utc>;
}

/// Why the assistant could not (finish its) answer.
#[derive(Debug, Error)]
pub enum ResponderError {
    /// The model server could not be reached, or refused the request (an error status).
    #[error("the assistant's model server refused or could not be reached")]
    Unavailable(#[source] BoxError),
    /// The model server went quiet for longer than the configured timeout.
    #[error("the assistant's model server timed out")]
    TimedOut(#[source] BoxError),
    /// The answer broke off, or came in a form that could not be read.
    #[error("the assistant's answer broke off")]
    Broken(#[source] BoxError),
    /// The answer reached the most a reply may be (`ASSISTANT_MAX_REPLY_CHARS`): what
    /// came before is the reply, cut there; the stream ends after this.
    #[error("the assistant's answer reached the longest a reply may be")]
    LimitReached,
}

/// What an answer's stream carries: its text, piece by piece, and, when the model
/// server reports it (once, before the end), the tokens the answer took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyPiece {
    /// The next piece of text.
    Text(String),
    /// The tokens the request took, as the model server reported them.
    Usage(TokenUsage),
}

/// The pieces of an answer as the assistant writes them, in order; the stream ends when
/// the answer is complete. Dropping it cancels the generation.
pub type ReplyStream = BoxStream<'static, Result<ReplyPiece, ResponderError>>;

/// How much of a chat's history goes with a question: the latest earlier messages, at
/// most `messages` of them and at most `chars` characters together (older ones are
/// left out first, so one long message cannot crowd out a model's context for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextWindow {
    /// Most earlier messages.
    pub messages: u32,
    /// Most characters of those messages together.
    pub chars: usize,
}

impl ContextWindow {
    /// No history at all.
    pub const NONE: Self = Self {
        messages: 0,
        chars: 0,
    };
}

/// What the assistant is asked to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRequest {
    /// The chat the question was posted in.
    pub chat: Chat,
    /// The chat's earlier messages, oldest first: the latest ones that fit the
    /// assistant's [`ContextWindow`].
    pub history: Vec<Message>,
    /// The user's new message. It may still be being stored while the model reads it
    /// (the model is asked as the question commits); the reply is only stored after it.
    pub question: Message,
}

impl ReplyRequest {
    /// The characters of the conversation the model is sent (the history and the
    /// question): what a usage estimate counts as the prompt.
    pub fn chars(&self) -> usize {
        self.history
            .iter()
            .chain([&self.question])
            .map(|message| message.content.as_str().chars().count())
            .sum()
    }
}

/// The most of a chat's first question a title request sends (characters).
pub const TITLE_PROMPT_CHARS: usize = 2_000;

/// Writes the assistant's reply to a user's message: the seam where a model (and later
/// the memory layer) plugs in. Answers are streamed, so a slow model holds no thread and
/// no database connection while it writes.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait AssistantResponder: Send + Sync {
    /// How much of the chat's history the assistant wants to see.
    fn context(&self) -> ContextWindow;
    /// Starts answering `request`; nothing happens until the stream is polled.
    fn reply(&self, request: ReplyRequest) -> ReplyStream;
    /// The reply to every question, when the assistant knows it without reading or
    /// waiting for anything (no model behind it); `None` for an assistant that must be
    /// asked.
    fn fixed_reply(&self) -> Option<String>;
    /// Starts asking for a short title for a conversation that opens with `question`
    /// (a request of its own, in parallel with the reply); an assistant without a
    /// model answers nothing.
    fn title(&self, question: &MessageContent) -> ReplyStream;
}

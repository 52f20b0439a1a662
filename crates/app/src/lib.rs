//! MemLayer's use cases: accounts, chats and messages, folders and search, written against the ports only.
//!
//! Each use case is a plain synchronous method on [`MemLayer`]; the HTTP layer runs one
//! per request on the blocking pool. Posting to a model (or streamed) is the exception:
//! the assistant's answer is a stream, so the use case is split around it
//! ([`PendingReply`]); with an assistant whose reply is fixed,
//! [`MemLayer::post_with_fixed_reply`] is one use case.

mod accounts;
mod admin;
mod attempts;
mod chats;
mod error;
mod export;
mod folders;
mod generation;
mod listing;
mod posting;
mod search;
mod spending;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use memlayer_ports::{
    AssistantResponder, ChatRepository, Clock, FolderRepository, MessageRepository, PasswordHasher,
    ReplyRepository, SearchIndex, TokenIssuer, TokenVerifier, UserRepository,
};

pub use admin::AdminNewAccount;
pub use attempts::{AttemptLimit, FORGET_EVERY};
pub use error::AppError;
pub use export::{EXPORT_CHATS_PAGE, EXPORT_MESSAGES_PAGE};
pub use generation::StartedGeneration;
pub use memlayer_domain as domain;
pub use memlayer_ports as ports;
pub use memlayer_ports::AccessToken;
pub use posting::{AnswerStream, PendingReply};
pub use spending::UsageReport;

/// The adapters the use cases run on.
#[derive(Clone)]
pub struct Ports {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Chats.
    pub chats: Arc<dyn ChatRepository>,
    /// Messages.
    pub messages: Arc<dyn MessageRepository>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access token issuing.
    pub token_issuer: Arc<dyn TokenIssuer>,
    /// Access token checking.
    pub token_verifier: Arc<dyn TokenVerifier>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The assistant that answers messages.
    pub responder: Arc<dyn AssistantResponder>,
    /// Folders.
    pub folders: Arc<dyn FolderRepository>,
    /// The full-text index of messages and chat titles.
    pub search: Arc<dyn SearchIndex>,
    /// Replies as they are written.
    pub replies: Arc<dyn ReplyRepository>,
}

/// The application: every use case of MemLayer.
#[derive(Clone)]
pub struct MemLayer {
    ports: Ports,
    registration: Registration,
    user_max_generations: usize,
    user_tokens_per_day: Option<u64>,
}

/// How many replies may generate at once for one user unless configured
/// (`USER_MAX_GENERATIONS`).
pub const USER_MAX_GENERATIONS: usize = 3;

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Anyone, by registering (the default).
    #[default]
    Open,
    /// No one by registering: accounts are made by the operator.
    Closed,
}

impl MemLayer {
    /// The application running on `ports`, open to registration.
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            registration: Registration::Open,
            user_max_generations: USER_MAX_GENERATIONS,
            user_tokens_per_day: None,
        }
    }

    /// The same, letting each user spend at most `limit` tokens a UTC day (`None`: no
    /// limit) unless an admin set their own.
    pub fn with_user_tokens_per_day(self, limit: Option<u64>) -> Self {
        Self {
            user_tokens_per_day: limit,
            ..self
        }
    }

    /// The same, letting at most `limit` replies generate at once for one user (across
    /// every instance on the database).
    pub fn with_user_max_generations(self, limit: usize) -> Self {
        Self {
            user_max_generations: limit,
            ..self
        }
    }

    /// The same, with `registration` as the policy.
    pub fn with_registration(self, registration: Registration) -> Self {
        Self {
            registration,
            ..self
        }
    }

    /// The UTC day it is, by the clock: the ledger's day.
    pub(crate) fn today(&self) -> memlayer_domain::UsageDay {
        memlayer_domain::UsageDay::of(self.ports.clock.now())
    }

    /// [`AppError::RegistrationClosed`] unless anyone may register: checked before the
    /// registration's password is hashed.
    pub fn ensure_registration_open(&self) -> Result<(), AppError> {
        match self.registration {
            Registration::Open => Ok(()),
            Registration::Closed => Err(AppError::RegistrationClosed),
        }
    }
}

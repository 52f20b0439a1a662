//! The ports: what MemLayer's use cases need from the outside world, as traits.
//!
//! They are synchronous on purpose: the database driver and bcrypt block, so the HTTP
//! layer runs a use case on the blocking pool, most in one hop. The one exception is the
//! assistant, which waits on the network for seconds: it answers with a stream, and
//! posting to a model takes three hops around it. With the
//! `mock` feature every trait gets a mockall mock (`MockUserRepository`, …) for unit tests.

mod attempts;
mod error;
mod repositories;
mod services;

pub use attempts::{AttemptBudget, AttemptRate, Spent};
pub use error::{BoxError, CreateUserError, RepositoryError};
pub use repositories::{
    AccountChange, AccountChangeError, AccountSummary, ChatRepository, FolderRepository,
    Generating, HealthCheck, MessageRepository, ReplyRepository, ReplyState, SearchIndex,
    StartedReply, StoredReply, UpdateChatError, UserRepository,
};
pub use services::{
    AccessToken, AssistantResponder, Clock, ContextWindow, PasswordHasher, ReplyPiece,
    ReplyRequest, ReplyStream, ResponderError, TITLE_PROMPT_CHARS, TokenError, TokenIssuer,
    TokenVerifier,
};

#[cfg(feature = "mock")]
pub use attempts::MockAttemptBudget;
#[cfg(feature = "mock")]
pub use repositories::{
    MockChatRepository, MockFolderRepository, MockHealthCheck, MockMessageRepository,
    MockReplyRepository, MockSearchIndex, MockUserRepository,
};
#[cfg(feature = "mock")]
pub use services::{
    MockAssistantResponder, MockClock, MockPasswordHasher, MockTokenIssuer, MockTokenVerifier,
};

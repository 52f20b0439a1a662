//! Implementations of MemLayer's ports.
//!
//! - [`Database`]: the user, chat and message repositories on Diesel, over PostgreSQL
//!   (production) or an embedded SQLite file (zero-setup default), one code path for both.
//! - [`BcryptHasher`], [`JwtTokens`], [`SystemClock`].
//! - The assistant: [`FixedReply`] without a model, [`OpenAiResponder`] with one.

mod clock;
mod db;
mod password;
mod responder;
mod token;

pub use clock::SystemClock;
pub use db::{Backend, Database, DatabaseError, PoolOptions};
pub use memlayer_ports::ContextWindow;
pub use password::BcryptHasher;
pub use reqwest::Url;
pub use responder::{FixedReply, OpenAiResponder, OpenAiSettings, OpenAiSetupError};
pub use token::JwtTokens;

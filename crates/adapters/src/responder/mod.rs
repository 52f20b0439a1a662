//! The assistants: the fixed reply without a model, and any OpenAI-compatible server.

mod fixed_reply;
mod openai;

pub use fixed_reply::FixedReply;
pub use openai::{OpenAiResponder, OpenAiSettings, OpenAiSetupError};

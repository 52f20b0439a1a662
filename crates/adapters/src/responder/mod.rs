//! The assistants: the placeholder without a model, and any OpenAI-compatible server.

mod message_received;
mod openai;

pub use message_received::MessageReceived;
pub use openai::{OpenAiResponder, OpenAiSettings, OpenAiSetupError};

use futures_util::StreamExt;
use futures_util::stream;
use memlayer_ports::{AssistantResponder, ReplyRequest, ReplyStream};

/// The reply every message gets when no model is configured.
pub const REPLY: &str = "Message received";

/// The assistant without a model: acknowledges every message, in one piece.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageReceived;

impl AssistantResponder for MessageReceived {
    fn context_messages(&self) -> u32 {
        0
    }

    fn reply(&self, _request: ReplyRequest) -> ReplyStream {
        stream::iter([Ok(REPLY.to_owned())]).boxed()
    }
}

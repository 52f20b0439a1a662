use futures_util::StreamExt;
use futures_util::stream;
use memlayer_domain::MessageContent;
use memlayer_ports::{AssistantResponder, ContextWindow, ReplyPiece, ReplyRequest, ReplyStream};

/// The reply every message gets when no model is configured.
pub const REPLY: &str = "Message received";

/// The assistant without a model: acknowledges every message, in one piece.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedReply;

impl AssistantResponder for FixedReply {
    fn context(&self) -> ContextWindow {
        ContextWindow::NONE
    }

    fn reply(&self, _request: ReplyRequest) -> ReplyStream {
        stream::iter([Ok(ReplyPiece::Text(REPLY.to_owned()))]).boxed()
    }

    fn fixed_reply(&self) -> Option<String> {
        Some(REPLY.to_owned())
    }

    /// No model to ask: chats keep their titles.
    fn title(&self, _question: &MessageContent) -> ReplyStream {
        stream::empty().boxed()
    }
}

use memlayer_domain::{Chat, Message, MessageContent};
use memlayer_ports::{AssistantResponder, ResponderError};

/// The reply every message gets until the memory layer plugs in.
pub const REPLY: &str = "Message received";

/// The assistant of this release: acknowledges every message.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageReceived;

impl AssistantResponder for MessageReceived {
    fn reply(&self, _chat: &Chat, _message: &Message) -> Result<MessageContent, ResponderError> {
        Ok(MessageContent::from_trusted(REPLY.to_owned()))
    }
}

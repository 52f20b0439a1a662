use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{Field, Problem, ValidationError, reject_nul};
use crate::ids::{ChatId, MessageId, UserId};
use crate::page::Cursor;

const FIELD: Field = Field::Content;
/// Longest message, in characters: a long pasted document fits, a runaway client does not.
pub const CONTENT_MAX_CHARS: usize = 32_000;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The chat's owner.
    User,
    /// The assistant's reply.
    Assistant,
}

impl Role {
    /// The wire and storage name: `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    /// Parses the storage name back.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            _ => None,
        }
    }
}

/// How far a message got: a user's message is always complete; the assistant's reply
/// may still be generating, or have been stopped or have failed part-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Written in full.
    Complete,
    /// The assistant is still writing it.
    Generating,
    /// Ended before the assistant finished (stopped, or cut at a limit): the text so far.
    Stopped,
    /// The assistant failed part-way: the text so far.
    Failed,
}

impl MessageStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Generating => "generating",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    /// Parses the storage name back.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "complete" => Some(Self::Complete),
            "generating" => Some(Self::Generating),
            "stopped" => Some(Self::Stopped),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One message of a chat: a node of the chat's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's id.
    pub id: MessageId,
    /// The chat it belongs to.
    pub chat_id: ChatId,
    /// The chat owner's id (on the assistant's replies too).
    pub user_id: UserId,
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: MessageContent,
    /// When it was written; a message is always written after its parent.
    pub created_at: DateTime<Utc>,
    /// The message it follows; `None` for a first message of its chat.
    pub parent_id: Option<MessageId>,
    /// How far it got.
    pub status: MessageStatus,
    /// Every message with the same parent, this one included, oldest first (the first
    /// messages of a chat are siblings of each other); as read with the message.
    pub sibling_ids: Vec<MessageId>,
    /// The tokens an assistant's reply took, once it ended with a model behind it;
    /// `None` for a user's message, a reply still generating, or a fixed reply.
    pub usage: Option<crate::TokenUsage>,
}

impl Message {
    /// This message's position in its chat.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.as_uuid(),
        }
    }
}

/// Message text: not blank, at most [`CONTENT_MAX_CHARS`] characters, kept exactly as
/// written (no trimming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// Validates what a user or a responder wrote.
    pub fn parse(input: String) -> Result<Self, ValidationError> {
        reject_nul(FIELD, &input)?;
        if input.trim().is_empty() {
            return Err(ValidationError::new(FIELD, Problem::Blank));
        }
        if input.chars().count() > CONTENT_MAX_CHARS {
            return Err(ValidationError::new(
                FIELD,
                Problem::TooManyChars {
                    max: CONTENT_MAX_CHARS,
                },
            ));
        }
        Ok(Self(input))
    }

    /// What the assistant wrote, made storable: the NUL character (which no database
    /// text column can hold) is dropped; `None` when no visible text is left. Its length
    /// is the model's business, not limited like a user's message.
    pub fn from_assistant(text: &str) -> Option<Self> {
        let text = text.replace('\0', "");
        (!text.trim().is_empty()).then_some(Self(text))
    }

    /// Reads back content that was validated before it was stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The timestamp of a reply to a message written at `question_at`: now, but always
/// strictly later than the question (by at least a microsecond, the storage
/// resolution), so a message sorts before its reply even on a coarse or stepped clock.
pub fn reply_timestamp(question_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(question_at + TimeDelta::microseconds(1))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn content_is_kept_exactly_as_written() {
        let content = MessageContent::parse("  hello\n".into()).unwrap();
        assert_eq!(content.as_str(), "  hello\n");
    }

    #[test]
    fn blank_content_is_refused() {
        for blank in ["", " ", "\n\t "] {
            let error = MessageContent::parse(blank.into()).unwrap_err();
            assert_eq!(error, ValidationError::new(Field::Content, Problem::Blank));
        }
    }

    #[test]
    fn content_at_the_limit_fits_and_one_character_more_does_not() {
        assert!(MessageContent::parse("ü".repeat(CONTENT_MAX_CHARS)).is_ok());
        let error = MessageContent::parse("ü".repeat(CONTENT_MAX_CHARS + 1)).unwrap_err();
        assert_eq!(
            error.problem,
            Problem::TooManyChars {
                max: CONTENT_MAX_CHARS
            }
        );
    }

    #[test]
    fn content_with_a_nul_character_is_refused() {
        assert_eq!(
            MessageContent::parse("a\0".into()).unwrap_err().problem,
            Problem::ContainsNul
        );
    }

    #[test]
    fn the_assistants_text_is_kept_as_written_without_nul_characters() {
        let content = MessageContent::from_assistant(" Hi\0 there\n").unwrap();
        assert_eq!(content.as_str(), " Hi there\n");
    }

    #[test]
    fn an_assistant_text_with_nothing_visible_is_no_content() {
        for blank in ["", " \n", "\0", " \0 "] {
            assert_eq!(MessageContent::from_assistant(blank), None, "{blank:?}");
        }
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::User, Role::Assistant] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("system"), None);
    }

    #[test]
    fn a_reply_is_stamped_now_when_the_clock_moved_on() {
        let question = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = question + TimeDelta::milliseconds(3);
        assert_eq!(reply_timestamp(question, now), now);
    }

    #[test]
    fn a_reply_is_strictly_later_than_its_question_even_when_the_clock_did_not_move() {
        let question = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for now in [question, question - TimeDelta::seconds(1)] {
            assert_eq!(
                reply_timestamp(question, now),
                question + TimeDelta::microseconds(1)
            );
        }
    }
}

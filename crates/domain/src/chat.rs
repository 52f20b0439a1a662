use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::error::{ValidationError, ValidationKind, reject_nul};
use crate::ids::{ChatId, UserId};
use crate::page::Cursor;

const FIELD: &str = "title";
/// Longest chat title, in characters.
pub const TITLE_MAX_CHARS: usize = 200;

/// A conversation owned by one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// The chat's id.
    pub id: ChatId,
    /// The user who created it; the only one who may see or change it.
    pub owner: UserId,
    /// What the chat is called.
    pub title: ChatTitle,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Chat {
    /// This chat's position in a list of chats.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.as_uuid(),
        }
    }
}

/// A chat title: trimmed, not blank, at most [`TITLE_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTitle(String);

impl ChatTitle {
    /// The title of a new chat: what the user gave, or when that is missing, null or
    /// blank, `Chat YYYY-MM-DD HH:MM` from `now` (UTC).
    pub fn for_new_chat(input: Option<&str>, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        match input {
            Some(title) if !title.trim().is_empty() => Self::parse(title),
            _ => Ok(Self(now.format("Chat %Y-%m-%d %H:%M").to_string())),
        }
    }

    /// A title the user chose (renaming a chat): blank is refused. The length limit
    /// counts the title as given, before trimming.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(FIELD, input)?;
        if input.chars().count() > TITLE_MAX_CHARS {
            return Err(ValidationError::new(
                FIELD,
                ValidationKind::TooLong,
                format!("String should have at most {TITLE_MAX_CHARS} characters"),
            ));
        }
        let title = input.trim();
        if title.is_empty() {
            return Err(ValidationError::new(
                FIELD,
                ValidationKind::TooShort,
                "String should not be blank",
            ));
        }
        Ok(Self(title.to_owned()))
    }

    /// Reads back a title that was validated before it was stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a user may not use a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChatAccessError {
    /// There is no such chat.
    #[error("chat not found")]
    NotFound,
    /// The chat exists and belongs to someone else.
    #[error("this chat belongs to another user")]
    Forbidden,
}

/// The ownership rule: a chat that does not exist is not found; one that exists but
/// belongs to someone else is forbidden; otherwise it is the user's.
pub fn authorize_chat_access(chat: Option<Chat>, user: UserId) -> Result<Chat, ChatAccessError> {
    match chat {
        None => Err(ChatAccessError::NotFound),
        Some(chat) if chat.owner != user => Err(ChatAccessError::Forbidden),
        Some(chat) => Ok(chat),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 7, h, m, s).unwrap()
    }

    #[test]
    fn a_missing_title_defaults_to_the_creation_minute_in_utc() {
        let title = ChatTitle::for_new_chat(None, at(9, 5, 59)).unwrap();
        assert_eq!(title.as_str(), "Chat 2026-03-07 09:05");
    }

    #[test]
    fn a_blank_title_defaults_too() {
        let title = ChatTitle::for_new_chat(Some(" \t\n"), at(23, 59, 0)).unwrap();
        assert_eq!(title.as_str(), "Chat 2026-03-07 23:59");
    }

    #[test]
    fn a_given_title_is_trimmed_and_kept() {
        let title = ChatTitle::for_new_chat(Some("  Trip to Lisbon "), at(0, 0, 0)).unwrap();
        assert_eq!(title.as_str(), "Trip to Lisbon");
    }

    #[test]
    fn renaming_to_a_blank_title_is_refused() {
        assert_eq!(
            ChatTitle::parse("   ").unwrap_err().kind,
            ValidationKind::TooShort
        );
    }

    #[test]
    fn a_title_of_two_hundred_characters_fits_and_one_more_does_not() {
        assert!(ChatTitle::parse(&"é".repeat(TITLE_MAX_CHARS)).is_ok());
        let error = ChatTitle::parse(&"é".repeat(TITLE_MAX_CHARS + 1)).unwrap_err();
        assert_eq!(
            (error.field, error.kind),
            ("title", ValidationKind::TooLong)
        );
    }

    #[test]
    fn the_length_limit_counts_surrounding_white_space() {
        let padded = format!(" {} ", "x".repeat(TITLE_MAX_CHARS - 1));
        assert_eq!(
            ChatTitle::parse(&padded).unwrap_err().kind,
            ValidationKind::TooLong
        );
    }

    #[test]
    fn a_title_with_a_nul_character_is_refused() {
        assert_eq!(
            ChatTitle::parse("a\0b").unwrap_err().kind,
            ValidationKind::Invalid
        );
    }

    fn chat_of(owner: UserId) -> Chat {
        Chat {
            id: ChatId::generate(),
            owner,
            title: ChatTitle::from_trusted("t".into()),
            created_at: at(0, 0, 0),
        }
    }

    #[test]
    fn the_owner_may_use_their_chat() {
        let owner = UserId::generate();
        let chat = chat_of(owner);
        assert_eq!(authorize_chat_access(Some(chat.clone()), owner), Ok(chat));
    }

    #[test]
    fn another_users_chat_is_forbidden() {
        let chat = chat_of(UserId::generate());
        assert_eq!(
            authorize_chat_access(Some(chat), UserId::generate()),
            Err(ChatAccessError::Forbidden)
        );
    }

    #[test]
    fn a_missing_chat_is_not_found() {
        assert_eq!(
            authorize_chat_access(None, UserId::generate()),
            Err(ChatAccessError::NotFound)
        );
    }
}

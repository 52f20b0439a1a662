use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::error::{Field, Problem, ValidationError, reject_nul};
use crate::ids::{ChatId, FolderId, MessageId, UserId};
use crate::page::Cursor;

const FIELD: Field = Field::Title;
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
    /// The end of the path the chat shows (its active leaf); `None` while it is empty.
    pub active_message_id: Option<MessageId>,
    /// Where the user keeps it: pinned, archived, in a folder.
    pub organisation: Organisation,
}

impl Chat {
    /// This chat's position in a list of chats by creation time.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.as_uuid(),
        }
    }

    /// This chat's position in the organised list: pinned chats first, then the rest,
    /// each group newest first.
    pub fn organised_cursor(&self) -> ChatCursor {
        ChatCursor {
            pinned: self.organisation.pinned,
            position: self.cursor(),
        }
    }
}

/// Where a user keeps a chat. A new chat is none of these: not pinned, not archived, in
/// no folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Organisation {
    /// Listed before the chats that are not.
    pub pinned: bool,
    /// Left out of the chat list (listed only when archived chats are asked for); still
    /// searched.
    pub archived: bool,
    /// The owner's folder it is filed in, if any.
    pub folder: Option<FolderId>,
}

/// A position in the organised chat list (pinned first, then the rest, each newest
/// first): the group, and the position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatCursor {
    /// Whether the last chat read was pinned.
    pub pinned: bool,
    /// The last chat read.
    pub position: Cursor,
}

/// Which of a user's chats a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatFilter {
    /// The archived chats only (else only those not archived).
    pub archived: bool,
    /// Only the chats in this folder (else all).
    pub folder: Option<FolderId>,
}

/// A change to a chat: every field given is set, the others are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatUpdate {
    /// A new title.
    pub title: Option<ChatTitle>,
    /// Pin or unpin.
    pub pinned: Option<bool>,
    /// Archive or bring back.
    pub archived: Option<bool>,
    /// File in a folder (`Some(Some(_))`) or take out of its folder (`Some(None)`).
    pub folder: Option<Option<FolderId>>,
}

impl ChatUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.pinned.is_none()
            && self.archived.is_none()
            && self.folder.is_none()
    }

    /// `chat` with this change made.
    pub fn applied_to(&self, mut chat: Chat) -> Chat {
        if let Some(title) = &self.title {
            chat.title = title.clone();
        }
        let kept = &mut chat.organisation;
        kept.pinned = self.pinned.unwrap_or(kept.pinned);
        kept.archived = self.archived.unwrap_or(kept.archived);
        kept.folder = self.folder.unwrap_or(kept.folder);
        chat
    }
}

/// A chat title: trimmed, not blank, at most [`TITLE_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTitle(String);

impl ChatTitle {
    /// The title a user gave a new chat: `None` when missing or blank (the chat then
    /// gets [`ChatTitle::default_at`] its creation time).
    pub fn optional(input: Option<&str>) -> Result<Option<Self>, ValidationError> {
        match input {
            Some(title) if !title.trim().is_empty() => Self::parse(title).map(Some),
            _ => Ok(None),
        }
    }

    /// The title of a chat created at `now` without one: `Chat YYYY-MM-DD HH:MM` (UTC).
    pub fn default_at(now: DateTime<Utc>) -> Self {
        Self(now.format("Chat %Y-%m-%d %H:%M").to_string())
    }

    /// A title a model wrote (naming a chat from its first question): its first line
    /// that is not blank, without the quotes, markup, "Title:" label or final full stop
    /// models like to add, cut to [`TITLE_MAX_CHARS`]; `None` when nothing is left.
    pub fn from_model(text: &str) -> Option<Self> {
        let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
        let decoration =
            |c: char| matches!(c, '"' | '\'' | '*' | '#' | '`' | '“' | '”' | '«' | '»');
        // Quotes around a label, a label inside markup: peel until nothing changes.
        let mut line = line;
        loop {
            let peeled = line.trim().trim_matches(decoration).trim();
            let peeled = ["Title:", "title:", "TITLE:"]
                .iter()
                .find_map(|label| peeled.strip_prefix(label))
                .unwrap_or(peeled);
            let peeled = peeled.trim().trim_end_matches('.').trim();
            if peeled == line {
                break;
            }
            line = peeled;
        }
        let title: String = line
            .chars()
            .filter(|c| !c.is_control())
            .take(TITLE_MAX_CHARS)
            .collect();
        let title = title.trim();
        (!title.is_empty()).then(|| Self(title.to_owned()))
    }

    /// A title the user chose (renaming a chat): blank is refused. The length limit
    /// counts the title as given, before trimming.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(FIELD, input)?;
        if input.chars().count() > TITLE_MAX_CHARS {
            return Err(ValidationError::new(
                FIELD,
                Problem::TooManyChars {
                    max: TITLE_MAX_CHARS,
                },
            ));
        }
        let title = input.trim();
        if title.is_empty() {
            return Err(ValidationError::new(FIELD, Problem::Blank));
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
    fn a_models_title_is_its_first_line_without_decoration() {
        let title = |text: &str| ChatTitle::from_model(text).map(|t| t.as_str().to_owned());
        assert_eq!(title("Lisbon in a day"), Some("Lisbon in a day".into()));
        assert_eq!(
            title("\n  \"Lisbon in a day.\"\nMore"),
            Some("Lisbon in a day".into())
        );
        assert_eq!(
            title("Title: **Trip planning**"),
            Some("Trip planning".into())
        );
        assert_eq!(title(" \n\t"), None);
        assert_eq!(title("\"\""), None);
        let long = "x".repeat(TITLE_MAX_CHARS + 10);
        assert_eq!(
            title(&long).map(|t| t.chars().count()),
            Some(TITLE_MAX_CHARS)
        );
    }

    #[test]
    fn the_default_title_is_the_creation_minute_in_utc() {
        assert_eq!(
            ChatTitle::default_at(at(9, 5, 59)).as_str(),
            "Chat 2026-03-07 09:05"
        );
    }

    #[test]
    fn a_missing_or_blank_title_for_a_new_chat_is_none() {
        assert_eq!(ChatTitle::optional(None), Ok(None));
        assert_eq!(ChatTitle::optional(Some(" \t\n")), Ok(None));
    }

    #[test]
    fn a_given_title_is_trimmed_and_kept() {
        let title = ChatTitle::optional(Some("  Trip to Lisbon "))
            .unwrap()
            .unwrap();
        assert_eq!(title.as_str(), "Trip to Lisbon");
    }

    #[test]
    fn renaming_to_a_blank_title_is_refused() {
        assert_eq!(
            ChatTitle::parse("   ").unwrap_err(),
            ValidationError::new(Field::Title, Problem::Blank)
        );
    }

    #[test]
    fn a_title_of_two_hundred_characters_fits_and_one_more_does_not() {
        assert!(ChatTitle::parse(&"é".repeat(TITLE_MAX_CHARS)).is_ok());
        let error = ChatTitle::parse(&"é".repeat(TITLE_MAX_CHARS + 1)).unwrap_err();
        assert_eq!(
            error,
            ValidationError::new(Field::Title, Problem::TooManyChars { max: 200 })
        );
    }

    #[test]
    fn the_length_limit_counts_surrounding_white_space() {
        let padded = format!(" {} ", "x".repeat(TITLE_MAX_CHARS - 1));
        assert_eq!(
            ChatTitle::parse(&padded).unwrap_err().problem,
            Problem::TooManyChars { max: 200 }
        );
    }

    #[test]
    fn a_title_with_a_nul_character_is_refused() {
        assert_eq!(
            ChatTitle::parse("a\0b").unwrap_err().problem,
            Problem::ContainsNul
        );
    }

    fn chat_of(owner: UserId) -> Chat {
        Chat {
            id: ChatId::generate(),
            owner,
            title: ChatTitle::from_trusted("t".into()),
            created_at: at(0, 0, 0),
            active_message_id: None,
            organisation: Organisation::default(),
        }
    }

    #[test]
    fn an_update_sets_what_it_gives_and_keeps_the_rest() {
        let folder = FolderId::generate();
        let chat = chat_of(UserId::generate());
        let update = ChatUpdate {
            pinned: Some(true),
            folder: Some(Some(folder)),
            ..ChatUpdate::default()
        };
        let changed = update.applied_to(chat.clone());
        assert_eq!(changed.title, chat.title);
        assert_eq!(
            changed.organisation,
            Organisation {
                pinned: true,
                archived: false,
                folder: Some(folder)
            }
        );
        let out = ChatUpdate {
            folder: Some(None),
            ..ChatUpdate::default()
        };
        assert_eq!(out.applied_to(changed).organisation.folder, None);
        assert!(ChatUpdate::default().is_empty());
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
